"""`kubectl logs -f` as the kubelet API serves it: over real HTTP, with a CIS fake whose log
stream behaves like cis.v1's GetLogs (an empty first chunk once the request is checked,
then the lines, then new lines as the test appends them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.vk_provider.builders import instance, pod
from vk_provider.auth import User
from vk_provider.cis_client import Instance, LogOptions, Temporary
from vk_provider.instant import InstantCis
from vk_provider.kubelet_api import KubeletView, create_app
from vk_provider.log_stream import StreamTimings, container_ended

ADMIN = {"Authorization": "Bearer admin"}
URL = "/containerLogs/default/web-1/main"
FAST = StreamTimings(first_chunk_wait=1.0, check_interval=0.02, drain=0.2)


class Admin:
    async def authenticate(self, peercert: Any, authorization: str | None) -> User | None:
        return User("admin") if authorization == ADMIN["Authorization"] else None

    async def allowed(self, user: User, method: str, path: str) -> bool:
        return True


class LiveLogs(InstantCis):
    """GetLogs as CIS streams it; `append` adds a line for every open follow."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[LogOptions] = []
        self.open_streams = 0
        self._queues: list[asyncio.Queue[bytes]] = []
        self.fail_after_start = False

    def append(self, line: bytes) -> None:
        for q in self._queues:
            q.put_nowait(line)

    async def logs(self, instance_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        self.requests.append(options)
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._queues.append(queue)
        self.open_streams += 1
        try:
            if options.follow:
                yield b""  # the request is checked: the caller may answer 200
            if options.tail_lines != 0:
                yield b"old line\n"
            if self.fail_after_start:
                raise Temporary("log store unavailable")
            while options.follow:
                yield await queue.get()
        finally:
            self._queues.remove(queue)
            self.open_streams -= 1


@dataclass
class Rig:
    client: TestClient[Any, Any]
    cis: LiveLogs
    current: dict[str, Instance | None] = field(default_factory=dict)

    def end(self, inst: Instance | None) -> None:
        self.current["inst"] = inst

    async def streams_closed(self) -> None:
        async with asyncio.timeout(5):
            while self.cis.open_streams:
                await asyncio.sleep(0.01)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    cis = LiveLogs()
    web_pod = pod("web-1", uid="uid-1")
    current: dict[str, Instance | None] = {"inst": instance("ci-1", phase="Running")}
    view = KubeletView(node="vnode", started=datetime(2026, 11, 21, tzinfo=UTC), pods=lambda: [web_pod],
                       pod=lambda ns, name: web_pod if name == "web-1" else None,
                       instance_for=lambda uid: current["inst"], cis=cis, auth=Admin(), log_timings=FAST)
    async with TestClient(TestServer(create_app(view), handler_cancellation=True)) as client:
        yield Rig(client, cis, current)


async def readline(resp: Any) -> bytes:
    async with asyncio.timeout(5):
        return bytes(await resp.content.readline())


async def test_follow_delivers_lines_appended_after_the_request(rig: Rig) -> None:
    resp = await rig.client.get(f"{URL}?follow=true", headers=ADMIN)
    assert resp.status == 200
    assert await readline(resp) == b"old line\n"
    for n in range(3):
        rig.cis.append(f"new {n}\n".encode())
        assert await readline(resp) == f"new {n}\n".encode()
    resp.close()
    await rig.streams_closed()


async def test_a_quiet_follow_answers_at_once(rig: Rig) -> None:
    async with asyncio.timeout(FAST.first_chunk_wait / 2):
        resp = await rig.client.get(f"{URL}?follow=true&tailLines=0", headers=ADMIN)
    assert resp.status == 200 and rig.cis.requests[-1].tail_lines == 0
    rig.cis.append(b"first\n")
    assert await readline(resp) == b"first\n"
    resp.close()
    await rig.streams_closed()


async def test_follow_ends_when_the_client_goes_away(rig: Rig) -> None:
    resp = await rig.client.get(f"{URL}?follow=true", headers=ADMIN)
    assert await readline(resp) == b"old line\n"
    resp.close()
    await rig.streams_closed()  # the CIS stream (a gRPC call in production) is closed too


@pytest.mark.parametrize("ended", [instance("ci-1", phase="Succeeded"), None,
                                   instance("ci-1", phase="Deleting")],
                         ids=["succeeded", "gone", "deleting"])
async def test_follow_ends_after_a_drain_when_the_container_ends(rig: Rig, ended: Instance | None) -> None:
    resp = await rig.client.get(f"{URL}?follow=true", headers=ADMIN)
    assert await readline(resp) == b"old line\n"
    rig.end(ended)
    rig.cis.append(b"written just before the end\n")  # still shipped during the drain
    async with asyncio.timeout(5):
        rest = await resp.read()
    assert rest == b"written just before the end\n"
    await rig.streams_closed()


async def test_follow_of_an_ended_container_reads_what_there_is(rig: Rig) -> None:
    rig.end(instance("ci-1", phase="Failed"))
    resp = await rig.client.get(f"{URL}?follow=true", headers=ADMIN)
    async with asyncio.timeout(5):
        assert (resp.status, await resp.read()) == (200, b"old line\n")
    assert rig.cis.requests[-1].follow is False


async def test_a_cis_error_after_the_start_ends_the_stream(rig: Rig) -> None:
    rig.cis.fail_after_start = True
    resp = await rig.client.get(f"{URL}?follow=true", headers=ADMIN)
    async with asyncio.timeout(5):
        assert (resp.status, await resp.read()) == (200, b"old line\n")
    await rig.streams_closed()


async def test_tail_zero_reaches_cis(rig: Rig) -> None:
    resp = await rig.client.get(f"{URL}?tailLines=0", headers=ADMIN)
    assert (resp.status, await resp.read()) == (200, b"")
    assert rig.cis.requests[-1] == LogOptions("main", tail_lines=0)


@pytest.mark.parametrize(("inst", "ended"), [
    (instance("ci-1", phase="Running"), False),
    (instance("ci-1", phase="Queued"), False),
    (instance("ci-1", phase="Succeeded"), True),
    (instance("ci-1", phase="Failed"), True),
    (instance("ci-1", phase="Deleting"), True),
    (None, True),
    (instance("ci-1", phase="Running", containers=[{"name": "main", "state": "Terminated"},
                                                   {"name": "side", "state": "Running"}]), True),
    (instance("ci-1", phase="Running", containers=[{"name": "main", "state": "Running"},
                                                   {"name": "side", "state": "Terminated"}]), False),
], ids=["running", "queued", "succeeded", "failed", "deleting", "gone", "container-terminated",
        "other-container-terminated"])
def test_container_ended(inst: Instance | None, ended: bool) -> None:
    assert container_ended(inst, "main") is ended


def test_timings_refuse_negative_values() -> None:
    with pytest.raises(ValueError, match="drain"):
        StreamTimings(drain=-1)
