"""REST `GET /v1/instances/{id}/logs?follow=true` over real HTTP, with a log service whose
follow yields new lines as the test appends them: lines arrive while the stream is open,
and a client that goes away ends the follow (CIS's server does not cancel handlers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from cis import logs_api
from cis.domain.ids import TenantName
from cis.logs_api import LogService, respond


class LiveLogs(LogService):
    def __init__(self) -> None:
        super().__init__(es=None, instance_exists=self._exists_always)  # type: ignore[arg-type]
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.open_streams = 0

    @staticmethod
    async def _exists_always(tenant: TenantName, instance_id: str) -> bool:
        return True

    async def stream_logs(self, tenant: TenantName, instance_id: str, params: Mapping[str, str], *,
                          follow: bool) -> AsyncGenerator[bytes, None]:
        self.open_streams += 1
        try:
            yield b""
            yield b"old line\n"
            while True:
                yield await self.queue.get()
        finally:
            self.open_streams -= 1


class UncancellingServer(TestServer):
    """As CIS runs its app: handlers are not cancelled when the client disconnects
    (TestServer always turns that on, whatever it is given)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return await super()._make_runner(**{**kwargs, "handler_cancellation": False})


@pytest.fixture
async def rig(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[TestClient[Any, Any], LiveLogs]]:
    monkeypatch.setattr(logs_api, "CLIENT_CHECK_SECONDS", 0.02)
    logs = LiveLogs()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await respond(request, logs, TenantName("acme"), request.match_info["id"])

    app = web.Application()
    app.router.add_get("/v1/instances/{id}/logs", handler)
    async with TestClient(UncancellingServer(app)) as client:
        yield client, logs


async def test_follow_delivers_new_lines_and_ends_when_the_client_leaves(
        rig: tuple[TestClient[Any, Any], LiveLogs]) -> None:
    client, logs = rig
    resp = await client.get("/v1/instances/ci-1/logs?follow=true")
    async with asyncio.timeout(5):
        assert await resp.content.readline() == b"old line\n"
        logs.queue.put_nowait(b"new line\n")
        assert await resp.content.readline() == b"new line\n"
    resp.close()
    async with asyncio.timeout(5):
        while logs.open_streams:
            await asyncio.sleep(0.01)
