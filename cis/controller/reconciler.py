"""The instance controller: turns ContainerInstances into Kata pods on backing clusters and
keeps their status true.

Inputs are watches only: ContainerInstances and cluster registrations in the management
cluster, nodes and pods in each backing cluster. Every change enqueues the instance's
key; a key is reconciled by one worker at a time. Each reconcile reads the caches,
decides with the pure functions of `cis.domain`, and acts: events are made durable
first, then the status is written, then pods are created or deleted. Crashing between
any two steps replays the same decision with the same event ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from cis.backing import CLUSTER_LABEL, SYSTEM_NAMESPACE, ClusterRuntime, cluster_from_secret
from cis.capacity import Capacity
from cis.controller.echoes import OwnWrites
from cis.controller.sink import EventSink
from cis.decoded import DecodedInstances
from cis.domain import errors
from cis.domain.events import heartbeat_event, plan_events
from cis.domain.ids import ClusterName, RegionName, TenantName, ZoneName
from cis.domain.model import (
    ANNOTATION_ADOPTED_AT,
    ANNOTATION_ATTEMPT,
    ANNOTATION_UID,
    FINALIZER,
    Instance,
    InstanceStatus,
    Phase,
    instance_from_resource,
)
from cis.domain.placement import ClusterSnapshot, choose_cluster_for, explain_no_cluster
from cis.domain.pods import PodSettings, instance_manifests, tenant_manifests
from cis.domain.sizes import parse_cpu, parse_memory
from cis.domain.status import (
    deleting_status,
    lost_status,
    pod_news_is_urgent,
    replacement_allowed,
    requeued_status,
    scheduled_status,
    should_release,
    should_replace,
    status_changed,
    status_from_pod,
    waiting_status,
)
from cis.domain.timestamps import format_timestamp, parse_optional
from cis.instance_objects import ensure_instance_objects
from cis.store import RESTART_ANNOTATION, InstanceStore
from kubeio.client import JSON, KubeClient, KubeError
from kubeio.informer import Informer, object_key
from kubeio.workqueue import WorkQueue

log = logging.getLogger(__name__)

LABEL_INSTANCE = "cis.io/instance"
LABEL_TENANT = "cis.io/tenant"
ORPHAN = "orphan:"


@dataclass(frozen=True)
class ControllerSettings:
    workers: int = 16
    # Long enough for a scheduler to find room after a burst; short enough that a user
    # waits minutes, not hours, for another cluster.
    unschedulable_timeout: timedelta = timedelta(minutes=2)
    heartbeat_interval: timedelta = timedelta(seconds=60)
    # How often a Queued instance retries placement when no capacity change wakes it.
    queued_retry: float = 5.0
    # A cluster unreachable this long has lost its pods; 3 missed 5 s probes plus slack.
    lost_after: timedelta = timedelta(seconds=20)
    # Changes within one phase (a pending pod's conditions, a container's waiting reason)
    # are written at most this often per instance; phase changes are written at once. A
    # pod goes through several such steps in its first second, and every write is an
    # apiserver round trip that a burst of thousands of instances pays for.
    status_coalesce_seconds: float = 1.0
    # How long a new pod's first status write waits for the pod to run (see `_place`).
    first_status_delay_seconds: float = 2.0


def _mib(num_bytes: int) -> int:
    return num_bytes // (1024 * 1024)


def snapshot(rt: ClusterRuntime, cap: Capacity) -> ClusterSnapshot:
    overhead = (rt.runtime_class or {}).get("overhead", {}).get("podFixed", {})
    return ClusterSnapshot(
        name=ClusterName(rt.name),
        region=RegionName(rt.cfg.region),
        zones=frozenset({ZoneName(rt.cfg.zone)}) if rt.cfg.zone else frozenset(),
        healthy=rt.healthy and rt.synced(),
        has_runtime_class=rt.runtime_class is not None,
        allocatable_cpu_millis=cap.allocatable_cpu_millis,
        allocatable_memory_mib=_mib(cap.allocatable_memory_bytes),
        allocated_cpu_millis=cap.requested_cpu_millis,
        allocated_memory_mib=_mib(cap.requested_memory_bytes),
        pending_pods=cap.pending_pods,
        max_pending=rt.cfg.max_pending,
        overhead_cpu_millis=parse_cpu(overhead.get("cpu", 0)),
        overhead_memory_mib=_mib(parse_memory(overhead.get("memory", 0))),
    )


class _SteppedDown(Exception):
    """Ends the leader's task group when the lease is lost."""


class Controller:
    def __init__(
        self,
        mgmt: KubeClient,
        store: InstanceStore,
        sink: EventSink,
        instances: Informer,
        may_lead: asyncio.Event,
        stand_down: asyncio.Event,
        decoded: DecodedInstances,
        settings: ControllerSettings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mgmt = mgmt
        self.store = store
        self.sink = sink
        self.settings = settings or ControllerSettings()
        self.clock = clock
        self.queue = WorkQueue()
        # Owned and run by the process (the API reads it too, leader or not); the process
        # forwards its events to `instance_event`.
        self.instances = instances
        self.registrations = Informer(
            mgmt,
            f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets",
            self._registration_event,
            label_selector=CLUSTER_LABEL,
        )
        self.clusters: dict[str, ClusterRuntime] = {}
        self._cluster_tasks: dict[str, asyncio.Task[None]] = {}
        self._tg: asyncio.TaskGroup | None = None
        self._tenant_ready: set[tuple[str, str]] = set()
        self._tenant_setup: dict[tuple[str, str], asyncio.Lock] = {}  # setups under way
        self._unreachable_since: dict[str, datetime] = {}
        # Queued instances that found no room, oldest first (a dict keeps insertion order).
        self._waiting: dict[str, None] = {}
        # When each instance's status was last written (monotonic seconds), for coalescing.
        self._written_at: dict[str, float] = {}
        self._own_writes = OwnWrites()
        # Instances whose placement is not written yet: (cluster, monotonic time their pod
        # was created, 0 while creating). See `_place`.
        self._placing: dict[str, tuple[str, float]] = {}
        # Shared with the API, which reads the same informer: each version is decoded once.
        self._decoded = decoded
        # Set by leader election (lease won / lost); cluster views run on standbys too
        # (the API uses them).
        self.may_lead = may_lead
        self.stand_down = stand_down
        self.leading = asyncio.Event()

    # --- wiring -------------------------------------------------------------------------

    def synced(self) -> bool:
        return (
            self.instances.synced.is_set()
            and self.registrations.synced.is_set()
            and all(rt.synced() for rt in self.clusters.values())
        )

    async def run(self) -> None:
        """Runs cluster views always, and reconcile workers once this replica leads."""
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.registrations.run(), name="cluster-registrations")
            await self.registrations.synced.wait()
            tg.create_task(self._watch_cluster_health(), name="cluster-health")
            await self.instances.synced.wait()
            for rt in self.clusters.values():
                while not rt.synced():
                    await asyncio.sleep(0.1)
            while True:
                await self.may_lead.wait()
                await self._lead()

    async def _lead(self) -> None:
        """Reconcile everything, as a freshly started controller does, until the lease is
        lost; then stop every worker and forget what only a leader keeps."""
        try:
            async with asyncio.TaskGroup() as tg:
                self.leading.set()
                tg.create_task(self.queue.run_delayed(), name="queue-delays")
                tg.create_task(self._heartbeats(), name="heartbeats")
                for i in range(self.settings.workers):
                    tg.create_task(self.queue.work(self.reconcile), name=f"worker-{i}")
                for key in list(self.instances.cache):
                    self.queue.add(key)
                for rt in self.clusters.values():  # pods whose instance vanished while we were down
                    for pod in list(rt.pods.cache.values()):
                        await self._pod_event(rt, "ADDED", pod)
                log.info("controller running: %d instances, clusters %s",
                         len(self.instances.cache), sorted(self.clusters))
                await self.stand_down.wait()
                raise _SteppedDown
        except* _SteppedDown:
            log.warning("controller standing by: the lease was lost; the API keeps serving")
        finally:
            self.leading.clear()
        self.queue = WorkQueue()
        self._waiting.clear()
        self._written_at.clear()
        self._placing.clear()
        self._own_writes = OwnWrites()

    async def _registration_event(self, kind: str, obj: JSON) -> None:
        cfg = cluster_from_secret(obj)
        old = self._cluster_tasks.pop(cfg.name, None)
        if old is not None:
            old.cancel()
            await self.clusters.pop(cfg.name).client.close()
        if kind == "DELETED":
            return
        client = await KubeClient.from_kubeconfig_dict(cfg.kubeconfig, cfg.name)
        rt = ClusterRuntime(cfg, client, self._pod_event)
        self.clusters[cfg.name] = rt
        if self._tg is not None:
            self._cluster_tasks[cfg.name] = self._tg.create_task(rt.run(), name=f"cluster-{cfg.name}")
        log.info("backing cluster %s registered (region %s)", cfg.name, cfg.region)

    async def instance_event(self, kind: str, obj: JSON) -> None:
        key = object_key(obj)
        if self._own_writes.is_echo(kind, key, obj["metadata"].get("resourceVersion")):
            return
        if self.leading.is_set():
            self.queue.add(key)

    async def _pod_event(self, rt: ClusterRuntime, kind: str, pod: JSON) -> None:
        labels = pod["metadata"].get("labels") or {}
        if LABEL_INSTANCE in labels and LABEL_TENANT in labels:
            key = f"tenant-{labels[LABEL_TENANT]}/{labels[LABEL_INSTANCE]}"
            # Urgent news jumps a burst of new instances waiting to be placed.
            urgent = pod_news_is_urgent(kind, pod)
            if urgent or self._first_status_wait(key) <= 0:
                self.queue.add(key, urgent=urgent)
            if kind != "DELETED" and self._is_orphan(rt, key):
                self.queue.add(f"{ORPHAN}{rt.name}/{key}")
        if self._waiting and (kind == "DELETED" or pod.get("spec", {}).get("nodeName")):
            # A pod left the cluster or the scheduler's queue: room or a Pending slot freed.
            self._wake_queued(limit=4)

    def _first_status_wait(self, key: str) -> float:
        """Seconds until the first status write of a pod created here is due (`_place`);
        0 once due, or for a pod adopted after a restart. Until then, news short of running,
        ending or vanishing (the pod's own creation, its binding) would only be reconciled
        to wait again."""
        created = self._placing.get(key, ("", 0.0))[1]
        return created + self.settings.first_status_delay_seconds - time.monotonic() if created else 0.0

    def _wake_queued(self, limit: int) -> None:
        """Retry the longest-waiting Queued instances first (FIFO), a few per freed slot,
        instead of every Queued instance polling: with thousands queued, polling would
        spend the controller's CPU on placements that cannot succeed."""
        for key in list(self._waiting)[:limit]:
            del self._waiting[key]
            self.queue.add(key)

    # --- reconcile ----------------------------------------------------------------------

    def _is_orphan(self, rt: ClusterRuntime, key: str) -> bool:
        """A CIS pod whose instance is gone, or lives on another cluster now (it was
        re-placed while this cluster was unreachable)."""
        if not self.instances.synced.is_set():
            return False
        raw = self.instances.cache.get(key)
        if raw is None:
            return True
        cluster = (raw.get("status") or {}).get("cluster")
        return cluster is not None and cluster != rt.name

    async def _delete_orphan(self, ref: str) -> None:
        cluster, ns, name = ref.split("/", 2)
        rt = self.clusters.get(cluster)
        if rt is not None and self._is_orphan(rt, f"{ns}/{name}"):
            log.info("deleting orphan pod %s/%s on %s", ns, name, cluster)
            await rt.client.delete(f"/api/v1/namespaces/{ns}/pods/{name}")

    async def reconcile(self, key: str) -> None:
        if key.startswith(ORPHAN):
            try:
                await self._delete_orphan(key.removeprefix(ORPHAN))
            except KubeError as exc:
                log.warning("orphan %s: %s; retrying", key, exc)
                self.queue.add_after(key, 2.0)
            return
        raw = self.instances.cache.get(key)
        if raw is None:
            return
        inst = self._decoded.instance(raw)
        if inst is None:
            log.error("instance %s is malformed; leaving it alone", key)
            return
        self._decoded.prune(self.instances.cache)
        try:
            await self._reconcile(inst, raw)
        except (KubeError, errors.CisError) as exc:
            log.warning("instance %s: %s; retrying", key, exc)
            self.queue.add_after(key, 1.0)
        except Exception:
            # A bug for one instance must not stop the controller for all of them.
            log.exception("instance %s: unexpected error; retrying in 10s", key)
            self.queue.add_after(key, 10.0)

    async def _reconcile(self, inst: Instance, raw: JSON) -> None:
        now = self.clock()
        if inst.deleting:
            await self._delete(inst, raw, now)
            return
        if RESTART_ANNOTATION in (raw["metadata"].get("annotations") or {}):
            await self._restart(inst, raw, now)
            return
        if inst.status.event_seq == 0 and inst.status.queued_at is None:
            inst = inst.with_status(replace(inst.status, queued_at=inst.created_at or now))
        phase = inst.status.phase
        if phase is Phase.QUEUED:
            await self._place(inst, now)
            return
        rt = self.clusters.get(inst.status.cluster or "")
        pod = self._pod(rt, inst) if rt else None
        if phase.ended:
            if rt is not None and pod is not None:
                await self._delete_pod(rt, inst)
            return
        if rt is None or self._lost(rt, now):
            await self._handle_lost(inst, now, "the backing cluster is unreachable")
            return
        if pod is None:
            if inst.status.started_at is None:
                await self._create_pod(rt, inst)  # Scheduled but the pod is not there yet
            else:
                await self._handle_lost(inst, now, "the pod disappeared")
            return
        new = status_from_pod(pod, inst.status, spec=inst.spec, now=now)
        if new.phase is inst.status.phase and status_changed(inst.status, new):
            wait = self._coalesce_wait(f"{inst.namespace}/{inst.id}")
            if wait > 0:
                self.queue.add_after(f"{inst.namespace}/{inst.id}", wait)
                return
        if should_replace(
            inst.with_status(new), pod, now=now, unschedulable_timeout=self.settings.unschedulable_timeout
        ):
            await self._handle_lost(inst.with_status(new), now, "re-placing the instance")
            await self._delete_pod(rt, inst)
            return
        inst = await self._commit(inst, new, now)
        if should_release(inst, pod):
            await self._delete_pod(rt, inst)
        elif new.phase is Phase.SCHEDULED and new.started_at is None:
            # An unschedulable pod is re-checked when the timeout may have passed.
            self.queue.add_after(f"{inst.namespace}/{inst.id}", self.settings.unschedulable_timeout.total_seconds() / 4)

    async def _commit(self, inst: Instance, new: InstanceStatus | None, now: datetime) -> Instance:
        """Events first (durable), then the status carrying the new event sequence."""
        events, status = plan_events(inst, new, now)
        await self.sink.write(events)
        if status is None or (not status_changed(inst.status, status)):
            return inst if status is None else inst.with_status(status)
        updated, stored = await self.store.update_status(inst.with_status(status))
        key = f"{inst.namespace}/{inst.id}"
        self.instances.cache_written(stored)
        self._own_writes.wrote(key, updated.resource_version)
        self._note_written(key)
        return updated

    def _coalesce_wait(self, key: str) -> float:
        """Seconds until `key`'s status may be written again (0: now)."""
        last = self._written_at.get(key)
        if last is None:
            return 0.0
        return max(0.0, last + self.settings.status_coalesce_seconds - time.monotonic())

    def _note_written(self, key: str) -> None:
        now = time.monotonic()
        self._written_at[key] = now
        if len(self._written_at) > 4096:  # keep only entries that can still delay a write
            horizon = now - self.settings.status_coalesce_seconds
            self._written_at = {k: t for k, t in self._written_at.items() if t > horizon}

    # --- placement ----------------------------------------------------------------------

    async def _place(self, inst: Instance, now: datetime) -> None:
        """Create the pod of the next attempt, then let its first status write wait briefly:
        a pod that runs within `first_status_delay_seconds` costs one status write instead
        of two. Until that write, the pod itself records the placement (its uid and attempt
        annotations), so a restarted controller adopts it instead of placing again."""
        key = f"{inst.namespace}/{inst.id}"
        placed = self._placed_pod(inst)
        if placed is not None:
            await self._adopt(inst, *placed, now)
            return
        # A placement whose pod creation failed half-way goes to the same cluster again.
        chosen: str | None = self._placing.get(key, ("", 0.0))[0]
        if chosen not in self.clusters:
            caps = {rt.name: rt.capacity() for rt in self.clusters.values()}
            snaps = [snapshot(rt, caps[rt.name]) for rt in self.clusters.values()]
            spread = {ClusterName(name): cap.pods for name, cap in caps.items()}
            chosen = choose_cluster_for(inst, snaps, spread=spread)
            if chosen is None:
                reason, message = explain_no_cluster(inst.size, snaps, region=inst.spec.region, zone=inst.spec.zone)
                await self._commit(inst, waiting_status(inst.status, reason=reason, message=message), now)
                self._waiting[key] = None
                # A slow safety net; capacity changes wake waiting instances much sooner.
                self.queue.add_after(key, self.settings.queued_retry)
                return
        self._waiting.pop(key, None)
        rt = self.clusters[chosen]
        earlier = rt.pods.cache.get(key)
        if earlier is not None:
            await self._take_over_or_remove(inst, rt, earlier, now)
            return
        self._placing[key] = (chosen, 0.0)
        # Reserve at once, so the next placement in this burst sees the room as taken.
        rt.reserve(inst.id, inst.size.cpu_millis, inst.size.memory_mib * 1024 * 1024)
        try:
            await self._create_pod(rt, inst.with_status(self._scheduled(inst, rt, now)))
        except BaseException:
            rt.release(inst.id)
            raise
        self._placing[key] = (chosen, time.monotonic())
        self.queue.add_after(key, self.settings.first_status_delay_seconds)

    async def _take_over_or_remove(self, inst: Instance, rt: ClusterRuntime, pod: JSON, now: datetime) -> None:
        """A pod of an earlier attempt holds the instance's name on the chosen cluster
        (typically: the cluster came back after the instance was declared lost). Still alive,
        it becomes the new attempt's pod, as a kubelet keeps a node's pods when the node
        returns; that attempt is billed from now, since the earlier one was billed up to the
        loss. Ended, terminating or another instance's: removed, and its DELETED event brings
        the instance back here."""
        key = f"{inst.namespace}/{inst.id}"
        meta = pod.get("metadata") or {}
        ended = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if (meta.get("annotations") or {}).get(ANNOTATION_UID) == inst.uid and not ended \
                and meta.get("deletionTimestamp") is None:
            await rt.client.patch(f"/api/v1/namespaces/{inst.namespace}/pods/{inst.id}", {"metadata": {"annotations": {
                ANNOTATION_ATTEMPT: str(inst.status.attempt + 1), ANNOTATION_ADOPTED_AT: format_timestamp(now)}}})
            self._placing[key] = (rt.name, 0.0)  # adopted when its MODIFIED event arrives
            return
        await self._delete_pod(rt, inst)
        self._placing.pop(key, None)
        self.queue.add_after(key, self.settings.queued_retry)

    def _scheduled(self, inst: Instance, rt: ClusterRuntime, now: datetime) -> InstanceStatus:
        return scheduled_status(
            inst.status,
            cluster=ClusterName(rt.name),
            region=RegionName(rt.cfg.region),
            zone=ZoneName(rt.cfg.zone) if rt.cfg.zone else None,
            now=now,
        )

    def _placed_pod(self, inst: Instance) -> tuple[ClusterRuntime, JSON] | None:
        """The pod of the instance's next attempt, created before its placement was written."""
        attempt = str(inst.status.attempt + 1)
        for rt in self.clusters.values():
            pod = rt.pods.cache.get(f"{inst.namespace}/{inst.id}")
            annotations = (pod or {}).get("metadata", {}).get("annotations") or {}
            if annotations.get(ANNOTATION_UID) == inst.uid and annotations.get(ANNOTATION_ATTEMPT) == attempt:
                return rt, pod or {}
        return None

    async def _adopt(self, inst: Instance, rt: ClusterRuntime, pod: JSON, now: datetime) -> None:
        """Write the placement together with what the pod has reached by now."""
        key = f"{inst.namespace}/{inst.id}"
        meta = pod["metadata"]
        began = (
            parse_optional((meta.get("annotations") or {}).get(ANNOTATION_ADOPTED_AT))
            or parse_optional(meta.get("creationTimestamp"))
            or now
        )
        new = status_from_pod(pod, self._scheduled(inst, rt, began), spec=inst.spec, now=now)
        if new.started_at is not None and new.started_at < began:  # a taken-over pod: billed from `began`
            new = replace(new, started_at=began)
        wait = self._first_status_wait(key)
        if new.phase is Phase.SCHEDULED and new.reason is None and wait > 0:
            self.queue.add_after(key, wait)  # still starting: one write once it runs, or soon
            return
        await self._commit(inst, new, now)
        self._placing.pop(key, None)

    async def _create_pod(self, rt: ClusterRuntime, inst: Instance) -> None:
        settings = PodSettings(runtime_class_name=rt.cfg.runtime_handler)
        await self._ensure_tenant(rt, inst.tenant, settings)
        secrets = await self.store.secrets(inst.tenant, inst.id) if inst.spec.has_secrets else None
        full = (
            instance_from_resource(
                self.instances.cache.get(f"{inst.namespace}/{inst.id}")
                or {"metadata": {"name": inst.id, "namespace": inst.namespace}},
                secrets,
            )
            if secrets
            else inst
        )
        await ensure_instance_objects(rt.client, instance_manifests(full.with_status(inst.status), settings))

    async def _ensure_tenant(self, rt: ClusterRuntime, tenant: TenantName, settings: PodSettings) -> None:
        """The tenant's namespace and default policies on `rt`, made once: the workers of a
        burst wait for the first one's setup instead of each sending it again."""
        key = (tenant, rt.name)
        if key in self._tenant_ready:
            return
        async with self._tenant_setup.setdefault(key, asyncio.Lock()):
            if key not in self._tenant_ready:
                await ensure_instance_objects(rt.client, tenant_manifests(tenant, settings))
                self._tenant_ready.add(key)
                del self._tenant_setup[key]

    async def _delete_pod(self, rt: ClusterRuntime, inst: Instance) -> None:
        await rt.client.delete(f"/api/v1/namespaces/{inst.namespace}/pods/{inst.id}")

    def _pod(self, rt: ClusterRuntime, inst: Instance) -> JSON | None:
        pod = rt.pods.cache.get(f"{inst.namespace}/{inst.id}")
        if pod is None:
            return None
        # A pod of an earlier attempt that was re-placed is not this instance's pod.
        if (pod["metadata"].get("annotations") or {}).get("cis.io/instance-uid", inst.uid) != inst.uid:
            return None
        return pod

    # --- loss, restart, deletion --------------------------------------------------------

    def _lost(self, rt: ClusterRuntime, now: datetime) -> bool:
        since = self._unreachable_since.get(rt.name)
        return since is not None and now - since >= self.settings.lost_after

    async def _handle_lost(self, inst: Instance, now: datetime, message: str) -> None:
        """End the attempt (an `instance.stopped` only if it had started), then re-place
        it when the restart policy allows."""
        if inst.status.started_at is not None:
            inst = await self._commit(inst, lost_status(inst.status, now=now, message=message), now)
        if replacement_allowed(inst):
            reason = "Replacing"
            await self._commit(inst, requeued_status(inst.status, now=now, reason=reason, message=message), now)
            self.queue.add(f"{inst.namespace}/{inst.id}")

    async def _restart(self, inst: Instance, raw: JSON, now: datetime) -> None:
        rt = self.clusters.get(inst.status.cluster or "")
        if rt is not None and self._pod(rt, inst) is not None:
            await self._delete_pod(rt, inst)
        if inst.status.phase is not Phase.QUEUED:
            inst = await self._commit(inst, lost_status(inst.status, now=now, message="restart requested"), now)
            inst = await self._commit(inst, requeued_status(inst.status, now=now, reason="Restarting"), now)
        path = f"/apis/cis.io/v1/namespaces/{inst.namespace}/containerinstances/{inst.id}"
        await self.mgmt.patch(path, {"metadata": {"annotations": {RESTART_ANNOTATION: None}}})

    async def _delete(self, inst: Instance, raw: JSON, now: datetime) -> None:
        if FINALIZER not in (raw["metadata"].get("finalizers") or []):
            return
        inst = await self._commit(inst, deleting_status(inst.status, now=now), now)
        rt = self.clusters.get(inst.status.cluster or "")
        if rt is not None and not self._lost(rt, now) and self._pod(rt, inst) is not None:
            await self._delete_pod(rt, inst)
            return  # the pod's DELETED event brings us back
        placed = self._placed_pod(inst)
        if placed is not None and not self._lost(placed[0], now):  # created, placement not yet written
            await self._delete_pod(placed[0], inst)
            return
        self._placing.pop(f"{inst.namespace}/{inst.id}", None)
        await self._commit(inst, None, now)  # instance.deleted
        await self.store.remove_finalizer(raw, FINALIZER)

    # --- periodic -----------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        interval = self.settings.heartbeat_interval
        while True:
            await asyncio.sleep(interval.total_seconds())
            now = self.clock()
            beats = []
            for raw in list(self.instances.cache.values()):
                if (raw.get("status") or {}).get("phase") != Phase.RUNNING.value:
                    continue
                inst = self._decoded.instance(raw)  # decoded once per version, shared with the API
                beat = heartbeat_event(inst, now, interval) if inst is not None else None
                if beat is not None:
                    beats.append(beat)
            await self.sink.write(beats)

    async def _watch_cluster_health(self) -> None:
        """Track how long each cluster has been unreachable; wake its instances when it
        crosses the loss threshold, and Queued ones when it recovers."""
        while True:
            await asyncio.sleep(1.0)
            now = self.clock()
            for rt in list(self.clusters.values()):
                if rt.healthy:
                    if self._unreachable_since.pop(rt.name, None) is not None:
                        log.info("backing cluster %s is reachable again", rt.name)
                        self._wake_queued(limit=len(self._waiting))
                    continue
                since = self._unreachable_since.setdefault(rt.name, now)
                if now - since >= self.settings.lost_after and now - since < self.settings.lost_after + timedelta(
                    seconds=1.5
                ):
                    log.warning("backing cluster %s lost; re-placing its instances", rt.name)
                    for key, raw in self.instances.cache.items():
                        if (raw.get("status") or {}).get("cluster") == rt.name:
                            self.queue.add(key)

