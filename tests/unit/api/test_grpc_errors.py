"""The gRPC error interceptor: the mapping table, then the interceptor on a real in-process
server (loopback, port 0) with handlers that raise."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest

from cis.api.grpc_errors import ErrorMapping, status_of
from cis.api.metrics import Metrics
from cis.domain import errors
from cis.watch_hub import ResourceVersionExpired

TABLE: list[tuple[errors.CisError, grpc.StatusCode, dict[str, Any], tuple[tuple[str, str], ...]]] = [
    (errors.CisError("boom"), grpc.StatusCode.INTERNAL, {"code": "internal"}, ()),
    (
        errors.InvalidInput("containers[0].image", "is required"),
        grpc.StatusCode.INVALID_ARGUMENT,
        {"code": "invalid_input", "field": "containers[0].image"},
        (),
    ),
    (errors.Unauthenticated(), grpc.StatusCode.UNAUTHENTICATED, {"code": "unauthenticated"}, ()),
    (errors.Forbidden("admins only"), grpc.StatusCode.PERMISSION_DENIED, {"code": "forbidden"}, ()),
    (
        errors.NotFound("instance", "ci-x"),
        grpc.StatusCode.NOT_FOUND,
        {"code": "not_found", "kind": "instance", "name": "ci-x"},
        (),
    ),
    (errors.Conflict("clientToken reused"), grpc.StatusCode.ALREADY_EXISTS, {"code": "conflict"}, ()),
    (
        errors.QuotaExceeded("vcpu", "over quota"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        {"code": "quota_exceeded", "resource": "vcpu"},
        (),
    ),
    (
        errors.RateLimited(2.5),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        {"code": "rate_limited", "retryAfterSeconds": 3},
        (("retry-after", "3"),),
    ),
    (
        errors.Temporary("etcd down", retry_after=2),
        grpc.StatusCode.UNAVAILABLE,
        {"code": "unavailable", "retryAfterSeconds": 2},
        (("retry-after", "2"),),
    ),
    (errors.Temporary("busy"), grpc.StatusCode.UNAVAILABLE, {"code": "unavailable"}, ()),
    (errors.Permanent("broken"), grpc.StatusCode.INTERNAL, {"code": "permanent_failure"}, ()),
    (errors.NotImplementedCapability("no logs"), grpc.StatusCode.UNIMPLEMENTED, {"code": "not_implemented"}, ()),
    (ResourceVersionExpired(1, 5), grpc.StatusCode.OUT_OF_RANGE, {"code": "expired", "field": "resource_version"}, ()),
]


@pytest.mark.parametrize(("exc", "code", "body", "trailing"), TABLE, ids=[type(row[0]).__name__ for row in TABLE])
def test_each_error_maps_to_its_status_with_the_rest_json_as_details(
    exc: errors.CisError, code: grpc.StatusCode, body: dict[str, Any], trailing: tuple[tuple[str, str], ...]
) -> None:
    got_code, details, got_trailing = status_of(exc)
    assert got_code == code
    assert json.loads(details) == exc.to_json()
    assert body.items() <= json.loads(details)["error"].items()
    assert got_trailing == trailing


def test_the_table_covers_the_whole_error_tree() -> None:
    assert {type(row[0]) for row in TABLE} >= set(errors.ALL_ERRORS)


# --- on a real server ---------------------------------------------------------------------------

SERVICE = "test.Errors"


async def raise_invalid(request: bytes, context: Any) -> bytes:
    raise errors.InvalidInput("containers[0].resources.cpu", "must be greater than 0")


async def raise_unexpected(request: bytes, context: Any) -> bytes:
    raise RuntimeError("password=hunter2 at /etc/secret")


async def echo(request: bytes, context: Any) -> bytes:
    return request


async def two_then_unavailable(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"one"
    yield b"two"
    raise errors.Temporary("the watch fell behind", retry_after=1)


METRICS = Metrics()


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    metrics = METRICS
    server = grpc.aio.server(interceptors=[ErrorMapping(metrics)])
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Invalid": grpc.unary_unary_rpc_method_handler(raise_invalid),
                    "Unexpected": grpc.unary_unary_rpc_method_handler(raise_unexpected),
                    "Echo": grpc.unary_unary_rpc_method_handler(echo),
                    "Stream": grpc.unary_stream_rpc_method_handler(two_then_unavailable),
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            yield ch
    finally:
        await server.stop(None)


async def test_cis_error_becomes_its_status_and_json_details(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Invalid")(b"x")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert json.loads(err.value.details())["error"]["field"] == "containers[0].resources.cpu"


async def test_unexpected_error_is_internal_without_internals_and_logged(
    channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="cis.api.grpc_errors"), pytest.raises(grpc.aio.AioRpcError) as err:
        await channel.unary_unary(f"/{SERVICE}/Unexpected")(b"x")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in err.value.details()
    assert json.loads(err.value.details()) == {"error": {"code": "internal", "message": "internal error"}}
    record = next(r for r in caplog.records if "unhandled error in /test.Errors/Unexpected" in r.getMessage())
    assert record.exc_info is not None and "hunter2" in str(record.exc_info[1])


async def test_stream_error_after_messages_ends_the_stream_with_the_status(channel: grpc.aio.Channel) -> None:
    call = channel.unary_stream(f"/{SERVICE}/Stream")(b"x")
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for message in call:
            got.append(message)
    assert got == [b"one", b"two"]
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("retry-after", "1") in tuple(err.value.trailing_metadata() or ())


async def test_calls_are_counted_by_method_and_code(channel: grpc.aio.Channel) -> None:
    METRICS.counters.clear()
    assert await channel.unary_unary(f"/{SERVICE}/Echo")(b"hi") == b"hi"
    with pytest.raises(grpc.aio.AioRpcError):
        await channel.unary_unary(f"/{SERVICE}/Invalid")(b"x")
    text = METRICS.render()
    assert 'cis_grpc_requests_total{code="OK",method="/test.Errors/Echo"} 1' in text
    assert 'cis_grpc_requests_total{code="INVALID_ARGUMENT",method="/test.Errors/Invalid"} 1' in text
