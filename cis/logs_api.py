"""Container logs of an instance, from Elasticsearch, for REST, gRPC and so the virtual
kubelet's `kubectl logs`: one query function (`cis_logging`) behind all of them.

Logs outlive the instance: an id without a ContainerInstance is still answered when the
tenant's log index has lines for it. Another tenant's instance is simply not found.

A REST follow ends when its client goes away. CIS's HTTP server does not cancel handlers on
a disconnect (a create must not stop half-way), so the follow checks for its client itself;
otherwise a quiet stream would poll Elasticsearch until the next line failed to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

from aiohttp import web
from elasticsearch import AsyncElasticsearch

import cis_logging
from cis.domain import errors
from cis.domain.ids import TenantName
from cis_logging.errors import InvalidParameter, NotFound, Unavailable

log = logging.getLogger(__name__)

Exists = Callable[[TenantName, str], Awaitable[bool]]
CLIENT_CHECK_SECONDS = 1.0  # how soon a follow notices its client left (a property read)


def translate(exc: Exception) -> errors.CisError:
    """cis_logging's errors are ours at this edge."""
    if isinstance(exc, InvalidParameter):
        return errors.InvalidInput(exc.field, str(exc.args[-1]) if exc.args else "invalid")
    if isinstance(exc, NotFound):
        return errors.NotFound("logs", str(exc))
    if isinstance(exc, Unavailable):
        return errors.Temporary(f"log store unavailable: {exc}", retry_after=5)
    raise exc


class LogService:
    def __init__(self, es: AsyncElasticsearch, instance_exists: Exists) -> None:
        self.es = es
        self._exists = instance_exists

    async def check_visible(self, tenant: TenantName, instance_id: str) -> None:
        if await self._exists(tenant, instance_id):
            return
        try:
            seen = await cis_logging.instance_seen(self.es, tenant, instance_id)
        except Unavailable as exc:
            raise translate(exc) from exc
        if not seen:
            raise errors.NotFound("instance", instance_id)

    async def read(self, tenant: TenantName, instance_id: str, params: Mapping[str, str]) -> cis_logging.LogPage:
        await self.check_visible(tenant, instance_id)
        try:
            query = cis_logging.query_from_params(tenant, instance_id, params)
            return await cis_logging.fetch_logs(self.es, query)
        except (InvalidParameter, NotFound, Unavailable) as exc:
            raise translate(exc) from exc

    async def stream_logs(self, tenant: TenantName, instance_id: str, params: Mapping[str, str], *,
                          follow: bool) -> AsyncGenerator[bytes, None]:
        """The logs as bytes chunks; with `follow`, keeps yielding new lines until cancelled.
        Visibility and parameters are checked before the first chunk."""
        timestamps = params.get("timestamps", "").lower() in ("1", "true")
        if not follow:
            page = await self.read(tenant, instance_id, params)
            if page.lines:
                yield page.text(timestamps=timestamps).encode()
            return
        await self.check_visible(tenant, instance_id)
        try:
            query = cis_logging.query_from_params(tenant, instance_id, params)
        except InvalidParameter as exc:
            raise translate(exc) from exc
        yield b""  # checks passed: the caller may start its response now
        try:
            async for line in cis_logging.follow_logs(self.es, query):
                yield line.render(timestamps=timestamps).encode()
        except (InvalidParameter, NotFound, Unavailable) as exc:
            raise translate(exc) from exc


async def respond(request: web.Request, logs: LogService, tenant: TenantName, instance_id: str) -> web.StreamResponse:
    """GET /v1/instances/{id}/logs: text like `kubectl logs`, JSON with paging on
    `Accept: application/json`, a chunked stream with `follow=true`."""
    params = dict(request.query)
    follow = params.pop("follow", "false").lower() in ("1", "true")
    params.pop("tenant", None)
    if follow:
        stream = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        chunks = logs.stream_logs(tenant, instance_id, params, follow=True)
        try:
            first = await anext(chunks, b"")  # errors before the stream starts are still 4xx
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            await stream.write(first)
            await _copy_while_connected(request, stream, chunks)
        finally:
            await chunks.aclose()
        return stream
    page = await logs.read(tenant, instance_id, params)
    if "application/json" in request.headers.get("Accept", ""):
        timestamps = params.get("timestamps", "").lower() in ("1", "true")
        body = {"items": [line.to_json(timestamps=timestamps) for line in page.lines],
                "truncated": page.truncated}
        if page.next_token and page.has_more:
            body["pageToken"] = page.next_token
        return web.json_response(body)
    return web.Response(text=page.text(timestamps=params.get("timestamps", "").lower() in ("1", "true")),
                        content_type="text/plain")


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def _copy(chunks: AsyncGenerator[bytes, None], stream: web.StreamResponse) -> None:
    async for chunk in chunks:
        await stream.write(chunk)


async def _copy_while_connected(request: web.Request, stream: web.StreamResponse,
                                chunks: AsyncGenerator[bytes, None]) -> None:
    copier = asyncio.create_task(_copy(chunks, stream), name=f"logs-follow {request.path}")
    try:
        while not copier.done():
            await asyncio.wait({copier}, timeout=CLIENT_CHECK_SECONDS)
            if not copier.done() and client_gone(request):
                log.debug("follow %s: the client went away", request.path)
                break
    finally:
        if not copier.done():
            copier.cancel()
        await asyncio.wait({copier})  # our own cancellation still propagates from here
    if copier.cancelled():
        return
    try:
        copier.result()
    except ConnectionResetError:
        log.debug("follow %s: the client went away", request.path)
