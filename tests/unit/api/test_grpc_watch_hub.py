"""The watch hub: selectors, filters, snapshot and replay (pure), then the hub with a fake
informer (the one seam): fan-out, tenant filtering, resume, expiry and slow subscribers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cis.domain import errors
from cis.domain.selectors import LabelSelector, parse_label_selector
from cis.watch_hub import (
    Change,
    HubSettings,
    Recorded,
    ResourceVersionExpired,
    WatchFilter,
    WatchHub,
    parse_resource_version,
    replay_since,
    snapshot,
)


def cr(name: str, rv: int, tenant: str = "acme", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": f"tenant-{tenant}",
            "resourceVersion": str(rv),
            "labels": {"cis.io/tenant": tenant, **labels},
        }
    }


LABELS = {"app": "web", "tier": "front", "cis.io/tenant": "acme"}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app = web , tier=front", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (db, web)", True),
        ("app notin (web)", False),
        ("missing notin (a,b)", True),
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("cis.io/tenant=acme", True),
        ("cis.io/tenant=globex", False),
    ],
    ids=lambda v: repr(v) if isinstance(v, str) else None,
)
def test_label_selector_matches_like_kubernetes(selector: str, matches: bool) -> None:
    assert parse_label_selector(selector).matches(LABELS) is matches


@pytest.mark.parametrize(
    "selector", ["app=", "=web", "app in ()", "app in (a b)", "app=web,", "a b", "app in a"], ids=lambda v: repr(v)
)
def test_label_selector_rejects_malformed_text_naming_the_field(selector: str) -> None:
    if selector == "app=":  # an empty value is valid in Kubernetes
        assert parse_label_selector(selector).matches({"app": ""})
        return
    with pytest.raises(errors.InvalidInput) as err:
        parse_label_selector(selector)
    assert err.value.field == "label_selector"


@pytest.mark.parametrize(
    ("flt", "obj", "expected"),
    [
        (WatchFilter(), cr("a", 1, tenant="globex"), True),
        (WatchFilter("tenant-acme"), cr("a", 1), True),
        (WatchFilter("tenant-acme"), cr("a", 1, tenant="globex"), False),
        (WatchFilter("tenant-acme", parse_label_selector("app=web")), cr("a", 1, app="web"), True),
        (WatchFilter("tenant-acme", parse_label_selector("app=web")), cr("a", 1), False),
        (WatchFilter(None, LabelSelector()), {"metadata": {"name": "a"}}, True),
    ],
    ids=["admin-all", "own-tenant", "other-tenant", "label-match", "label-miss", "no-labels"],
)
def test_filter_by_tenant_namespace_and_labels(flt: WatchFilter, obj: dict[str, Any], expected: bool) -> None:
    assert flt.matches(obj) is expected


@pytest.mark.parametrize(("text", "ok"), [("12", True), ("0", True), ("", False), ("-1", False), ("abc", False)])
def test_resource_version_must_be_a_revision(text: str, ok: bool) -> None:
    if ok:
        assert parse_resource_version(text) == int(text)
    else:
        with pytest.raises(errors.InvalidInput, match="resource_version"):
            parse_resource_version(text)


def rec(position: int, name: str, rv: int, kind: str = "MODIFIED") -> Recorded:
    return Recorded(position, Change(kind, cr(name, rv)))


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (4, ["a@5", "b@6", "c@3", "d@7", "e@8"]),
        (5, ["b@6", "c@3", "d@7", "e@8"]),
        (6, ["c@3", "d@7", "e@8"]),  # c was learnt by a relist at position 7, after 6
        (7, ["c@3", "e@8"]),  # the watcher saw d@7, not c, which shares position 7
        (8, []),
    ],
    ids=lambda v: f"since-{v}" if isinstance(v, int) else None,
)
def test_replay_since_returns_what_the_watcher_has_not_seen(since: int, expected: list[str]) -> None:
    history = [rec(5, "a", 5), rec(6, "b", 6), rec(7, "c", 3, "DELETED"), rec(7, "d", 7), rec(8, "e", 8)]
    got = [f"{c.raw_object['metadata']['name']}@{c.resource_version}" for c in replay_since(history, since)]
    assert got == expected


def test_snapshot_is_initial_filtered_and_oldest_first() -> None:
    latest = [Change("MODIFIED", cr("b", 9)), Change("ADDED", cr("a", 3)), Change("ADDED", cr("x", 1, tenant="globex"))]
    got = snapshot(latest, WatchFilter("tenant-acme"))
    assert [(c.kind, c.initial, c.resource_version) for c in got] == [("ADDED", True, "3"), ("ADDED", True, "9")]


# --- the hub, fed like Platform feeds it ---------------------------------------------------------


@dataclass
class FakeInformer:
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    resource_version: str = "100"


async def deliver(
    hub: WatchHub, informer: FakeInformer, kind: str, obj: dict[str, Any], position: int | None = None
) -> None:
    informer.resource_version = str(position if position is not None else obj["metadata"]["resourceVersion"])
    await hub.listener(kind, obj)


async def take(changes: AsyncIterator[Change], n: int) -> list[str]:
    out = []
    async with asyncio.timeout(2):
        for _ in range(n):
            c = await anext(changes)
            out.append(f"{c.kind}:{c.raw_object['metadata']['name']}@{c.resource_version}{'*' if c.initial else ''}")
    return out


async def synced_hub(settings: HubSettings | None = None) -> tuple[WatchHub, FakeInformer]:
    informer = FakeInformer()
    hub = WatchHub(informer, settings)
    # the initial list: everything at the list's version
    await deliver(hub, informer, "ADDED", cr("a", 90), position=100)
    await deliver(hub, informer, "ADDED", cr("g", 95, tenant="globex"), position=100)
    informer.synced.set()
    return hub, informer


async def test_watch_sends_the_snapshot_then_changes_of_its_tenant_only() -> None:
    hub, informer = await synced_hub()
    async with hub.watch(WatchFilter("tenant-acme")) as changes:
        assert await take(changes, 1) == ["ADDED:a@90*"]
        await deliver(hub, informer, "MODIFIED", cr("g", 101, tenant="globex"))
        await deliver(hub, informer, "ADDED", cr("b", 102))
        await deliver(hub, informer, "DELETED", cr("a", 103))
        assert await take(changes, 2) == ["ADDED:b@102", "DELETED:a@103"]
    assert hub.subscribers == 0


async def test_watch_waits_for_the_informers_first_list() -> None:
    informer = FakeInformer()
    hub = WatchHub(informer)

    async def first() -> list[str]:
        async with hub.watch(WatchFilter()) as changes:
            return await take(changes, 1)

    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(first(), name="watcher")
        await asyncio.sleep(0.01)
        assert not task.done()
        await deliver(hub, informer, "ADDED", cr("a", 7), position=10)
        informer.synced.set()
    assert task.result() == ["ADDED:a@7*"]


async def test_resume_replays_later_changes_without_a_snapshot() -> None:
    hub, informer = await synced_hub()
    await deliver(hub, informer, "MODIFIED", cr("a", 101))
    await deliver(hub, informer, "MODIFIED", cr("a", 102))
    async with hub.watch(WatchFilter("tenant-acme"), since=101) as changes:
        assert await take(changes, 1) == ["MODIFIED:a@102"]
        await deliver(hub, informer, "DELETED", cr("a", 104))
        assert await take(changes, 1) == ["DELETED:a@104"]


async def test_resume_from_before_the_history_is_expired() -> None:
    hub, informer = await synced_hub(HubSettings(history=3))
    with pytest.raises(ResourceVersionExpired) as err:
        async with hub.watch(WatchFilter(), since=99):  # before the first list (100)
            pass
    assert err.value.grpc_status == "OUT_OF_RANGE" and err.value.field == "resource_version"
    for rv in (101, 102, 103, 104):  # the fourth evicts the change at 101
        await deliver(hub, informer, "MODIFIED", cr("a", rv))
    for since in (100, 101):
        with pytest.raises(ResourceVersionExpired):
            async with hub.watch(WatchFilter(), since=since):
                pass
    async with hub.watch(WatchFilter(), since=102) as changes:
        assert await take(changes, 2) == ["MODIFIED:a@103", "MODIFIED:a@104"]
    assert hub.subscribers == 0


async def test_resume_when_nothing_changed_since_the_list_uses_the_informers_version() -> None:
    informer = FakeInformer(resource_version="50")
    informer.synced.set()
    hub = WatchHub(informer)
    async with hub.watch(WatchFilter(), since=50) as changes:
        await deliver(hub, informer, "ADDED", cr("a", 51))
        assert await take(changes, 1) == ["ADDED:a@51"]


async def test_a_slow_subscriber_is_dropped_and_others_keep_going() -> None:
    hub, informer = await synced_hub(HubSettings(queue_size=2))
    async with hub.watch(WatchFilter(), since=100) as slow, hub.watch(WatchFilter(), since=100) as fast:
        for rv in (101, 102):
            await deliver(hub, informer, "MODIFIED", cr("a", rv))
        assert await take(fast, 2) == ["MODIFIED:a@101", "MODIFIED:a@102"]
        await deliver(hub, informer, "MODIFIED", cr("a", 103))  # slow's queue is full: dropped
        assert hub.subscribers == 1
        with pytest.raises(errors.Temporary, match="fell more than 2 changes behind"):
            await anext(slow)
        assert await take(fast, 1) == ["MODIFIED:a@103"]


async def test_end_watches_ends_every_stream_with_temporary() -> None:
    hub, _ = await synced_hub()
    async with hub.watch(WatchFilter()) as changes:
        await take(changes, 2)
        hub.end_watches("shutting down")
        with pytest.raises(errors.Temporary, match="shutting down"):
            await anext(changes)
    assert hub.subscribers == 0


def test_settings_reject_non_positive_sizes() -> None:
    with pytest.raises(ValueError, match="positive"):
        HubSettings(queue_size=0)
