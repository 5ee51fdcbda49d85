"""Backing clusters: their registration (a Secret per cluster in the management cluster)
and, per cluster, the live view CIS keeps of it (node and pod informers).

A registration Secret in namespace `cis-system` is labelled `cis.io/backing-cluster=true`
and holds `kubeconfig` (with embedded credentials) in its data; annotations give
`cis.io/region`, `cis.io/zone`, `cis.io/runtime-handler` and `cis.io/max-pending`.
Health and free capacity are observed, never configured.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import yaml

from cis.capacity import TERMINAL_PHASES, Capacity, compute_capacity, pod_requests
from kubeio.client import JSON, KubeClient, NotFound
from kubeio.informer import Informer

log = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "cis-system"
CLUSTER_LABEL = "cis.io/backing-cluster"
DEFAULT_MAX_PENDING = 200


@dataclass(frozen=True)
class BackingClusterConfig:
    name: str
    region: str
    zone: str
    kubeconfig: dict[str, Any]
    runtime_handler: str = "kata"
    # Pods CIS lets wait in this cluster's scheduler queue at once: beyond it instances stay
    # Queued in CIS, which protects the backing control plane from a flood (DESIGN §3).
    max_pending: int = DEFAULT_MAX_PENDING


def cluster_from_secret(secret: JSON) -> BackingClusterConfig:
    meta = secret["metadata"]
    ann = meta.get("annotations", {})
    raw = base64.b64decode(secret.get("data", {}).get("kubeconfig", "")).decode()
    return BackingClusterConfig(
        name=meta["name"].removeprefix("cluster-"),
        region=ann.get("cis.io/region", "default"),
        zone=ann.get("cis.io/zone", ""),
        kubeconfig=yaml.safe_load(raw) or {},
        runtime_handler=ann.get("cis.io/runtime-handler", "kata"),
        max_pending=int(ann.get("cis.io/max-pending", DEFAULT_MAX_PENDING)),
    )


def secret_for_cluster(cfg: BackingClusterConfig) -> JSON:
    return {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {
            "name": f"cluster-{cfg.name}", "namespace": SYSTEM_NAMESPACE,
            "labels": {CLUSTER_LABEL: "true"},
            "annotations": {
                "cis.io/region": cfg.region, "cis.io/zone": cfg.zone,
                "cis.io/runtime-handler": cfg.runtime_handler,
                "cis.io/max-pending": str(cfg.max_pending),
            },
        },
        "type": "Opaque",
        "data": {"kubeconfig": base64.b64encode(yaml.safe_dump(cfg.kubeconfig).encode()).decode()},
    }


PodHandler = Callable[["ClusterRuntime", str, JSON], Awaitable[None]]


class ClusterRuntime:
    """The live view of one backing cluster. `run()` keeps informers going; the snapshot
    accessors are cheap and read only the caches."""

    def __init__(self, cfg: BackingClusterConfig, client: KubeClient, on_pod: PodHandler) -> None:
        self.cfg = cfg
        self.client = client
        self._on_pod = on_pod
        self.nodes = Informer(client, "/api/v1/nodes", self._node_event)
        # All pods, not only CIS's: capacity must count everything the scheduler counts.
        self.pods = Informer(client, "/api/v1/pods", self._pod_event)
        # Pods created but not yet seen by the watch; counted so a burst cannot overshoot.
        self._in_flight: dict[str, tuple[int, int]] = {}
        self._in_flight_totals = (0, 0)
        # Allocatable of the usable nodes; recomputed only after a node event.
        self._nodes_capacity: Capacity | None = None
        # Per pod (cpu millis, memory bytes, pending) of every non-terminal pod, kept up to
        # date on each watch event so placement never scans all pods.
        self._usage: dict[str, tuple[int, int, bool]] = {}
        self._totals = [0, 0, 0]
        self.runtime_class: JSON | None = None
        self.last_contact = 0.0
        self.healthy = False

    @property
    def name(self) -> str:
        return self.cfg.name

    async def _node_event(self, kind: str, obj: JSON) -> None:
        self._touch()
        self._nodes_capacity = None

    def reserve(self, name: str, cpu_millis: int, memory_bytes: int) -> None:
        """Count a pod being created before its watch event arrives."""
        self.release(name)
        self._in_flight[name] = (cpu_millis, memory_bytes)
        cpu, mem = self._in_flight_totals
        self._in_flight_totals = (cpu + cpu_millis, mem + memory_bytes)

    def release(self, name: str) -> None:
        old = self._in_flight.pop(name, None)
        if old is not None:
            cpu, mem = self._in_flight_totals
            self._in_flight_totals = (cpu - old[0], mem - old[1])

    async def _pod_event(self, kind: str, obj: JSON) -> None:
        self._touch()
        meta = obj["metadata"]
        self.release(meta["name"])
        self._account(f"{meta.get('namespace')}/{meta['name']}", None if kind == "DELETED" else obj)
        await self._on_pod(self, kind, obj)

    def _account(self, key: str, pod: JSON | None) -> None:
        old = self._usage.pop(key, None)
        if old is not None:
            self._totals[0] -= old[0]
            self._totals[1] -= old[1]
            self._totals[2] -= int(old[2])
        if pod is None or pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            return
        cpu, mem = pod_requests(pod)
        pending = not pod.get("spec", {}).get("nodeName")
        self._usage[key] = (cpu, mem, pending)
        self._totals[0] += cpu
        self._totals[1] += mem
        self._totals[2] += int(pending)

    def _touch(self) -> None:
        self.last_contact = time.monotonic()
        self.healthy = True

    def capacity(self) -> Capacity:
        if self._nodes_capacity is None:
            self._nodes_capacity = compute_capacity(self.nodes.cache.values(), ())
        nodes = self._nodes_capacity
        cpu = self._totals[0] + self._in_flight_totals[0]
        mem = self._totals[1] + self._in_flight_totals[1]
        n = len(self._in_flight)
        return Capacity(nodes.allocatable_cpu_millis, nodes.allocatable_memory_bytes,
                        nodes.allocatable_pods, cpu, mem, len(self._usage) + n,
                        self._totals[2] + n, nodes.usable_nodes)

    def synced(self) -> bool:
        return self.nodes.synced.is_set() and self.pods.synced.is_set()

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.nodes.run(), name=f"{self.name}-nodes")
            tg.create_task(self.pods.run(), name=f"{self.name}-pods")
            tg.create_task(self._probe(), name=f"{self.name}-probe")

    async def _probe(self, interval: float = 5.0) -> None:
        """Health is observed: a cluster whose apiserver stops answering is unhealthy.
        The RuntimeClass is read here too (its overhead counts in placement)."""
        rc_path = f"/apis/node.k8s.io/v1/runtimeclasses/{self.cfg.runtime_handler}"
        while True:
            try:
                async with asyncio.timeout(interval):
                    await self.client.text("/readyz")
                    try:
                        self.runtime_class = await self.client.get(rc_path)
                    except NotFound:
                        self.runtime_class = None
                self._touch()
            except Exception as exc:
                if self.healthy:
                    log.warning("backing cluster %s unreachable: %s", self.name, exc)
                self.healthy = False
            await asyncio.sleep(interval)
