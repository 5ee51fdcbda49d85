from __future__ import annotations

from dataclasses import replace

import pytest

from cis.domain.ids import ClusterName, RegionName, ZoneName
from cis.domain.placement import (
    ClusterSnapshot,
    can_admit,
    choose_cluster,
    choose_cluster_for,
    explain_no_cluster,
    rejection_reason,
    reserve,
)
from cis.domain.sizes import Size

from .builders import make_instance, raw_spec

SMALL = Size(500, 1024)
BIG = Size(8000, 32768)


def snap(name: str, region: str = "eu", **kw: object) -> ClusterSnapshot:
    base = ClusterSnapshot(
        name=ClusterName(name),
        region=RegionName(region),
        zones=frozenset({ZoneName(f"{region}-a"), ZoneName(f"{region}-b")}),
        allocatable_cpu_millis=16000,
        allocatable_memory_mib=65536,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("snapshot", "size", "ok"),
    [
        (snap("a"), SMALL, True),
        (snap("a", allocated_cpu_millis=15600), SMALL, False),
        (snap("a", allocated_cpu_millis=15500), SMALL, True),
        (snap("a", allocated_memory_mib=65000), SMALL, False),
        (snap("a", pending_pods=50), SMALL, False),
        (snap("a", pending_pods=49), SMALL, True),
        (snap("a", allocated_cpu_millis=15500, overhead_cpu_millis=250), SMALL, False),
        (snap("a", largest_node_free_cpu_millis=4000), BIG, False),
        (snap("a", largest_node_free_cpu_millis=8000, largest_node_free_memory_mib=40000), BIG, True),
    ],
    ids=[
        "room",
        "cpu-full",
        "cpu-exact-fit",
        "memory-full",
        "pending-limit",
        "pending-below-limit",
        "overhead-counts",
        "no-node-big-enough",
        "node-big-enough",
    ],
)
def test_can_admit(snapshot: ClusterSnapshot, size: Size, ok: bool) -> None:
    assert can_admit(snapshot, size) is ok
    assert (rejection_reason(snapshot, size) is None) is ok


CLUSTERS = [
    snap("a", "eu", allocated_cpu_millis=8000),
    snap("b", "eu", allocated_cpu_millis=2000),
    snap("c", "us"),
]


@pytest.mark.parametrize(
    ("snapshots", "kwargs", "expected"),
    [
        (CLUSTERS, {}, "c"),
        (CLUSTERS, {"region": "eu"}, "b"),
        (CLUSTERS, {"region": "ap"}, None),
        (CLUSTERS, {"region": "eu", "zone": "eu-b"}, "b"),
        (CLUSTERS, {"zone": "us-a"}, "c"),
        (CLUSTERS, {"zone": "eu-z"}, None),
        (CLUSTERS, {"region": "eu", "exclude": frozenset({"b"})}, "a"),
        ([replace(CLUSTERS[1], healthy=False), CLUSTERS[0]], {}, "a"),
        ([replace(CLUSTERS[1], has_runtime_class=False), CLUSTERS[0]], {}, "a"),
        ([replace(CLUSTERS[1], pending_pods=50), CLUSTERS[0]], {}, "a"),
        ([snap("x"), snap("y")], {}, "x"),
        ([snap("x"), snap("y")], {"spread": {"x": 3, "y": 1}}, "y"),
        ([snap("x", allocated_cpu_millis=1000), snap("y")], {"spread": {"y": 10}}, "x"),
        ([], {}, None),
    ],
    ids=[
        "most-free",
        "region",
        "no-such-region",
        "zone",
        "zone-picks-region",
        "no-such-zone",
        "exclude",
        "unhealthy-skipped",
        "no-runtimeclass-skipped",
        "pending-bound-skipped",
        "tie-by-name",
        "spread",
        "spread-vs-capacity",
        "nothing",
    ],
)
def test_choose_cluster(snapshots: list[ClusterSnapshot], kwargs: dict[str, object], expected: str | None) -> None:
    assert choose_cluster(SMALL, snapshots, **kwargs) == expected  # type: ignore[arg-type]


def test_batch_with_reserve_spreads_over_equal_clusters() -> None:
    snapshots = {s.name: s for s in (snap("x", max_pending=1000), snap("y", max_pending=1000))}
    counts = {"x": 0, "y": 0}
    for _ in range(20):
        chosen = choose_cluster(SMALL, snapshots.values())
        assert chosen is not None
        snapshots[chosen] = reserve(snapshots[chosen], SMALL)
        counts[chosen] += 1
    assert counts == {"x": 10, "y": 10}


def test_batch_stops_at_the_pending_bound() -> None:
    snapshots = {"x": snap("x", max_pending=3)}
    placed = 0
    while (chosen := choose_cluster(SMALL, snapshots.values())) is not None:
        snapshots[chosen] = reserve(snapshots[chosen], SMALL)
        placed += 1
    assert placed == 3 and snapshots["x"].pending_pods == 3


def test_reserve_includes_overhead() -> None:
    s = reserve(snap("x", overhead_cpu_millis=250, overhead_memory_mib=160), SMALL)
    assert (s.allocated_cpu_millis, s.allocated_memory_mib, s.pending_pods) == (750, 1184, 1)


def test_choose_cluster_for_uses_the_spec_constraints() -> None:
    inst = make_instance(raw_spec(region="us"))
    assert choose_cluster_for(inst, CLUSTERS) == "c"
    assert choose_cluster_for(inst, CLUSTERS, exclude=frozenset({ClusterName("c")})) is None


@pytest.mark.parametrize(
    ("snapshots", "size", "kwargs", "reason"),
    [
        (CLUSTERS, SMALL, {"region": "ap"}, "NoMatchingCluster"),
        ([replace(c, healthy=False) for c in CLUSTERS], SMALL, {}, "NoHealthyCluster"),
        ([snap("s", allocatable_cpu_millis=4000)], BIG, {}, "TooLarge"),
        ([snap("p", pending_pods=50)], SMALL, {}, "PendingLimit"),
        ([snap("f", allocated_cpu_millis=16000)], SMALL, {}, "NoCapacity"),
    ],
    ids=["no-region", "unhealthy", "too-large", "pending", "full"],
)
def test_explain_no_cluster(
    snapshots: list[ClusterSnapshot], size: Size, kwargs: dict[str, object], reason: str
) -> None:
    got, message = explain_no_cluster(size, snapshots, **kwargs)  # type: ignore[arg-type]
    assert got == reason and message
