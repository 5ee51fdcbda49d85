"""The gRPC adapter: status codes become our errors, Struct numbers become ints again, and
the calls work against a real grpc.aio server playing CIS (a fake servicer, one seam)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
from google.protobuf import json_format

from cis.api.proto import cis_v1_pb2 as pb
from cis.api.proto import cis_v1_pb2_grpc
from vk_provider import cis_client
from vk_provider.cis_client import GrpcCis, LogOptions, error_from_status, plain_numbers, to_struct


def details(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"error": {"code": code, "message": message, **extra}})


@pytest.mark.parametrize(("code", "body", "kind"), [
    ("NOT_FOUND", details("not_found", "no such instance"), cis_client.NotFound),
    ("INVALID_ARGUMENT", details("invalid_input", "bad", field="containers[0].image"), cis_client.InvalidInput),
    ("OUT_OF_RANGE", details("expired", "too old", field="resource_version"), cis_client.Expired),
    ("ALREADY_EXISTS", details("conflict", "token reused"), cis_client.Conflict),
    ("UNIMPLEMENTED", details("not_implemented", "no logs"), cis_client.Unimplemented),
    ("UNAUTHENTICATED", details("unauthenticated", "key"), cis_client.Rejected),
    ("RESOURCE_EXHAUSTED", details("rate_limited", "slow down", retryAfter=3), cis_client.Temporary),
    ("UNAVAILABLE", "connection refused", cis_client.Temporary),
], ids=["not-found", "invalid", "expired", "conflict", "unimplemented", "unauthenticated", "rate-limited",
        "unavailable-plain-text"])
def test_error_from_status(code: str, body: str, kind: type[Exception]) -> None:
    err = error_from_status(code, body)
    assert type(err) is kind


def test_error_details_are_kept() -> None:
    err = error_from_status("INVALID_ARGUMENT", details("invalid_input", "bad", field="image"))
    assert isinstance(err, cis_client.InvalidInput) and (err.field, str(err)) == ("image", "image: bad")
    slow = error_from_status("RESOURCE_EXHAUSTED", details("rate_limited", "slow", retryAfter=3))
    assert isinstance(slow, cis_client.Temporary) and slow.retry_after == 3.0


def test_plain_numbers() -> None:
    assert plain_numbers({"a": 1.0, "b": [2.0, 2.5], "c": {"d": True, "e": "x"}}) == {
        "a": 1, "b": [2, 2.5], "c": {"d": True, "e": "x"}}


class FakeCis:
    """Just enough of cis.v1: create by clientToken, paged list, delete, watch, logs."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.metadata: list[dict[str, str]] = []

    def _msg(self, iid: str) -> pb.Instance:
        return pb.Instance(id=iid, uid="u-" + iid, body=to_struct(self.items[iid]), resource_version="7")

    async def CreateInstance(self, request: pb.CreateInstanceRequest, context: Any) -> pb.Instance:
        self.metadata.append(dict(context.invocation_metadata()))
        spec = json_format.MessageToDict(request.spec)
        iid = "ci-" + str(spec.get("clientToken", "x"))[:6]
        self.items[iid] = {"id": iid, "labels": {"n": "1"}, "spec": {"containers": [{"ports": [{"port": 80}]}]},
                           "status": {"phase": "Queued", "containers": [{"restartCount": 0}]}}
        return self._msg(iid)

    async def GetInstance(self, request: pb.GetInstanceRequest, context: Any) -> pb.Instance:
        if request.id not in self.items:
            await context.abort(grpc.StatusCode.NOT_FOUND, details("not_found", "no such instance"))
        return self._msg(request.id)

    async def ListInstances(self, request: pb.ListInstancesRequest, context: Any) -> pb.ListInstancesResponse:
        ids = sorted(self.items)
        start = int(request.continue_token or 0)
        page = ids[start:start + (request.limit or 100)]
        more = start + len(page) < len(ids)
        return pb.ListInstancesResponse(items=[self._msg(i) for i in page],
                                        continue_token=str(start + len(page)) if more else "")

    async def DeleteInstance(self, request: pb.DeleteInstanceRequest, context: Any) -> pb.Instance:
        if request.id not in self.items:
            await context.abort(grpc.StatusCode.NOT_FOUND, details("not_found", "gone"))
        msg = self._msg(request.id)
        del self.items[request.id]
        return msg

    async def WatchInstances(self, request: pb.WatchInstancesRequest, context: Any) -> AsyncIterator[pb.InstanceEvent]:
        for iid in sorted(self.items):
            yield pb.InstanceEvent(instance=self._msg(iid), initial=True)
        yield pb.InstanceEvent(instance=self._msg(sorted(self.items)[0]), deleted=True)
        await asyncio.sleep(3600)

    async def GetLogs(self, request: pb.GetLogsRequest, context: Any) -> AsyncIterator[pb.LogChunk]:
        if request.container == "none":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, details("not_implemented", "no log service"))
        def number(name: str) -> str:
            return str(getattr(request, name)) if request.HasField(name) else "unset"

        yield pb.LogChunk(data=f"tail={number('tail_lines')} since={number('since_seconds')} "
                               f"limit={number('limit_bytes')} follow={request.follow}\n".encode())


@pytest.fixture
async def cis() -> AsyncIterator[tuple[GrpcCis, FakeCis]]:
    fake = FakeCis()
    server = grpc.aio.server()
    cis_v1_pb2_grpc.add_InstancesServicer_to_server(fake, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = GrpcCis(f"127.0.0.1:{port}", "k3y", tenant="t1", timeout=5)
    try:
        yield client, fake
    finally:
        await client.close()
        await server.stop(0)


async def test_calls_against_a_real_grpc_server(cis: tuple[GrpcCis, FakeCis]) -> None:
    client, fake = cis
    created = [await client.create({"clientToken": f"{n:06d}", "containers": []}) for n in range(3)]
    assert fake.metadata[0]["authorization"] == "Bearer k3y"
    first = created[0]
    assert (first.id, first.uid, first.phase, first.labels) == ("ci-000000", "u-ci-000000", "Queued", {"n": "1"})
    assert first.body["spec"]["containers"][0]["ports"][0]["port"] == 80
    assert isinstance(first.body["spec"]["containers"][0]["ports"][0]["port"], int)
    assert [i.id for i in await client.list("n=1")] == ["ci-000000", "ci-000001", "ci-000002"]
    await client.delete("ci-000001")
    await client.delete("ci-000001")  # gone already: still fine
    with pytest.raises(cis_client.NotFound):
        await client.get("ci-000001")
    assert (await client.get("ci-000002")).id == "ci-000002"


async def test_watch_and_logs(cis: tuple[GrpcCis, FakeCis]) -> None:
    client, _ = cis
    for n in range(2):
        await client.create({"clientToken": f"{n:06d}"})
    events = []
    stream = client.watch("", "")
    async for event in stream:
        events.append((event.instance.id, event.initial, event.deleted))
        if len(events) == 3:
            break
    await stream.aclose()
    assert events == [("ci-000000", True, False), ("ci-000001", True, False), ("ci-000000", False, True)]
    chunks = [c async for c in client.logs("ci-000000", LogOptions("main", tail_lines=5))]
    assert chunks == [b"tail=5 since=unset limit=unset follow=False\n"]
    with pytest.raises(cis_client.Unimplemented):
        async for _ in client.logs("ci-000000", LogOptions("none")):
            pass


@pytest.mark.parametrize(("options", "sent"), [
    (LogOptions("main"), b"tail=unset since=unset limit=unset follow=False\n"),
    (LogOptions("main", tail_lines=0, follow=True), b"tail=0 since=unset limit=unset follow=True\n"),
    (LogOptions("main", since_seconds=30, limit_bytes=100), b"tail=unset since=30 limit=100 follow=False\n"),
], ids=["none", "tail-zero", "since-and-limit"])
async def test_log_numbers_are_sent_only_when_given(cis: tuple[GrpcCis, FakeCis], options: LogOptions,
                                                    sent: bytes) -> None:
    client, _ = cis
    assert [c async for c in client.logs("ci-000000", options)] == [sent]
