"""The cis.v1 servicer on a real in-process gRPC server (loopback, port 0), with the wiring's
`build_server`. One seam is faked: the use cases behind `Services` (tenants, instances,
logs); the watch hub is the real one, fed as the informer would feed it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import grpc
import grpc.aio
import pytest

from cis.api.app import Services
from cis.api.grpc_server import InstanceMessages, build_server, json_to_struct, log_params, struct_to_json
from cis.api.metrics import Metrics
from cis.api.proto import cis_v1_pb2 as pb
from cis.api.proto import cis_v1_pb2_grpc
from cis.domain import errors
from cis.domain.ids import InstanceId, TenantName
from cis.domain.model import Instance, instance_to_public_json, instance_to_resource, new_instance
from cis.domain.spec import parse_spec
from cis.store import Page
from cis.tenants import Principal
from cis.watch_hub import Change, WatchHub

SPEC = {
    "containers": [
        {"name": "web", "image": "nginx:1.27", "resources": {"cpu": 0.25, "memoryGiB": 0.5}, "ports": [{"port": 8080}]}
    ],
    "labels": {"app": "web"},
}
KEYS = {
    "acme-key": Principal(TenantName("acme"), "k1"),
    "globex-key": Principal(TenantName("globex"), "k2"),
    "admin-key": Principal(None, "a1"),
}


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


class FakeTenants:
    def authenticate(self, header: str | None) -> Principal:
        principal = KEYS.get((header or "").removeprefix("Bearer "))
        if principal is None:
            raise errors.Unauthenticated("unknown API key")
        return principal

    def tenant(self, name: str) -> object:
        if name not in ("acme", "globex"):
            raise errors.NotFound("tenant", name)
        return object()


@dataclass
class FakeInstances:
    stored: dict[tuple[str, str], Instance] = field(default_factory=dict)
    list_calls: list[dict[str, Any]] = field(default_factory=list)

    def _tenant(self, principal: Principal, tenant: str | None) -> TenantName:
        if principal.tenant is None and not tenant:
            raise errors.InvalidInput("tenant", "an admin must name the tenant")
        return TenantName(tenant or principal.tenant or "")

    async def create(self, principal: Principal, raw_body: Any, tenant: str | None = None) -> tuple[Instance, bool]:
        spec = parse_spec(raw_body)  # the real validation, so wire numbers must be JSON ints
        t = self._tenant(principal, tenant)
        inst = replace(
            new_instance(InstanceId(f"ci-{len(self.stored):020d}"), t, spec, _now()), uid="u1", resource_version="7"
        )
        self.stored[(t, inst.id)] = inst
        return inst, True

    async def get(self, principal: Principal, instance_id: str, tenant: str | None = None) -> Instance:
        try:
            return self.stored[(self._tenant(principal, tenant), instance_id)]
        except KeyError:
            raise errors.NotFound("instance", instance_id) from None

    async def list(self, principal: Principal, **kwargs: Any) -> Page:
        self.list_calls.append(kwargs)
        return Page(list(self.stored.values())[: kwargs["limit"]], "next-page")

    async def delete(self, principal: Principal, instance_id: str, tenant: str | None = None) -> Instance:
        return replace(await self.get(principal, instance_id, tenant), deleting=True)


class FakeLogs:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str], bool]] = []

    async def stream_logs(
        self, tenant: TenantName, instance_id: str, params: Mapping[str, str], *, follow: bool
    ) -> AsyncIterator[bytes]:
        self.calls.append((tenant, instance_id, dict(params), follow))
        yield b"line 1\n"
        yield b"line 2\n"


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class FakeInformer:
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    resource_version: str = "100"


@dataclass
class Rig:
    stub: Any
    services: Services
    instances: FakeInstances
    hub: WatchHub
    informer: FakeInformer

    async def deliver(self, kind: str, raw: dict[str, Any]) -> None:
        self.informer.resource_version = raw["metadata"]["resourceVersion"]
        await self.hub.listener(kind, raw)


def cr(name: str, rv: int, tenant: str = "acme") -> dict[str, Any]:
    inst = new_instance(InstanceId(name), TenantName(tenant), parse_spec(SPEC), _now())
    return instance_to_resource(replace(inst, resource_version=str(rv), uid=f"uid-{name}"))


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    instances = FakeInstances()
    services = Services(
        instances=cast(Any, instances), tenants=cast(Any, FakeTenants()), metrics=Metrics(), regions=list, ready=dict
    )
    informer = FakeInformer()
    hub = WatchHub(informer)
    await hub.listener("ADDED", cr("ci-acme1", 90))
    await hub.listener("ADDED", cr("ci-globex1", 95, tenant="globex"))
    informer.synced.set()
    server = build_server(services, hub)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield Rig(cis_v1_pb2_grpc.InstancesStub(channel), services, instances, hub, informer)
    finally:
        await server.stop(None)


async def rpc_error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value


def test_struct_round_trip_keeps_json_integers() -> None:
    raw = {"a": 1, "b": 0.25, "c": [80, {"d": None, "e": True, "f": "x"}], "g": {}}
    assert struct_to_json(json_to_struct(raw)) == raw
    assert isinstance(struct_to_json(json_to_struct(raw))["c"][0], int)


def test_log_params_use_rest_names_and_skip_unset_fields() -> None:
    assert log_params(pb.GetLogsRequest(id="x")) == {}
    assert log_params(
        pb.GetLogsRequest(
            container="web",
            tail_lines=10,
            since_time="2026-01-01T00:00:00Z",
            timestamps=True,
            limit_bytes=100,
            previous=True,
            since_seconds=5,
        )
    ) == {
        "container": "web",
        "tailLines": "10",
        "sinceSeconds": "5",
        "sinceTime": "2026-01-01T00:00:00Z",
        "timestamps": "true",
        "limitBytes": "100",
        "previous": "true",
    }


@pytest.mark.parametrize(
    ("request_", "params"),
    [
        (pb.GetLogsRequest(id="x", tail_lines=0), {"tailLines": "0"}),
        (pb.GetLogsRequest(id="x", since_seconds=0), {"sinceSeconds": "0"}),
        (pb.GetLogsRequest(id="x", limit_bytes=0, tail_lines=3), {"limitBytes": "0", "tailLines": "3"}),
        (pb.GetLogsRequest(id="x", tail_lines=None), {}),
    ],
    ids=["tail-zero", "since-zero", "limit-zero", "unset"],
)
def test_log_params_tell_an_explicit_zero_from_unset(request_: pb.GetLogsRequest, params: dict[str, str]) -> None:
    assert log_params(request_) == params


def test_watch_messages_are_built_once_per_version_and_unreadable_objects_skipped() -> None:
    messages = InstanceMessages(size=2)
    first = messages.event(Change("MODIFIED", cr("ci-a", 5)))
    assert first is not None and first.instance.resource_version == "5"
    assert messages.get(Change("DELETED", cr("ci-a", 5))) is messages.get(Change("MODIFIED", cr("ci-a", 5)))
    assert messages.get(Change("MODIFIED", cr("ci-a", 6))) is not messages.get(Change("MODIFIED", cr("ci-a", 5)))
    broken = cr("ci-b", 7)
    broken["metadata"]["namespace"] = "kube-system"
    assert messages.event(Change("MODIFIED", broken)) is None


async def test_create_get_delete_carry_the_rest_json(rig: Rig) -> None:
    created = await rig.stub.CreateInstance(
        pb.CreateInstanceRequest(spec=json_to_struct(SPEC)), metadata=auth("acme-key")
    )
    stored = rig.instances.stored[("acme", created.id)]
    assert (created.tenant, created.uid, created.resource_version) == ("acme", "u1", "7")
    assert struct_to_json(created.body) == instance_to_public_json(stored)
    got = await rig.stub.GetInstance(pb.GetInstanceRequest(id=created.id), metadata=auth("acme-key"))
    assert got == created
    deleted = await rig.stub.DeleteInstance(pb.DeleteInstanceRequest(id=created.id), metadata=auth("acme-key"))
    assert struct_to_json(deleted.body)["status"]["phase"] == "Deleting"


async def test_invalid_spec_is_invalid_argument_naming_the_field(rig: Rig) -> None:
    bad = {"containers": [{"name": "web", "image": "nginx", "resources": {"cpu": -1, "memoryGiB": 1}}]}
    err = await rpc_error(
        rig.stub.CreateInstance(pb.CreateInstanceRequest(spec=json_to_struct(bad)), metadata=auth("acme-key"))
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(err.details())["error"]["field"] == "containers[0].resources.cpu"


@pytest.mark.parametrize(
    "metadata", [(), auth("nope"), (("authorization", "Basic xyz"),)], ids=["no-key", "unknown-key", "not-bearer"]
)
async def test_missing_or_bad_key_is_unauthenticated(rig: Rig, metadata: tuple[tuple[str, str], ...]) -> None:
    err = await rpc_error(rig.stub.GetInstance(pb.GetInstanceRequest(id="ci-x"), metadata=metadata))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_another_tenants_instance_is_not_found(rig: Rig) -> None:
    created = await rig.stub.CreateInstance(
        pb.CreateInstanceRequest(spec=json_to_struct(SPEC)), metadata=auth("acme-key")
    )
    err = await rpc_error(rig.stub.GetInstance(pb.GetInstanceRequest(id=created.id), metadata=auth("globex-key")))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = await rpc_error(
        rig.stub.GetInstance(pb.GetInstanceRequest(id=created.id, tenant="acme"), metadata=auth("globex-key"))
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    admin = await rig.stub.GetInstance(pb.GetInstanceRequest(id=created.id, tenant="acme"), metadata=auth("admin-key"))
    assert admin.id == created.id


async def test_list_passes_filters_and_validates_limit(rig: Rig) -> None:
    await rig.stub.CreateInstance(pb.CreateInstanceRequest(spec=json_to_struct(SPEC)), metadata=auth("acme-key"))
    page = await rig.stub.ListInstances(
        pb.ListInstancesRequest(label_selector="app=web", phase="Running"), metadata=auth("acme-key")
    )
    assert len(page.items) == 1 and page.continue_token == "next-page"
    assert rig.instances.list_calls[-1] == {
        "tenant": None,
        "phase": "Running",
        "region": None,
        "labels": "app=web",
        "limit": 100,
        "cont": None,
    }
    err = await rpc_error(rig.stub.ListInstances(pb.ListInstancesRequest(limit=5000), metadata=auth("acme-key")))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(err.details())["error"]["field"] == "limit"


async def read(call: Any) -> pb.InstanceEvent:
    async with asyncio.timeout(5):
        message = await call.read()
    assert message is not grpc.aio.EOF
    return cast(pb.InstanceEvent, message)


async def test_watch_sends_own_snapshot_then_changes_then_deletion(rig: Rig) -> None:
    call = rig.stub.WatchInstances(pb.WatchInstancesRequest(label_selector="app=web"), metadata=auth("acme-key"))
    try:
        first = await read(call)
        assert (first.instance.id, first.initial, first.deleted) == ("ci-acme1", True, False)
        assert struct_to_json(first.instance.body)["labels"] == {"app": "web"}
        await rig.deliver("MODIFIED", cr("ci-globex1", 101, tenant="globex"))  # not acme's
        running = cr("ci-acme1", 102)
        running["status"]["phase"] = "Running"
        await rig.deliver("MODIFIED", running)
        change = await read(call)
        assert (change.initial, change.instance.resource_version) == (False, "102")
        assert struct_to_json(change.instance.body)["status"]["phase"] == "Running"
        await rig.deliver("DELETED", cr("ci-acme1", 103))
        gone = await read(call)
        assert (gone.deleted, gone.instance.resource_version) == (True, "103")
    finally:
        call.cancel()
    async with asyncio.timeout(5):
        while rig.hub.subscribers:  # the server noticed the cancel and left the hub
            await asyncio.sleep(0.01)

    resumed = rig.stub.WatchInstances(pb.WatchInstancesRequest(resource_version="101"), metadata=auth("acme-key"))
    try:
        assert [(await read(resumed)).instance.resource_version for _ in range(2)] == ["102", "103"]
    finally:
        resumed.cancel()


@pytest.mark.parametrize(
    ("request_", "key", "code", "field"),
    [
        (
            pb.WatchInstancesRequest(label_selector="app in"),
            "acme-key",
            grpc.StatusCode.INVALID_ARGUMENT,
            "label_selector",
        ),
        (
            pb.WatchInstancesRequest(resource_version="x"),
            "acme-key",
            grpc.StatusCode.INVALID_ARGUMENT,
            "resource_version",
        ),
        (pb.WatchInstancesRequest(resource_version="50"), "acme-key", grpc.StatusCode.OUT_OF_RANGE, "resource_version"),
        (pb.WatchInstancesRequest(tenant="globex"), "acme-key", grpc.StatusCode.NOT_FOUND, None),
        (pb.WatchInstancesRequest(tenant="initech"), "admin-key", grpc.StatusCode.NOT_FOUND, None),
        (pb.WatchInstancesRequest(), "nope", grpc.StatusCode.UNAUTHENTICATED, None),
    ],
    ids=["bad-selector", "bad-version", "expired", "other-tenant", "unknown-tenant", "bad-key"],
)
async def test_watch_rejections(
    rig: Rig, request_: pb.WatchInstancesRequest, key: str, code: grpc.StatusCode, field: str | None
) -> None:
    call = rig.stub.WatchInstances(request_, metadata=auth(key))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await read(call)
    assert err.value.code() == code
    if field:
        assert json.loads(err.value.details())["error"]["field"] == field


async def test_admin_watch_without_tenant_sees_every_tenant(rig: Rig) -> None:
    call = rig.stub.WatchInstances(pb.WatchInstancesRequest(), metadata=auth("admin-key"))
    try:
        assert sorted([(await read(call)).instance.tenant for _ in range(2)]) == ["acme", "globex"]
    finally:
        call.cancel()


async def test_logs_are_unimplemented_without_a_log_service(rig: Rig) -> None:
    call = rig.stub.GetLogs(pb.GetLogsRequest(id="ci-acme1"), metadata=auth("acme-key"))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_logs_stream_from_the_log_service(rig: Rig) -> None:
    logs = FakeLogs()
    rig.services.logs = logs
    chunks = [
        c.data
        async for c in rig.stub.GetLogs(
            pb.GetLogsRequest(id="ci-acme1", tail_lines=5, follow=True), metadata=auth("acme-key")
        )
    ]
    assert chunks == [b"line 1\n", b"line 2\n"]
    assert logs.calls == [("acme", "ci-acme1", {"tailLines": "5"}, True)]


async def test_an_explicit_tail_of_zero_reaches_the_log_service(rig: Rig) -> None:
    logs = FakeLogs()
    rig.services.logs = logs
    request = pb.GetLogsRequest(id="ci-acme1", tail_lines=0, follow=True)
    assert len([c async for c in rig.stub.GetLogs(request, metadata=auth("acme-key"))]) == 2
    assert logs.calls == [("acme", "ci-acme1", {"tailLines": "0"}, True)]


class EndlessLogs:
    """A follow with no new lines: only the caller going away ends it."""

    def __init__(self) -> None:
        self.open_streams = 0

    async def stream_logs(
        self, tenant: TenantName, instance_id: str, params: Mapping[str, str], *, follow: bool
    ) -> AsyncIterator[bytes]:
        self.open_streams += 1
        try:
            yield b""
            await asyncio.Event().wait()
        finally:
            self.open_streams -= 1


async def test_a_cancelled_follow_stops_reading_logs(rig: Rig) -> None:
    """The virtual kubelet cancels GetLogs when `kubectl logs -f` goes away; CIS must then
    stop polling Elasticsearch for it."""
    logs = EndlessLogs()
    rig.services.logs = logs
    call = rig.stub.GetLogs(pb.GetLogsRequest(id="ci-acme1", follow=True), metadata=auth("acme-key"))
    assert (await call.read()).data == b""
    assert logs.open_streams == 1
    call.cancel()
    async with asyncio.timeout(5):
        while logs.open_streams:
            await asyncio.sleep(0.01)
