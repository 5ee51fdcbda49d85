"""This node's CIS instances, kept current from CIS's watch stream (`sync_instances_from_cis`).

List, then watch from the newest resourceVersion the list returned; on any stream error,
back off, relist and diff against the cache (so deletions missed while disconnected are
still delivered); and relist every `restart_seconds` anyway, since a silently dead TCP
connection would otherwise leave the cache stale. Each change calls `on_change(instance,
deleted)`, which only enqueues: it must not block.

Indexed by instance id and by the pod uid label, the pod <-> instance mapping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from kubeio.informer import backoff_delay
from vk_provider.cis_client import Cis, CisError, Expired, Instance, InstanceEvent
from vk_provider.translate import LABEL_POD_UID

log = logging.getLogger(__name__)

OnChange = Callable[[Instance, bool], None]


def _rv(inst: Instance) -> int:
    try:
        return int(inst.resource_version)
    except ValueError:
        return -1


def is_stale(incoming: Instance, cached: Instance | None) -> bool:
    """An event older than what we hold (e.g. the watch replaying a create we recorded)."""
    return cached is not None and 0 <= _rv(incoming) < _rv(cached)


def diff_lists(cached: dict[str, Instance], listed: list[Instance]) -> list[tuple[Instance, bool]]:
    """(instance, deleted) changes that turn `cached` into `listed`."""
    fresh = {i.id: i for i in listed}
    changes = [(i, False) for i in listed if cached.get(i.id) is None
               or cached[i.id].resource_version != i.resource_version]
    changes += [(i, True) for key, i in cached.items() if key not in fresh]
    return changes


class InstanceCache:
    def __init__(self, cis: Cis, label_selector: str, on_change: OnChange, *,
                 restart_seconds: float = 300.0) -> None:
        self._cis = cis
        self._selector = label_selector
        self._on_change = on_change
        self._restart = restart_seconds
        self.by_id: dict[str, Instance] = {}
        self._by_uid: dict[str, str] = {}
        self.synced = asyncio.Event()

    def for_pod(self, pod_uid: str) -> Instance | None:
        iid = self._by_uid.get(pod_uid)
        return self.by_id.get(iid) if iid else None

    def put(self, inst: Instance) -> bool:
        """Record `inst` unless we hold a newer version; True if recorded."""
        if is_stale(inst, self.by_id.get(inst.id)):
            return False
        self.by_id[inst.id] = inst
        uid = inst.labels.get(LABEL_POD_UID)
        if uid:
            self._by_uid[uid] = inst.id
        return True

    def remove(self, instance_id: str) -> Instance | None:
        inst = self.by_id.pop(instance_id, None)
        if inst is not None:
            uid = inst.labels.get(LABEL_POD_UID, "")
            if self._by_uid.get(uid) == instance_id:
                del self._by_uid[uid]
        return inst

    def _apply(self, inst: Instance, deleted: bool) -> None:
        if deleted:
            if self.remove(inst.id) is not None:
                self._on_change(inst, True)
        elif self.put(inst):
            self._on_change(inst, False)

    async def _relist(self) -> str:
        listed = await self._cis.list(self._selector)
        for inst, deleted in diff_lists(self.by_id, listed):
            if deleted:
                self.remove(inst.id)
                self._on_change(inst, True)
            else:
                self.by_id.pop(inst.id, None)  # a relist is authoritative, even if "older"
                self._apply(inst, False)
        self.synced.set()
        newest = max((_rv(i) for i in listed), default=-1)
        return str(newest) if newest >= 0 else ""

    async def _watch(self, resource_version: str) -> None:
        try:
            await self._stream(resource_version)
        except Expired:
            # CIS restarted or we were away long: its history starts after our list. Its
            # snapshot is as good, minus deletions in the few ms since our list, which the
            # next periodic relist delivers.
            log.info("instance watch: resume point %s expired; watching from a snapshot", resource_version)
            await self._stream("")

    async def _stream(self, resource_version: str) -> None:
        async with contextlib.aclosing(self._cis.watch(self._selector, resource_version)) as events:
            event: InstanceEvent
            async for event in events:
                self._apply(event.instance, event.deleted)

    async def run(self) -> None:
        attempt = 0
        while True:
            try:
                rv = await self._relist()
                attempt = 0
                async with asyncio.timeout(self._restart):
                    await self._watch(rv)
                log.info("CIS instance watch ended; relisting")
                await asyncio.sleep(1.0)
            except TimeoutError:
                log.debug("periodic instance relist")
            except CisError as exc:
                attempt += 1
                delay = backoff_delay(attempt)
                log.warning("CIS instance watch: %s; retry %d in %.1fs", exc, attempt, delay)
                await asyncio.sleep(delay)
