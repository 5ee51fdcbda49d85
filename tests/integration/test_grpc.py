"""The gRPC API (cis.v1) of the real `cis serve` process on the real local stack: create,
watch (snapshot, changes, deletion, resume), errors as statuses with the REST error JSON,
tenant isolation and authentication."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from cis.api.grpc_server import json_to_struct, struct_to_json
from cis.api.proto import cis_v1_pb2 as pb
from cis.api.proto import cis_v1_pb2_grpc
from cis.devstack.platform import CisProcess
from tests.integration.helpers import Client, small


def auth(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def stub(cis: CisProcess) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(cis.grpc_target) as channel:
        yield cis_v1_pb2_grpc.InstancesStub(channel)


def phase(event: pb.InstanceEvent) -> str:
    return str(struct_to_json(event.instance.body)["status"]["phase"])


async def next_matching(
    call: Any, what: str, check: Callable[[pb.InstanceEvent], bool], timeout: float = 60.0
) -> pb.InstanceEvent:
    """The first event of the stream that passes `check` (earlier ones are skipped)."""
    seen: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                event = await call.read()
                assert event is not grpc.aio.EOF, f"stream ended waiting for {what}"
                seen.append(
                    f"{event.instance.id}:{phase(event)}{' initial' if event.initial else ''}"
                    f"{' deleted' if event.deleted else ''}"
                )
                if check(event):
                    return event  # type: ignore[no-any-return]
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout:.0f}s; saw {seen}") from None


async def create(stub: Any, key: str, spec: dict[str, Any]) -> pb.Instance:
    return await stub.CreateInstance(pb.CreateInstanceRequest(spec=json_to_struct(spec)), metadata=auth(key))


async def test_watch_sees_snapshot_running_and_deletion_and_resumes(
    stub: Any, cis: CisProcess, tenant_key: str
) -> None:
    run = uuid.uuid4().hex[:10]
    selector = f"grpc-test={run}"
    spec = small(labels={"grpc-test": run})
    spec["containers"][0]["ports"] = [{"port": 8080}]  # an integer through Struct's doubles
    first = await create(stub, tenant_key, spec)
    rest = Client(cis, tenant_key).get(first.id)
    body = struct_to_json(first.body)
    assert {k: body[k] for k in ("id", "tenant", "spec", "size", "labels")} == {
        k: rest[k] for k in ("id", "tenant", "spec", "size", "labels")
    }

    watch = stub.WatchInstances(pb.WatchInstancesRequest(label_selector=selector), metadata=auth(tenant_key))
    try:
        initial = await next_matching(watch, "the snapshot", lambda e: e.instance.id == first.id)
        assert initial.initial and not initial.deleted
        second = await create(stub, tenant_key, spec)
        running = await next_matching(
            watch, "second Running", lambda e: e.instance.id == second.id and phase(e) == "Running"
        )
        assert not running.initial
        assert struct_to_json(running.instance.body)["status"]["podIP"]

        resumed = stub.WatchInstances(
            pb.WatchInstancesRequest(label_selector=selector, resource_version=initial.instance.resource_version),
            metadata=auth(tenant_key),
        )
        try:
            replayed = await next_matching(resumed, "second replayed", lambda e: e.instance.id == second.id, 10)
            assert not replayed.initial
        finally:
            resumed.cancel()

        for inst in (second, first):
            await stub.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id), metadata=auth(tenant_key))
        gone = set()
        while gone != {first.id, second.id}:
            event = await next_matching(watch, "deletions", lambda e: e.deleted)
            gone.add(event.instance.id)
    finally:
        watch.cancel()


async def test_invalid_spec_is_invalid_argument_naming_the_field(stub: Any, tenant_key: str) -> None:
    spec = small()
    spec["containers"][0]["resources"]["cpu"] = -1
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, tenant_key, spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = json.loads(err.value.details())["error"]
    assert error["code"] == "invalid_input" and error["field"] == "containers[0].resources.cpu"


async def test_another_tenants_instance_is_not_found(stub: Any, tenant_key: str, other_tenant_key: str) -> None:
    inst = await create(stub, tenant_key, small())
    try:
        for call in (
            stub.GetInstance(pb.GetInstanceRequest(id=inst.id), metadata=auth(other_tenant_key)),
            stub.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id), metadata=auth(other_tenant_key)),
            stub.GetInstance(pb.GetInstanceRequest(id=inst.id, tenant="acme"), metadata=auth(other_tenant_key)),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        listed = await stub.ListInstances(pb.ListInstancesRequest(), metadata=auth(other_tenant_key))
        assert inst.id not in {i.id for i in listed.items}
        still = await stub.GetInstance(pb.GetInstanceRequest(id=inst.id), metadata=auth(tenant_key))
        assert still.id == inst.id
    finally:
        await stub.DeleteInstance(pb.DeleteInstanceRequest(id=inst.id), metadata=auth(tenant_key))


async def test_bad_key_is_unauthenticated(stub: Any) -> None:
    calls = [
        stub.GetInstance(pb.GetInstanceRequest(id="ci-x"), metadata=auth("cis_nope")),
        stub.ListInstances(pb.ListInstancesRequest(), metadata=()),
        stub.WatchInstances(pb.WatchInstancesRequest(), metadata=auth("cis_nope")).read(),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_resuming_from_before_this_process_is_expired(stub: Any, tenant_key: str) -> None:
    call = stub.WatchInstances(pb.WatchInstancesRequest(resource_version="1"), metadata=auth(tenant_key))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call.read()
    assert err.value.code() == grpc.StatusCode.OUT_OF_RANGE
    assert json.loads(err.value.details())["error"]["code"] == "expired"
