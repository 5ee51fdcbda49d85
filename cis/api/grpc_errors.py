"""The one gRPC server interceptor that turns errors into statuses (the twin of the aiohttp
middleware in `cis.api.errors`).

A `CisError` ends the call with the status its class names (`grpc_status`) and, as
details, the REST error JSON (`{"error": {"code", "message", "field", ...}}`), so both APIs
report an error the same way. Anything else is logged with its traceback and answered
INTERNAL without internals. Handlers raise; they never catch-and-map. Each call is also
counted in `cis_grpc_requests_total{method,code}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from cis.api.metrics import Metrics
from cis.domain import errors

log = logging.getLogger(__name__)

INTERNAL_DETAILS = json.dumps({"error": {"code": "internal", "message": "internal error"}})
# Status codes that mean "our side or a dependency failed" rather than "the request".
SERVER_SIDE = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN})


def status_of(exc: errors.CisError) -> tuple[Any, str, tuple[tuple[str, str], ...]]:
    """(grpc.StatusCode, details JSON, trailing metadata) for a CIS error."""
    code = getattr(grpc.StatusCode, exc.grpc_status, grpc.StatusCode.INTERNAL)
    trailing: tuple[tuple[str, str], ...] = ()
    if isinstance(exc, errors.RateLimited | errors.Temporary) and exc.retry_after_header():
        trailing = (("retry-after", str(exc.retry_after_header())),)
    return code, json.dumps(exc.to_json()), trailing


class ErrorMapping(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc ships no type stubs
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        if metrics is not None:
            metrics.describe("cis_grpc_requests_total", "gRPC calls by method and status code")

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method)
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._call(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._call(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return grpc.stream_stream_rpc_method_handler(
            self._stream(handler.stream_stream, method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _call(
        self, behavior: Callable[[Any, Any], Awaitable[Any]], method: str
    ) -> Callable[[Any, Any], Awaitable[Any]]:
        async def call(request: Any, context: Any) -> Any:
            try:
                response = await behavior(request, context)
            except grpc.aio.AbortError:
                raise  # a status set on purpose by grpc or a handler: not ours to map
            except asyncio.CancelledError:
                self._count(method, grpc.StatusCode.CANCELLED)
                raise
            except Exception as exc:
                await self._abort(context, method, exc)
            self._count(method, grpc.StatusCode.OK)
            return response

        return call

    def _stream(
        self, behavior: Callable[[Any, Any], AsyncIterator[Any]], method: str
    ) -> Callable[[Any, Any], AsyncIterator[Any]]:
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for message in behavior(request, context):
                    yield message
            except grpc.aio.AbortError:
                raise  # a status set on purpose by grpc or a handler: not ours to map
            except asyncio.CancelledError:
                self._count(method, grpc.StatusCode.CANCELLED)
                raise
            except Exception as exc:
                await self._abort(context, method, exc)
            self._count(method, grpc.StatusCode.OK)

        return stream

    async def _abort(self, context: Any, method: str, exc: Exception) -> None:
        if isinstance(exc, errors.CisError):
            code, details, trailing = status_of(exc)
            if code in SERVER_SIDE:
                log.warning("%s -> %s: %s", method, code.name, exc)
        else:
            log.error("unhandled error in %s", method, exc_info=exc)
            code, details, trailing = grpc.StatusCode.INTERNAL, INTERNAL_DETAILS, ()
        self._count(method, code)
        await context.abort(code, details, trailing)

    def _count(self, method: str, code: Any) -> None:
        if self._metrics is not None:
            self._metrics.inc("cis_grpc_requests_total", method=method, code=code.name)
