"""Free capacity of a backing cluster, computed from its watched nodes and pods.

Pure functions over the informers' caches: what the kube-scheduler would see as
allocatable minus requested on the nodes CIS may use (Ready, schedulable, Kata-capable),
and how many pods wait unscheduled. Requests include the RuntimeClass overhead the
apiserver added, as the scheduler counts it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cis.domain.sizes import parse_cpu, parse_memory
from kubeio.quantity import parse_quantity

KATA_NODE_LABEL = "katacontainers.io/kata-runtime"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


@dataclass(frozen=True)
class Capacity:
    allocatable_cpu_millis: int
    allocatable_memory_bytes: int
    allocatable_pods: int
    requested_cpu_millis: int
    requested_memory_bytes: int
    pods: int
    pending_pods: int
    usable_nodes: int

    @property
    def free_cpu_millis(self) -> int:
        return self.allocatable_cpu_millis - self.requested_cpu_millis

    @property
    def free_memory_bytes(self) -> int:
        return self.allocatable_memory_bytes - self.requested_memory_bytes

    @property
    def free_pods(self) -> int:
        return self.allocatable_pods - self.pods


def node_usable(node: dict[str, Any]) -> bool:
    if node.get("spec", {}).get("unschedulable"):
        return False
    if node.get("metadata", {}).get("labels", {}).get(KATA_NODE_LABEL) != "true":
        return False
    conditions = node.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_requests(pod: dict[str, Any]) -> tuple[int, int]:
    """(cpu millis, memory bytes) the scheduler reserves for the pod."""
    spec = pod.get("spec", {})
    cpu = mem = 0
    for c in spec.get("containers", []):
        req = c.get("resources", {}).get("requests", {})
        cpu += parse_cpu(req.get("cpu", 0))
        mem += parse_memory(req.get("memory", 0))
    overhead = spec.get("overhead") or {}
    return cpu + parse_cpu(overhead.get("cpu", 0)), mem + parse_memory(overhead.get("memory", 0))


def compute_capacity(nodes: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]) -> Capacity:
    usable = {n["metadata"]["name"]: n for n in nodes if node_usable(n)}
    alloc_cpu = alloc_mem = alloc_pods = 0
    for node in usable.values():
        alloc = node.get("status", {}).get("allocatable", {})
        alloc_cpu += parse_cpu(alloc.get("cpu", 0))
        alloc_mem += parse_memory(alloc.get("memory", 0))
        alloc_pods += int(parse_quantity(alloc.get("pods", 110)))
    req_cpu = req_mem = count = pending = 0
    for pod in pods:
        if pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            continue
        node = pod.get("spec", {}).get("nodeName")
        if node and node not in usable:
            continue
        cpu, mem = pod_requests(pod)
        req_cpu += cpu
        req_mem += mem
        count += 1
        if not node:
            pending += 1
    return Capacity(alloc_cpu, alloc_mem, alloc_pods, req_cpu, req_mem, count, pending, len(usable))
