"""The pod controller: pods bound to this node <-> CIS instances (`sync_pods_from_cluster`
and `sync_status_from_cis` sharing one keyed queue).

Two caches feed one `WorkQueue`: the pod informer (field selector spec.nodeName=<node>) and
the instance cache (CIS's watch stream). Keys are `pod:<ns>/<name>` or `instance:<id>`; one
key is never processed twice at once, so a pod's actions happen in order. A pod key runs
`decisions.decide` and the matching `PodSyncer` action; an instance key deletes the
instance if its pod no longer exists (orphans left by force deletes, by a crash, or by a
pod removed at its deadline). Nothing is decided before both caches have synced, so a
restart neither re-creates nor deletes anything by mistake. Failed keys are retried with
capped backoff, forever. `ready` is set once both caches have synced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubeio.client import KubeClient, KubeError
from kubeio.informer import Informer, object_key
from kubeio.workqueue import WorkQueue
from vk_provider.cis_client import Cis, CisError, Instance, Temporary
from vk_provider.decisions import Action, decide, deletion_deadline, needs_sync, retry_delay
from vk_provider.events import EventRecorder
from vk_provider.instance_cache import InstanceCache
from vk_provider.pod_sync import PodSyncer, Retry
from vk_provider.settings import NodeSettings, PodSettings
from vk_provider.translate import LABEL_POD_UID, node_selector

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Clock = Callable[[], datetime]
POD, INSTANCE = "pod:", "instance:"


class PodController:
    def __init__(self, kube: KubeClient, cis: Cis, recorder: EventRecorder, node: NodeSettings,
                 settings: PodSettings, *, clock: Clock = lambda: datetime.now(UTC)) -> None:
        if settings.workers < 1:
            raise ValueError("at least one pod worker is needed")
        self._settings = settings
        self._clock = clock
        self.pods = Informer(kube, "/api/v1/pods", self._on_pod, field_selector=f"spec.nodeName={node.name}")
        self.instances = InstanceCache(cis, node_selector(node.name), self._on_instance)
        self.queue = WorkQueue()
        self.syncer = PodSyncer(kube, cis, self.instances, recorder, node=node.name, host_ip=node.internal_ip,
                                clock=clock)
        self.ready = asyncio.Event()
        self._cis = cis
        self._previous: dict[str, JSON] = {}
        self._uid_key: dict[str, str] = {}
        self._attempts: dict[str, int] = {}
        self._delete_requested: set[str] = set()

    # --- cache events: enqueue only ---------------------------------------------------------

    async def _on_pod(self, kind: str, pod: JSON) -> None:
        key = object_key(pod)
        uid = str(pod["metadata"].get("uid", ""))
        old = self._previous.get(key)
        if kind == "DELETED":
            self._previous.pop(key, None)
            self._attempts.pop(POD + key, None)
            if self._uid_key.get(uid) == key:
                del self._uid_key[uid]
            self.syncer.forget(uid)
            inst = self.instances.for_pod(uid)
            if inst is not None:
                self.queue.add(INSTANCE + inst.id)
            return
        self._previous[key] = pod
        if old is not None and old["metadata"].get("uid") != uid:
            self._uid_key.pop(str(old["metadata"].get("uid")), None)
        self._uid_key[uid] = key
        if needs_sync(old, pod, self.syncer.last_written.get(uid)):
            self.queue.add(POD + key)

    def _on_instance(self, inst: Instance, deleted: bool) -> None:
        if deleted:
            self._delete_requested.discard(inst.id)
        key = self._uid_key.get(inst.labels.get(LABEL_POD_UID, ""))
        self.queue.add(POD + key if key else INSTANCE + inst.id)

    # --- workers ------------------------------------------------------------------------------

    def _synced(self) -> bool:
        return self.pods.synced.is_set() and self.instances.synced.is_set()

    async def _process(self, key: str) -> None:
        try:
            if key.startswith(POD):
                await self._sync_pod(key[len(POD):])
            else:
                await self._sync_instance(key[len(INSTANCE):])
            self._attempts.pop(key, None)
        except (Retry, CisError, KubeError) as exc:
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            retry_after = exc.retry_after if isinstance(exc, Retry | Temporary) else 0.0
            delay = retry_delay(attempt, base=self._settings.retry_base_seconds,
                                cap=self._settings.retry_cap_seconds, retry_after=retry_after)
            log.warning("%s: %s (attempt %d, retry in %.1fs)", key, exc, attempt, delay)
            self.queue.add_after(key, delay)
        except Exception:
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            log.exception("%s: unexpected error (attempt %d)", key, attempt)
            self.queue.add_after(key, self._settings.retry_cap_seconds)

    async def _sync_pod(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is None:
            return  # its instance (if any) was queued by the DELETED event
        inst = self.instances.for_pod(pod["metadata"]["uid"])
        now = self._clock()
        action = decide(pod, inst, instances_synced=self._synced(), now=now,
                        delete_requested=inst is not None and inst.id in self._delete_requested)
        if action is Action.CREATE:
            await self.syncer.create(pod)
        elif action is Action.PUSH_STATUS:
            assert inst is not None
            await self.syncer.push_status(pod, inst)
        elif action is Action.DELETE_INSTANCE:
            assert inst is not None
            await self.syncer.delete_instance(inst)
            self._delete_requested.add(inst.id)
            self._requeue_at_deadline(key, pod, now)
        elif action is Action.AWAIT_DELETION:
            self._requeue_at_deadline(key, pod, now)
        elif action is Action.DELETE_POD:
            if inst is not None and inst.phase != "Deleting" and inst.id not in self._delete_requested:
                await self._delete_orphan_soon(inst)  # the deadline passed before CIS was asked
            await self.syncer.delete_pod(pod)
        elif action is Action.MARK_LOST:
            await self.syncer.mark_lost(pod)
        elif action is Action.WAIT:
            self.queue.add_after(POD + key, 1.0)

    def _requeue_at_deadline(self, key: str, pod: JSON, now: datetime) -> None:
        deadline = deletion_deadline(pod)
        delay = (deadline - now).total_seconds() + 0.5 if deadline else 1.0
        self.queue.add_after(POD + key, max(0.5, delay))

    async def _sync_instance(self, instance_id: str) -> None:
        inst = self.instances.by_id.get(instance_id)
        if inst is None:
            return
        if not self._synced():
            self.queue.add_after(INSTANCE + instance_id, 1.0)
            return
        uid = inst.labels.get(LABEL_POD_UID, "")
        key = self._uid_key.get(uid)
        if key is not None:
            self.queue.add(POD + key)
            return
        if inst.phase == "Deleting" or instance_id in self._delete_requested:
            return
        log.info("instance %s: its pod (uid %s) is gone; deleting the orphan", instance_id, uid)
        await self._cis.delete(instance_id)
        self._delete_requested.add(instance_id)

    async def _delete_orphan_soon(self, inst: Instance) -> None:
        """Best effort now; the instance key retries if CIS is unreachable."""
        try:
            await self.syncer.delete_instance(inst)
            self._delete_requested.add(inst.id)
        except CisError as exc:
            log.warning("instance %s: deletion failed (%s); retrying as an orphan", inst.id, exc)
            self.queue.add_after(INSTANCE + inst.id, self._settings.retry_base_seconds)

    # --- loops ----------------------------------------------------------------------------------

    async def _become_ready(self) -> None:
        await self.pods.synced.wait()
        await self.instances.synced.wait()
        log.info("pod controller ready: %d pods, %d instances", len(self.pods.cache), len(self.instances.by_id))
        for instance_id in list(self.instances.by_id):
            self.queue.add(INSTANCE + instance_id)  # startup reconciliation of orphans
        self.ready.set()

    async def _resync(self) -> None:
        """Every pod's status re-derived, every instance's pod checked (client-go's resync)."""
        await self.ready.wait()
        while True:
            await asyncio.sleep(self._settings.resync_seconds)
            for key in list(self.pods.cache):
                self.queue.add(POD + key)
            for instance_id in list(self.instances.by_id):
                self.queue.add(INSTANCE + instance_id)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.pods.run(), name="pod-informer")
            tg.create_task(self.instances.run(), name="instance-watch")
            tg.create_task(self.queue.run_delayed(), name="pod-queue-delays")
            tg.create_task(self._become_ready(), name="pod-controller-ready")
            tg.create_task(self._resync(), name="pod-resync")
            for i in range(self._settings.workers):
                tg.create_task(self.queue.work(self._process), name=f"pod-worker-{i}")
