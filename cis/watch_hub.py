"""Fan-out of ContainerInstance changes to many watchers (the gRPC `WatchInstances` streams).

The process has one informer of all instances; `Platform` calls `WatchHub.listener` with
every change it delivers. The hub keeps, per subscriber, a bounded queue: the listener never
waits, and a subscriber that falls too far behind is dropped with `Temporary` (gRPC
UNAVAILABLE), after which its client resumes from the last resourceVersion it saw.

A new watch starts with a snapshot of the matching instances (`initial=True`), then the
changes after it. The snapshot comes from the hub's own map of the latest change per key,
not from the informer cache: the controller writes its status updates through into that
cache before their watch events arrive, so the cache can run ahead of the event stream and a
snapshot taken from it could carry a resourceVersion past changes not yet delivered. The
hub's map is, by construction, exactly the state its events describe, so registering a
subscriber and copying the map with no `await` in between is consistent without dedupe.

Resuming from a resourceVersion replays a bounded history of recent changes. Each entry is
stamped with the informer's position (its resourceVersion when the change was delivered;
changes learnt by a relist share the list's version), and positions never decrease. With
etcd, resourceVersions are revisions, so they are compared as integers. A version older
than the history's horizon raises `ResourceVersionExpired`: the client watches again
without one, as a Kubernetes client relists on 410 Gone. Delivery is at-least-once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from cis.domain import errors
from cis.domain.selectors import LabelSelector
from kubeio.client import JSON
from kubeio.informer import object_key

log = logging.getLogger(__name__)

# --- changes and filters (pure) ---------------------------------------------------------------


@dataclass(frozen=True)
class WatchFilter:
    """Which instances a watcher sees: one tenant namespace (None: all, for admins) and a
    label selector over the CR's labels (user labels plus `cis.io/*`)."""

    namespace: str | None = None
    selector: LabelSelector = field(default_factory=LabelSelector)

    def matches(self, raw_object: JSON) -> bool:
        meta = raw_object.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.selector.matches(meta.get("labels") or {})


@dataclass(frozen=True)
class Change:
    """One change as watchers see it. `resource_version` is the object's own."""

    kind: str  # ADDED | MODIFIED | DELETED
    raw_object: JSON
    initial: bool = False

    @property
    def deleted(self) -> bool:
        return self.kind == "DELETED"

    @property
    def resource_version(self) -> str:
        return str((self.raw_object.get("metadata") or {}).get("resourceVersion", ""))


def revision(text: object) -> int | None:
    """A resourceVersion as an etcd revision, or None if it is not one."""
    try:
        return int(str(text))
    except ValueError:
        return None


def parse_resource_version(text: str, field: str = "resource_version") -> int:
    value = revision(text)
    if value is None or value < 0:
        raise errors.InvalidInput(field, "must be a resource_version returned by this API")
    return value


@dataclass(frozen=True)
class Recorded:
    """A change in the history, stamped with the informer's position when delivered."""

    position: int
    change: Change


def replay_since(history: Iterable[Recorded], since: int) -> list[Change]:
    """Changes a watcher that saw `since` has not seen. Entries sharing a position (a relist)
    are replayed unless the entry is the very version the watcher saw."""
    return [
        r.change
        for r in history
        if r.position > since or (r.position == since and revision(r.change.resource_version) != since)
    ]


def snapshot(latest: Iterable[Change], flt: WatchFilter) -> list[Change]:
    """The initial events of a new watch, oldest first, so the last carries the highest version."""
    items = [Change("ADDED", c.raw_object, initial=True) for c in latest if flt.matches(c.raw_object)]
    return sorted(items, key=lambda c: revision(c.resource_version) or 0)


class ResourceVersionExpired(errors.InvalidInput):
    """The resume point is older than the history: watch again without it (410 Gone in
    Kubernetes). An InvalidInput of the `resource_version` field with its own status."""

    code = "expired"
    http_status = 410
    grpc_status = "OUT_OF_RANGE"

    def __init__(self, since: int, horizon: int | None) -> None:
        super().__init__(
            "resource_version",
            f"{since} is too old (history starts after {horizon}); watch again without resource_version",
        )


# --- the hub ----------------------------------------------------------------------------------


class InstanceCache(Protocol):
    """What the hub needs of the instance informer (`kubeio.informer.Informer`)."""

    @property
    def synced(self) -> asyncio.Event: ...

    @property
    def resource_version(self) -> str: ...


@dataclass(frozen=True)
class HubSettings:
    # Changes one watcher may have pending. A create of 500 makes about 2,000 changes in a
    # few seconds; the virtual kubelet keeps up, and a dropped watcher resumes from history.
    queue_size: int = 2048
    # Changes kept for resuming; references to objects the informer mostly holds anyway.
    history: int = 10_000

    def __post_init__(self) -> None:
        if self.queue_size < 1 or self.history < 1:
            raise ValueError("queue_size and history must be positive")


_CLOSED: Final = object()  # the queue's last item: the subscriber was dropped


class _Subscriber:
    def __init__(self, flt: WatchFilter, queue_size: int) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self.reason: errors.CisError | None = None

    def offer(self, change: Change) -> bool:
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            return False
        return True

    def close(self, reason: errors.CisError) -> None:
        """End the stream with `reason`: pending changes are discarded, the consumer wakes."""
        self.reason = reason
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(_CLOSED)

    async def changes(self, backlog: list[Change]) -> AsyncGenerator[Change, None]:
        for change in backlog:
            if self.reason is not None:
                raise self.reason
            yield change
        while True:
            item = await self.queue.get()
            if item is _CLOSED:
                assert self.reason is not None
                raise self.reason
            yield item


class WatchHub:
    """Register `listener` before the informer runs, so the hub sees its initial list."""

    def __init__(self, cache: InstanceCache, settings: HubSettings | None = None) -> None:
        self._cache = cache
        self._settings = settings or HubSettings()
        self._subscribers: set[_Subscriber] = set()
        self._latest: dict[str, Change] = {}
        self._history: collections.deque[Recorded] = collections.deque(maxlen=self._settings.history)
        # Every change after this position is in the history; None until one is observed.
        self._horizon: int | None = None

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    async def listener(self, kind: str, raw_object: JSON) -> None:
        """Platform.instance_listeners entry. Never waits: a full queue drops its subscriber."""
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            return
        change = Change(kind, raw_object)
        key = object_key(raw_object)
        if change.deleted:
            self._latest.pop(key, None)
        else:
            self._latest[key] = change
        self._record(change)
        for sub in [s for s in self._subscribers if s.filter.matches(raw_object)]:
            if not sub.offer(change):
                self._subscribers.discard(sub)
                log.warning("dropping a watcher that fell %d changes behind", self._settings.queue_size)
                sub.close(
                    errors.Temporary(
                        f"the watch fell more than {self._settings.queue_size} changes behind and was "
                        "closed; resume from the last resource_version",
                        retry_after=1,
                    )
                )

    def _record(self, change: Change) -> None:
        position = revision(self._cache.resource_version)
        if position is None:
            return  # not an etcd revision: no resuming (ResourceVersionExpired for all)
        if self._horizon is None:
            self._horizon = position
        if not self._cache.synced.is_set():
            return  # the first list is state, not changes: watches start after it
        if len(self._history) == self._history.maxlen:
            self._horizon = max(self._horizon, self._history[0].position + 1)
        self._history.append(Recorded(position, change))

    @contextlib.asynccontextmanager
    async def watch(self, flt: WatchFilter, since: int | None = None) -> AsyncIterator[AsyncIterator[Change]]:
        """`async with hub.watch(f) as changes: async for change in changes: ...`.

        Without `since`: the snapshot (once the informer has synced), then changes. With
        `since`: the changes after it, or `ResourceVersionExpired`.
        """
        await self._cache.synced.wait()
        sub = _Subscriber(flt, self._settings.queue_size)
        # No await from here to the registration: the backlog and the queue meet exactly.
        if since is None:
            backlog = snapshot(self._latest.values(), flt)
        else:
            if self._horizon is None:
                self._horizon = revision(self._cache.resource_version)
            if self._horizon is None or since < self._horizon:
                raise ResourceVersionExpired(since, self._horizon)
            backlog = [c for c in replay_since(self._history, since) if flt.matches(c.raw_object)]
        self._subscribers.add(sub)
        stream = sub.changes(backlog)
        try:
            yield stream
        finally:
            self._subscribers.discard(sub)
            await stream.aclose()

    def end_watches(self, reason: str) -> None:
        """End every current watch with `Temporary(reason)` (server shutting down)."""
        for sub in list(self._subscribers):
            sub.close(errors.Temporary(reason, retry_after=1))
        self._subscribers.clear()
