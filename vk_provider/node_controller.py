"""The node controller: registers the virtual node, renews its Lease, refreshes its status,
and pings CIS (`sync_node_to_cluster`).

Three loops in one TaskGroup, as in the Go VK's `node/` package: the lease loop (every
10 s, 40 s duration), the status loop (every minute, and at once when readiness changes)
and the ping loop (every 10 s). Unlike the Go VK, which stops heartbeats on a failed ping
and lets the node lifecycle controller time the node out, the node says `Ready=False`
(reason CISUnreachable) itself while CIS is unreachable, and keeps its Lease: the node is
alive, its backend is not. A deleted Node is registered again (VK#68).

Registration happens under NodeRestriction: a node may not set `kubernetes.io/role` and
other restricted labels on itself, so if the apiserver refuses them they are dropped and
logged for an administrator to add.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from kubeio.client import JSON, STRATEGIC_PATCH, Conflict, KubeClient, KubeError, NotFound
from kubeio.informer import backoff_delay
from vk_provider import nodes
from vk_provider.nodes import Readiness
from vk_provider.settings import NodeSettings

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Ping = Callable[[], Awaitable[None]]


class NodeController:
    def __init__(self, kube: KubeClient, settings: NodeSettings, ping: Ping, pods_ready: asyncio.Event, *,
                 clock: Clock = lambda: datetime.now(UTC)) -> None:
        if settings.lease_renew_seconds >= settings.lease_duration_seconds:
            raise ValueError("the lease must be renewed more often than it lasts")
        self._kube = kube
        self._s = settings
        self._ping = ping
        self._pods_ready = pods_ready
        self._clock = clock
        self._node_path = f"/api/v1/nodes/{settings.name}"
        self._lease_path = f"/apis/coordination.k8s.io/v1/namespaces/{nodes.LEASE_NAMESPACE}/leases/{settings.name}"
        self._uid = ""
        self._pinged = False
        self._cis_error: str | None = None
        self._changed = asyncio.Event()
        self.registered = asyncio.Event()
        self.lease_held = asyncio.Event()

    def readiness(self) -> Readiness:
        if self._cis_error is not None:
            return nodes.unreachable(self._cis_error)
        if not self._pods_ready.is_set() or not self._pinged:
            return nodes.STARTING
        return nodes.READY

    async def _register(self) -> JSON:
        """GET the node, or create it; returns the current object."""
        try:
            return await self._kube.get(self._node_path)
        except NotFound:
            pass
        now = self._clock()
        body = nodes.node_object(self._s, self.readiness(), now)
        try:
            created = await self._kube.create("/api/v1/nodes", body)
        except Conflict:
            return await self._kube.get(self._node_path)
        except KubeError as exc:
            dropped = nodes.restricted_labels(body["metadata"]["labels"])
            if exc.status != 403 or "labels" not in exc.message or not dropped:
                raise
            log.warning("node %s: the apiserver refuses labels %s from a node identity; registering without"
                        " them (an administrator may add them with kubectl label node)", self._s.name,
                        sorted(dropped))
            created = await self._kube.create(
                "/api/v1/nodes", nodes.node_object(self._s, self.readiness(), now, drop_labels=frozenset(dropped)))
        log.info("node %s registered", self._s.name)
        return created

    async def update_status(self) -> None:
        node = await self._register()
        self._uid = str(node["metadata"]["uid"])
        patch = nodes.status_patch(self._s, node, self.readiness(), self._clock())
        try:
            await self._kube.patch(f"{self._node_path}/status", patch, content_type=STRATEGIC_PATCH)
        except NotFound:
            self._uid = ""  # deleted meanwhile: registered again on the next round
            raise
        self.registered.set()

    async def _renew_lease(self) -> None:
        if not self._uid:
            return
        now = self._clock()
        s = self._s
        try:
            lease = await self._kube.get(self._lease_path)
        except NotFound:
            await self._kube.create(f"/apis/coordination.k8s.io/v1/namespaces/{nodes.LEASE_NAMESPACE}/leases",
                                    nodes.lease_object(s.name, self._uid, s.lease_duration_seconds, now))
        else:
            await self._kube.replace(self._lease_path,
                                     nodes.renewed_lease(lease, s.name, self._uid, s.lease_duration_seconds, now))
        self.lease_held.set()

    async def _status_loop(self) -> None:
        attempt = 0
        while True:
            self._changed.clear()
            try:
                await self.update_status()
                attempt = 0
                delay = self._s.status_interval_seconds
            except KubeError as exc:
                attempt += 1
                delay = backoff_delay(attempt, cap=self._s.lease_renew_seconds)
                log.warning("node status update failed (attempt %d): %s", attempt, exc)
            try:
                async with asyncio.timeout(delay):
                    await self._changed.wait()
            except TimeoutError:
                pass

    async def _lease_loop(self) -> None:
        await self.registered.wait()
        attempt = 0
        while True:
            try:
                await self._renew_lease()
                attempt = 0
                delay = self._s.lease_renew_seconds
            except KubeError as exc:
                attempt += 1
                # The kubelet's lease controller: 200 ms doubling, capped at 7 s.
                delay = backoff_delay(attempt, base=0.2, cap=7.0)
                log.warning("lease renewal failed (attempt %d): %s", attempt, exc)
            await asyncio.sleep(delay)

    async def _ping_loop(self) -> None:
        while True:
            error: str | None
            try:
                async with asyncio.timeout(self._s.ping_timeout_seconds):
                    await self._ping()
                error = None
            except TimeoutError:
                error = f"no answer within {self._s.ping_timeout_seconds:.0f}s"
            except Exception as exc:  # any failure of the backend means "unreachable"
                error = str(exc) or type(exc).__name__
            if (error is None) != (self._cis_error is None) or not self._pinged:
                log.log(logging.INFO if error is None else logging.WARNING,
                        "CIS is %s", "reachable" if error is None else f"unreachable: {error}")
                self._changed.set()
            self._cis_error, self._pinged = error, True
            await asyncio.sleep(self._s.ping_interval_seconds)

    async def _watch_pods_ready(self) -> None:
        await self._pods_ready.wait()
        self._changed.set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._ping_loop(), name="cis-ping")
            tg.create_task(self._status_loop(), name="node-status")
            tg.create_task(self._lease_loop(), name="node-lease")
            tg.create_task(self._watch_pods_ready(), name="node-ready-on-pods")
