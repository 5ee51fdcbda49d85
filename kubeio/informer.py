"""An informer: list, then watch from the list's resourceVersion, forever.

Three layers, as in kopf and client-go: `run()` reconnects forever with capped backoff;
`_list_and_watch()` lists (diffing against the cache so deletions missed while
disconnected are still delivered) and then watches from the resourceVersion, asking for
bookmarks; `_watch_once()` reads one stream with an inactivity timeout. A 410 Gone means
our resourceVersion was compacted: relist. Handlers see events of one object in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubeio.client import JSON, Gone, KubeClient, KubeError

log = logging.getLogger(__name__)

Handler = Callable[[str, JSON], Awaitable[None]]


def object_key(obj: JSON) -> str:
    meta = obj.get("metadata", {})
    ns = meta.get("namespace")
    return f"{ns}/{meta['name']}" if ns else str(meta["name"])


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Capped exponential backoff: 0.5, 1, 2, 4 … 30 seconds."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def is_older(obj: JSON, cached: JSON | None) -> bool:
    """Whether `obj` is an older version than `cached`. resourceVersions are opaque by
    contract; with etcd they are revisions, so compare numerically when both parse."""
    if cached is None:
        return False
    try:
        return int(obj["metadata"]["resourceVersion"]) < int(cached["metadata"]["resourceVersion"])
    except (KeyError, ValueError, TypeError):
        return False


def diff_relist(cache: dict[str, JSON], items: list[JSON]) -> list[tuple[str, JSON]]:
    """Events that turn `cache` into `items`: what a relist learned since the last watch."""
    events: list[tuple[str, JSON]] = []
    fresh = {object_key(o): o for o in items}
    for key, obj in fresh.items():
        old = cache.get(key)
        if old is None:
            events.append(("ADDED", obj))
        elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
            events.append(("MODIFIED", obj))
    for key, old in cache.items():
        if key not in fresh:
            events.append(("DELETED", old))
    return events


@dataclass
class Informer:
    """Keeps `cache` equal to the server's view of `path` (+ selectors) and calls `handler`."""

    client: KubeClient
    path: str
    handler: Handler
    label_selector: str | None = None
    field_selector: str | None = None
    page_size: int = 500
    # A stream quiet for this long is presumed dead; bookmarks arrive about once a minute.
    inactivity_timeout: float = 90.0
    cache: dict[str, JSON] = field(default_factory=dict)
    synced: asyncio.Event = field(default_factory=asyncio.Event)
    resource_version: str = ""
    # Callers of `wait_for`: (target revision, future resolved once the cache reflects it).
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    async def wait_for(self, resource_version: int, timeout: float) -> bool:
        """Whether the cache reflects `resource_version` (an etcd revision of an object this
        informer watches, e.g. one we just wrote) or a later one, within `timeout` seconds."""
        if self._reached(resource_version):
            return True
        waiter = asyncio.get_running_loop().create_future()
        entry = (resource_version, waiter)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def _reached(self, resource_version: int) -> bool:
        if not self.synced.is_set():
            return False
        try:
            return int(self.resource_version) >= resource_version
        except ValueError:
            return False

    def _advanced(self) -> None:
        """Wake the `wait_for` callers whose revision the cache now reflects."""
        if not self._waiters:
            return
        still = []
        for target, waiter in self._waiters:
            if self._reached(target):
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._list_and_watch()
                attempt = 0
            except Gone:
                log.info("%s %s: resourceVersion too old, relisting", self.client.name, self.path)
                self.resource_version = ""
            except (KubeError, ValueError, TimeoutError) as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("%s %s: %s; retry %d in %.1fs", self.client.name, self.path, exc, attempt, delay)
                await asyncio.sleep(delay)

    def _selectors(self) -> dict[str, Any]:
        return {"labelSelector": self.label_selector, "fieldSelector": self.field_selector}

    async def _list(self) -> None:
        items: list[JSON] = []
        cont: str | None = None
        while True:
            page = await self.client.get(self.path, {**self._selectors(), "limit": self.page_size,
                                                     "continue": cont})
            items += page.get("items", [])
            cont = page.get("metadata", {}).get("continue")
            if not cont:
                break
        self.resource_version = page["metadata"]["resourceVersion"]
        for kind, obj in diff_relist(self.cache, items):
            await self._deliver(kind, obj)
        self.synced.set()
        self._advanced()

    async def _list_and_watch(self) -> None:
        if not self.resource_version:
            await self._list()
        while True:
            await self._watch_once()

    async def _watch_once(self) -> None:
        params = {**self._selectors(), "watch": True, "allowWatchBookmarks": True,
                  "resourceVersion": self.resource_version, "timeoutSeconds": 300}
        lines = self.client.stream_lines(self.path, params, timeout=None)
        try:
            while True:
                async with asyncio.timeout(self.inactivity_timeout):
                    line = await anext(lines, None)
                if line is None:
                    return
                event = orjson.loads(line)
                kind, obj = event["type"], event["object"]
                if kind == "ERROR":
                    code = int(obj.get("code", 0))
                    if code == 410:
                        raise Gone(410, "Expired", str(obj.get("message", "")))
                    raise KubeError(code, str(obj.get("reason", "")), str(obj.get("message", "")))
                self.resource_version = obj["metadata"]["resourceVersion"]
                if kind != "BOOKMARK":
                    await self._deliver(kind, obj)
                self._advanced()
        finally:
            await lines.aclose()

    def cache_written(self, obj: JSON) -> None:
        """Cache an object this process has just written, as the apiserver returned it,
        before its watch event arrives (which `_deliver` then recognises as not newer)."""
        _drop_managed_fields(obj)
        self.cache[object_key(obj)] = obj

    async def _deliver(self, kind: str, obj: JSON) -> None:
        _drop_managed_fields(obj)
        key = object_key(obj)
        if kind == "MODIFIED" and is_older(obj, self.cache.get(key)):
            return  # the cache already holds a newer write of ours
        if kind == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        try:
            await self.handler(kind, obj)
        except Exception:
            log.exception("%s %s: handler failed for %s %s", self.client.name, self.path, kind, key)


def _drop_managed_fields(obj: JSON) -> None:
    """Bookkeeping of server-side apply that no handler reads, often half an object's
    size: dropped before caching, as client-go's informers are usually told to."""
    obj.get("metadata", {}).pop("managedFields", None)
