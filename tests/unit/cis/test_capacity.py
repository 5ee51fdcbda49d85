"""Free capacity from nodes and pods as the API returns them (canonical quantities)."""

from __future__ import annotations

from cis.capacity import compute_capacity, node_usable


def node(name: str, cpu: str = "1k", mem: str = "4000Gi", pods: str = "1k", ready: bool = True,
         kata: bool = True, unschedulable: bool = False) -> dict:
    return {"metadata": {"name": name, "labels": {"katacontainers.io/kata-runtime": "true"} if kata else {}},
            "spec": {"unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": mem, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pod(cpu: str, mem: str, node_name: str | None, phase: str = "Running", overhead: dict | None = None) -> dict:
    spec: dict = {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": mem}}}]}
    if node_name:
        spec["nodeName"] = node_name
    if overhead:
        spec["overhead"] = overhead
    return {"spec": spec, "status": {"phase": phase}}


def test_canonical_quantities_and_overhead_are_counted() -> None:
    cap = compute_capacity([node("n1")], [pod("250m", "512Mi", "n1", overhead={"cpu": "250m", "memory": "160Mi"}),
                                          pod("1", "1Gi", None, phase="Pending")])
    assert (cap.allocatable_cpu_millis, cap.allocatable_pods) == (1_000_000, 1000)
    assert cap.requested_cpu_millis == 250 + 250 + 1000
    assert cap.requested_memory_bytes == (512 + 160 + 1024) * 2**20
    assert (cap.pods, cap.pending_pods) == (2, 1)


def test_ended_pods_and_unusable_nodes_do_not_count() -> None:
    nodes = [node("a"), node("b", ready=False), node("c", kata=False), node("d", unschedulable=True)]
    assert [node_usable(n) for n in nodes] == [True, False, False, False]
    cap = compute_capacity(nodes, [pod("1", "1Gi", "a", phase="Succeeded"), pod("1", "1Gi", "b")])
    assert (cap.usable_nodes, cap.requested_cpu_millis, cap.pods) == (1, 0, 0)


async def test_cluster_view_counts_pods_in_flight_until_their_watch_event() -> None:
    """Placement reads these totals for every instance; they are kept, not recomputed."""
    from typing import Any

    from cis.backing import BackingClusterConfig, ClusterRuntime

    async def on_pod(*_: Any) -> None:
        return None

    rt = ClusterRuntime(BackingClusterConfig("a", "region-a", "", {}), client=None, on_pod=on_pod)  # type: ignore[arg-type]  # informers never started
    await rt._node_event("ADDED", node("n1", cpu="2", pods="10"))
    rt.nodes.cache["n1"] = node("n1", cpu="2", pods="10")
    rt.reserve("ci-1", 500, 2**30)
    rt.reserve("ci-2", 250, 2**29)
    rt.reserve("ci-2", 250, 2**29)  # the same pod twice counts once
    cap = rt.capacity()
    assert (cap.allocatable_cpu_millis, cap.requested_cpu_millis, cap.pods) == (2000, 750, 2)
    pod_seen = {"metadata": {"name": "ci-1", "namespace": "t"}, **pod("500m", "1Gi", "n1")}
    await rt._pod_event("ADDED", pod_seen)  # now counted from the watch, no longer in flight
    rt.release("ci-2")
    cap = rt.capacity()
    assert (cap.requested_cpu_millis, cap.requested_memory_bytes, cap.pods) == (500, 2**30, 1)
