"""One container's log from CIS to a `/containerLogs` client, streamed as the kubelet does.

CIS's GetLogs stream yields bytes chunks. Errors before the first chunk become statuses
(404, 400, 501); with `follow` CIS sends an empty first chunk as soon as it has checked
the request, so a follow of a quiet container still starts at once. The response headers
go out within `first_chunk_wait` whatever CIS does (the apiserver gives a kubelet 5 s to
answer). Each chunk is written as it arrives: aiohttp sends every write as one HTTP chunk
and the apiserver flushes each one to `kubectl logs -f`.

A follow ends as the kubelet's does: when the client goes away (aiohttp cancels the
handler, which cancels the gRPC call and CIS's Elasticsearch polling), or when the
container ends, `drain` seconds after the provider sees it end: the last lines a container
writes are still on their way through Filebeat when its end is reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from aiohttp import web

from vk_provider.cis_client import CisError, Instance

log = logging.getLogger(__name__)

ENDED_PHASES = ("Succeeded", "Failed", "Deleting")


@dataclass(frozen=True)
class StreamTimings:
    # The apiserver waits 5 s for a kubelet's response headers (--kubelet-timeout); CIS
    # answers a plain read within a second, so errors still become statuses.
    first_chunk_wait: float = 1.0
    # How often a follow looks at the instance cache for the container's end (a dict read).
    check_interval: float = 1.0
    # Filebeat reads an idle file at most every 10 s (its harvester backoff), flushes each
    # second, Elasticsearch refreshes each second and CIS polls each second: lines written
    # just before the end arrive within about 13 s, mostly much sooner.
    drain: float = 15.0

    def __post_init__(self) -> None:
        for name in ("first_chunk_wait", "check_interval", "drain"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


def container_ended(inst: Instance | None, container: str) -> bool:
    """Whether `container` of `inst` will write no more: the instance is gone, ending or
    ended, or that container has terminated (a restart is a new container, as for the
    kubelet, whose follow ends with the container it started on)."""
    if inst is None or inst.phase in ENDED_PHASES:
        return True
    return any(c.get("name") == container and c.get("state") == "Terminated"
               for c in inst.status.get("containers") or [])


async def _next(chunks: AsyncGenerator[bytes, None]) -> bytes | None:
    """The next chunk, or None once the stream is over (b"" is a chunk: "started")."""
    return await anext(chunks, None)


async def _copy(chunks: AsyncGenerator[bytes, None], resp: web.StreamResponse) -> None:
    async for chunk in chunks:
        if chunk:
            await resp.write(chunk)


async def _settle(task: asyncio.Task[None]) -> None:
    """Cancel `task` if it still runs and wait for it, raising what it raised (never its
    cancellation: ours would still propagate from the wait)."""
    if not task.done():
        task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.result()


async def _follow(chunks: AsyncGenerator[bytes, None], resp: web.StreamResponse,
                  ended: Callable[[], bool], timings: StreamTimings, name: str) -> None:
    """Copy until CIS's stream ends, or until `drain` after `ended()` turns true."""
    copier = asyncio.create_task(_copy(chunks, resp), name=f"logs-follow {name}")
    try:
        while not copier.done():
            await asyncio.wait({copier}, timeout=timings.check_interval)
            if not copier.done() and ended():
                log.debug("log follow %s: the container ended; draining for %.0fs", name, timings.drain)
                await asyncio.wait({copier}, timeout=timings.drain)
                break
    finally:
        await _settle(copier)


async def stream_logs(request: web.Request, chunks: AsyncGenerator[bytes, None], *,
                      ended: Callable[[], bool] | None = None,
                      timings: StreamTimings = StreamTimings()) -> web.StreamResponse:
    """Answer `request` with `chunks`; `ended` (follow only) says when the container ended.

    Always closes `chunks`. Errors before the first chunk propagate (the caller's middleware
    turns them into statuses); after it they are logged and the stream just ends.
    """
    first: asyncio.Task[bytes | None] = asyncio.create_task(_next(chunks), name=f"logs-first {request.path}")
    try:
        await asyncio.wait({first}, timeout=timings.first_chunk_wait)
        if first.done():
            first.result()  # an error here is still a status
        resp = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
        await resp.prepare(request)
        try:
            head = await first
            if head is not None:
                if head:
                    await resp.write(head)
                if ended is None:
                    await _copy(chunks, resp)
                else:
                    await _follow(chunks, resp, ended, timings, request.path)
        except CisError as exc:
            log.warning("log stream %s ended: %s", request.path, exc)
        except ConnectionResetError:
            log.debug("log stream %s: the client went away", request.path)
            return resp
        await resp.write_eof()
        return resp
    finally:
        if not first.done():
            first.cancel()
            await asyncio.wait({first})
        await chunks.aclose()
