"""Pure parts of the informer: relist diffing, backoff, waiting for a revision."""

from __future__ import annotations

import asyncio

import pytest

from kubeio.informer import Informer, backoff_delay, diff_relist, object_key


def obj(name: str, rv: str, ns: str | None = "default") -> dict[str, object]:
    meta: dict[str, str] = {"name": name, "resourceVersion": rv}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("cache", "items", "expected"),
    [
        ({}, [obj("a", "1")], [("ADDED", "default/a")]),
        ({"default/a": obj("a", "1")}, [obj("a", "1")], []),
        ({"default/a": obj("a", "1")}, [obj("a", "2")], [("MODIFIED", "default/a")]),
        ({"default/a": obj("a", "1")}, [], [("DELETED", "default/a")]),
        ({"default/a": obj("a", "1"), "default/b": obj("b", "1")}, [obj("b", "3"), obj("c", "4")],
         [("MODIFIED", "default/b"), ("ADDED", "default/c"), ("DELETED", "default/a")]),
    ],
    ids=["new", "unchanged", "modified", "deleted-while-away", "mixed"],
)
def test_diff_relist(cache: dict, items: list, expected: list) -> None:
    got = [(kind, object_key(o)) for kind, o in diff_relist(cache, items)]
    assert got == expected


def test_cluster_scoped_keys_have_no_namespace() -> None:
    assert object_key(obj("node-1", "1", ns=None)) == "node-1"


@pytest.mark.parametrize(("attempt", "delay"), [(0, 0.5), (1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (50, 30.0)],
                         ids=["zero", "first", "second", "third", "capped", "far"])
def test_backoff_is_capped_exponential(attempt: int, delay: float) -> None:
    assert backoff_delay(attempt) == delay


@pytest.mark.parametrize(("incoming", "cached", "older"), [
    ("5", "7", True), ("7", "7", False), ("9", "7", False), ("x", "7", False), ("5", None, False)],
    ids=["older", "same", "newer", "opaque", "uncached"])
def test_is_older(incoming: str, cached: str | None, older: bool) -> None:
    from kubeio.informer import is_older

    assert is_older(obj("a", incoming), obj("a", cached) if cached else None) is older


def _informer() -> Informer:
    return Informer(client=None, path="/x", handler=None)  # type: ignore[arg-type]


async def test_wait_for_is_immediate_when_the_cache_already_reflects_the_revision() -> None:
    inf = _informer()
    inf.synced.set()
    inf.resource_version = "120"
    assert await inf.wait_for(120, timeout=0.01)
    assert await inf.wait_for(7, timeout=0.01)


async def test_wait_for_resolves_when_the_watch_reaches_the_revision() -> None:
    inf = _informer()
    inf.synced.set()
    inf.resource_version = "100"
    waiting = asyncio.create_task(inf.wait_for(105, timeout=5))
    await asyncio.sleep(0)
    inf.resource_version = "104"
    inf._advanced()
    await asyncio.sleep(0)
    assert not waiting.done()
    inf.resource_version = "105"
    inf._advanced()
    assert await waiting
    assert not inf._waiters


async def test_wait_for_times_out_and_forgets_its_waiter() -> None:
    inf = _informer()
    assert not await inf.wait_for(1, timeout=0.01)  # never synced
    assert not inf._waiters
