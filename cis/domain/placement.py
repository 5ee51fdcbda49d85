"""Placement and admission: which backing cluster gets an instance, and whether now.

The controller keeps one ``ClusterSnapshot`` per backing cluster, built from its node and
pod watches (never from periodic LISTs), and calls ``choose_cluster`` for each Queued
instance. ``None`` means "stay Queued"; ``explain_no_cluster`` says why, for the status.

Rules, in order:

1. **Constraints** (a cluster failing one is never chosen): not excluded (e.g. the cluster
   the instance is being moved away from), healthy, has the RuntimeClass, in the requested
   region, has the requested zone.
2. **Admission** (``can_admit``): fewer Pending pods than ``max_pending`` (protects that
   cluster's apiserver and scheduler from floods of Pending pods), and free cpu and memory
   for the size *plus* the RuntimeClass overhead (Kata's VM costs ~250m/160Mi, counted by
   the scheduler too). When the largest free node is known, the pod must also fit on it.
3. **Score**: the fraction of the cluster still free after placing (the smaller of cpu and
   memory: "least allocated", which keeps room for large sizes everywhere), minus
   ``SPREAD_WEIGHT`` x the cluster's share of the spread counts (how many of this
   tenant's/batch's instances are already there). Highest score wins; ties go to the name
   (deterministic, so two controllers would agree).

For a batch, call ``reserve`` after each choice so the next choice sees the room taken,
without waiting for watch events.

Units: millicores and MiB. Build snapshots conservatively: allocatable rounded down
(``sizes.bytes_to_mib_floor``), allocated rounded up (``bytes_to_mib_ceil``), allocated
including Pending pods' requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from cis.domain.ids import ClusterName, RegionName, ZoneName
from cis.domain.model import Instance
from cis.domain.sizes import Size

SPREAD_WEIGHT = 0.5
DEFAULT_MAX_PENDING = 50


@dataclass(frozen=True)
class ClusterSnapshot:
    """What the controller knows about one backing cluster right now."""

    name: ClusterName
    region: RegionName
    zones: frozenset[ZoneName] = frozenset()
    healthy: bool = True
    has_runtime_class: bool = True
    allocatable_cpu_millis: int = 0
    allocatable_memory_mib: int = 0
    allocated_cpu_millis: int = 0
    allocated_memory_mib: int = 0
    pending_pods: int = 0
    max_pending: int = DEFAULT_MAX_PENDING
    overhead_cpu_millis: int = 0  # RuntimeClass overhead.podFixed, per pod
    overhead_memory_mib: int = 0
    largest_node_free_cpu_millis: int | None = None  # None: unknown, not checked
    largest_node_free_memory_mib: int | None = None

    @property
    def free_cpu_millis(self) -> int:
        return self.allocatable_cpu_millis - self.allocated_cpu_millis

    @property
    def free_memory_mib(self) -> int:
        return self.allocatable_memory_mib - self.allocated_memory_mib


def footprint(snapshot: ClusterSnapshot, size: Size) -> tuple[int, int]:
    """(millicores, MiB) the pod takes on ``snapshot``'s cluster, overhead included."""
    return (
        size.cpu_millis + snapshot.overhead_cpu_millis,
        size.memory_mib + snapshot.overhead_memory_mib,
    )


def violated_constraint(
    snapshot: ClusterSnapshot,
    *,
    region: RegionName | None = None,
    zone: ZoneName | None = None,
    exclude: frozenset[ClusterName] = frozenset(),
) -> str | None:
    """The first constraint ``snapshot`` violates, or None."""
    if snapshot.name in exclude:
        return "excluded"
    if region is not None and snapshot.region != region:
        return f"not in region {region}"
    if zone is not None and zone not in snapshot.zones:
        return f"has no zone {zone}"
    if not snapshot.healthy:
        return "unhealthy"
    if not snapshot.has_runtime_class:
        return "lacks the RuntimeClass"
    return None


def rejection_reason(snapshot: ClusterSnapshot, size: Size) -> str | None:
    """Why the cluster cannot take a pod of ``size`` now, or None if it can."""
    if snapshot.pending_pods >= snapshot.max_pending:
        return f"{snapshot.pending_pods} pods pending (limit {snapshot.max_pending})"
    cpu, memory = footprint(snapshot, size)
    if cpu > snapshot.free_cpu_millis:
        return f"{snapshot.free_cpu_millis}m cpu free, {cpu}m needed"
    if memory > snapshot.free_memory_mib:
        return f"{snapshot.free_memory_mib}Mi memory free, {memory}Mi needed"
    node_cpu = snapshot.largest_node_free_cpu_millis
    node_memory = snapshot.largest_node_free_memory_mib
    if (node_cpu is not None and cpu > node_cpu) or (node_memory is not None and memory > node_memory):
        return "no single node has room"
    return None


def can_admit(snapshot: ClusterSnapshot, size: Size) -> bool:
    """Room for the pod and the Pending bound not reached (constraints aside)."""
    return rejection_reason(snapshot, size) is None


def could_ever_fit(snapshot: ClusterSnapshot, size: Size) -> bool:
    """Whether the size fits the cluster at all (an empty cluster would admit it)."""
    cpu, memory = footprint(snapshot, size)
    return cpu <= snapshot.allocatable_cpu_millis and memory <= snapshot.allocatable_memory_mib


def reserve(snapshot: ClusterSnapshot, size: Size) -> ClusterSnapshot:
    """``snapshot`` after creating one more (Pending) pod of ``size`` on it."""
    cpu, memory = footprint(snapshot, size)
    return replace(
        snapshot,
        allocated_cpu_millis=snapshot.allocated_cpu_millis + cpu,
        allocated_memory_mib=snapshot.allocated_memory_mib + memory,
        pending_pods=snapshot.pending_pods + 1,
        largest_node_free_cpu_millis=None,  # unknown which node it lands on
        largest_node_free_memory_mib=None,
    )


def score(snapshot: ClusterSnapshot, size: Size, spread_share: float = 0.0) -> float:
    """Higher is better; see the module docstring."""
    cpu, memory = footprint(snapshot, size)
    free_cpu = (snapshot.free_cpu_millis - cpu) / max(1, snapshot.allocatable_cpu_millis)
    free_memory = (snapshot.free_memory_mib - memory) / max(1, snapshot.allocatable_memory_mib)
    return min(free_cpu, free_memory) - SPREAD_WEIGHT * spread_share


def choose_cluster(
    size: Size,
    snapshots: Iterable[ClusterSnapshot],
    *,
    region: RegionName | None = None,
    zone: ZoneName | None = None,
    spread: Mapping[ClusterName, int] | None = None,
    exclude: frozenset[ClusterName] = frozenset(),
) -> ClusterName | None:
    """The best cluster for a pod of ``size``, or None (stay Queued).

    ``spread``: instances of the same tenant (or batch) per cluster, to spread them out.
    """
    spread = spread or {}
    candidates = [
        s
        for s in snapshots
        if violated_constraint(s, region=region, zone=zone, exclude=exclude) is None and can_admit(s, size)
    ]
    if not candidates:
        return None
    total = sum(spread.get(s.name, 0) for s in candidates)

    def key(s: ClusterSnapshot) -> tuple[float, str]:
        share = spread.get(s.name, 0) / total if total else 0.0
        return (-score(s, size, share), s.name)

    return min(candidates, key=key).name


def choose_cluster_for(
    instance: Instance,
    snapshots: Iterable[ClusterSnapshot],
    *,
    spread: Mapping[ClusterName, int] | None = None,
    exclude: frozenset[ClusterName] = frozenset(),
) -> ClusterName | None:
    """``choose_cluster`` with the instance's size, region and zone."""
    return choose_cluster(
        instance.size,
        snapshots,
        region=instance.spec.region,
        zone=instance.spec.zone,
        spread=spread,
        exclude=exclude,
    )


def explain_no_cluster(
    size: Size,
    snapshots: Iterable[ClusterSnapshot],
    *,
    region: RegionName | None = None,
    zone: ZoneName | None = None,
    exclude: frozenset[ClusterName] = frozenset(),
) -> tuple[str, str]:
    """(reason, message) for an instance that stays Queued.

    Reasons: ``NoMatchingCluster`` (nothing in the region/zone), ``NoHealthyCluster``,
    ``TooLarge`` (no matching cluster could ever hold it), ``PendingLimit``, ``NoCapacity``.
    """
    snapshots = list(snapshots)
    where = " ".join(part for part in (f"region {region}" if region else "", f"zone {zone}" if zone else "") if part)
    where = where or "any region"
    placed = [
        s
        for s in snapshots
        if violated_constraint(s, region=region, zone=zone, exclude=exclude)
        in (None, "unhealthy", "lacks the RuntimeClass")
    ]
    if not placed:
        return "NoMatchingCluster", f"no cluster in {where}"
    usable = [s for s in placed if violated_constraint(s) is None]
    if not usable:
        return "NoHealthyCluster", f"no healthy cluster with the RuntimeClass in {where}"
    if not any(could_ever_fit(s, size) for s in usable):
        return "TooLarge", f"no cluster in {where} can hold {size}"
    reasons = {s.name: rejection_reason(s, size) for s in usable}
    details = "; ".join(f"{name}: {why}" for name, why in sorted(reasons.items()) if why)
    if all(s.pending_pods >= s.max_pending for s in usable):
        return "PendingLimit", f"waiting for pending pods to start ({details})"
    return "NoCapacity", f"waiting for capacity for {size} ({details})"
