"""The instance cache: relist diffing, stale events, and list+watch against the instant CIS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import pytest

from tests.unit.vk_provider.builders import instance
from vk_provider.cis_client import Expired, Instance, InstanceEvent
from vk_provider.instance_cache import InstanceCache, diff_lists, is_stale
from vk_provider.instant import InstantCis
from vk_provider.translate import LABEL_NODE, LABEL_POD_UID


def test_diff_lists() -> None:
    cached = {"a": instance("a", rv="1"), "b": instance("b", rv="1")}
    listed = [instance("a", rv="1"), instance("c", rv="3")]
    assert [(i.id, deleted) for i, deleted in diff_lists(cached, listed)] == [("c", False), ("b", True)]


@pytest.mark.parametrize(("incoming", "cached", "stale"), [
    ("4", "5", True), ("5", "5", False), ("6", "5", False), ("x", "5", False), ("4", None, False)],
    ids=["older", "same", "newer", "opaque", "uncached"])
def test_is_stale(incoming: str, cached: str | None, stale: bool) -> None:
    assert is_stale(instance(rv=incoming), instance(rv=cached) if cached else None) is stale


def spec(uid: str, node: str = "vnode") -> dict[str, object]:
    return {"containers": [{"name": "main", "image": "nginx"}], "clientToken": uid,
            "labels": {LABEL_NODE: node, LABEL_POD_UID: uid}}


@contextlib.asynccontextmanager
async def running(cache: InstanceCache) -> AsyncIterator[None]:
    task = asyncio.create_task(cache.run(), name="instance-cache-under-test")
    try:
        await asyncio.wait_for(cache.synced.wait(), 5)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not callable(check) or not check():
            await asyncio.sleep(0.01)


async def test_list_then_watch_keeps_the_cache_and_calls_back() -> None:
    cis = InstantCis()
    await cis.create(spec("pod-a"))
    await cis.create(spec("pod-z", node="other"))
    changes: list[tuple[str, bool]] = []
    cache = InstanceCache(cis, f"{LABEL_NODE}=vnode", lambda i, d: changes.append((i.labels[LABEL_POD_UID], d)))
    async with running(cache):
        assert [i.labels[LABEL_POD_UID] for i in cache.by_id.values()] == ["pod-a"]
        a = cache.for_pod("pod-a")
        assert a is not None and a.phase == "Running"
        b = await cis.create(spec("pod-b"))
        await eventually(lambda: cache.for_pod("pod-b") is not None)
        await cis.delete(b.id)
        await eventually(lambda: cache.for_pod("pod-b") is None)
    assert changes == [("pod-a", False), ("pod-b", False), ("pod-b", True)]


class ExpiringCis(InstantCis):
    """CIS restarted: any resume point is older than its history."""

    def __init__(self) -> None:
        super().__init__()
        self.watched_from: list[str] = []

    async def watch(self, label_selector: str, resource_version: str) -> AsyncGenerator[InstanceEvent, None]:
        self.watched_from.append(resource_version)
        if resource_version:
            raise Expired("too old")
        async for event in super().watch(label_selector, resource_version):
            yield event


async def test_an_expired_resume_point_falls_back_to_a_snapshot() -> None:
    cis = ExpiringCis()
    await cis.create(spec("pod-a"))
    seen: list[Instance] = []
    cache = InstanceCache(cis, "", lambda i, d: seen.append(i))
    async with running(cache):
        await eventually(lambda: len(cis.watched_from) == 2)
        await cis.create(spec("pod-b"))
        await eventually(lambda: cache.for_pod("pod-b") is not None)
    assert cis.watched_from[0] != "" and cis.watched_from[1] == ""
