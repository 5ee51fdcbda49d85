"""The virtual node and its Lease as plain data: what `node_controller` writes.

Pure functions over settings, the previous object and an injected `now`. The node looks
like a kubelet's to the control plane: labels, a NoSchedule taint so only pods that opt in
land here, capacity "infinite but valid", InternalIP + kubelet port so the apiserver can
reach :10250, conditions with heartbeats whose transition times move only on change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vk_provider.settings import NodeSettings

JSON = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"

# NodeRestriction lets a node set only these labels of the kubernetes.io / k8s.io
# namespaces on itself (plus anything under kubelet.kubernetes.io and node.kubernetes.io).
_SELF_SETTABLE = frozenset({
    "kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
    "beta.kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type", "topology.kubernetes.io/region", "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
})
_SELF_SETTABLE_DOMAINS = ("kubelet.kubernetes.io", "node.kubernetes.io")


@dataclass(frozen=True)
class Readiness:
    """What the Ready condition should say now."""

    ready: bool
    reason: str
    message: str


STARTING = Readiness(False, "KubeletNotReady", "virtual kubelet is starting: pod and instance caches not synced")
READY = Readiness(True, "KubeletReady", "virtual kubelet is ready; CIS is reachable")


def unreachable(detail: str) -> Readiness:
    return Readiness(False, "CISUnreachable", f"CIS is unreachable: {detail[:200]}")


def format_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_labels(s: NodeSettings) -> dict[str, str]:
    return {
        "type": "virtual-kubelet",
        "kubernetes.io/role": "agent",
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": s.name,
        **dict(s.extra_labels),
    }


def restricted_labels(labels: dict[str, str]) -> set[str]:
    """Labels a node identity may not set on itself under NodeRestriction (such as
    `kubernetes.io/role`); an administrator has to add them."""
    out = set()
    for key in labels:
        prefix = key.rpartition("/")[0]
        in_k8s = any(prefix == d or prefix.endswith("." + d) for d in ("kubernetes.io", "k8s.io"))
        allowed = key in _SELF_SETTABLE or any(
            prefix == d or prefix.endswith("." + d) for d in _SELF_SETTABLE_DOMAINS)
        if in_k8s and not allowed:
            out.add(key)
    return out


def _condition(type_: str, status: bool, reason: str, message: str) -> tuple[str, str, str, str]:
    return type_, "True" if status else "False", reason, message


def desired_conditions(readiness: Readiness) -> list[tuple[str, str, str, str]]:
    return [
        _condition("Ready", readiness.ready, readiness.reason, readiness.message),
        _condition("MemoryPressure", False, "KubeletHasSufficientMemory", "CIS sizes every instance itself"),
        _condition("DiskPressure", False, "KubeletHasNoDiskPressure", "CIS sizes every instance itself"),
        _condition("PIDPressure", False, "KubeletHasSufficientPID", "CIS sizes every instance itself"),
        _condition("NetworkUnavailable", False, "CISNetworkReady", "instances get their network from CIS"),
    ]


def node_conditions(previous: list[JSON], readiness: Readiness, now: datetime) -> list[JSON]:
    """Our conditions with a fresh heartbeat; transition times kept unless the status flipped."""
    before = {c.get("type"): c for c in previous}
    stamp = format_time(now)
    out = []
    for type_, status, reason, message in desired_conditions(readiness):
        old = before.get(type_) or {}
        kept = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": stamp, "lastTransitionTime": kept or stamp,
        })
    return out


def node_status(s: NodeSettings, previous: JSON | None, readiness: Readiness, now: datetime) -> JSON:
    resources = {"cpu": s.cpu, "memory": s.memory, "pods": s.pods, "ephemeral-storage": s.ephemeral_storage}
    return {
        "capacity": dict(resources),
        "allocatable": dict(resources),
        "conditions": node_conditions(list((previous or {}).get("conditions") or []), readiness, now),
        "addresses": [{"type": "InternalIP", "address": s.internal_ip}, {"type": "Hostname", "address": s.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": s.port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "kata", "osImage": "CIS container instances (Kata VMs)",
            "containerRuntimeVersion": "cis://v1",
            "kubeletVersion": s.kubelet_version, "kubeProxyVersion": "",
            "operatingSystem": "linux", "architecture": "amd64",
        },
    }


def node_object(s: NodeSettings, readiness: Readiness, now: datetime, *,
                drop_labels: frozenset[str] = frozenset()) -> JSON:
    labels = {k: v for k, v in node_labels(s).items() if k not in drop_labels}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": s.name, "labels": labels},
        "spec": {"taints": [t.to_json() for t in s.taints]},
        "status": node_status(s, None, readiness, now),
    }


def status_patch(s: NodeSettings, node: JSON, readiness: Readiness, now: datetime) -> JSON:
    """A strategic-merge patch of the status subresource: conditions merge by type, so
    conditions other actors added survive (as with the Go VK's three-way patch)."""
    return {"status": node_status(s, node.get("status"), readiness, now)}


def lease_object(node_name: str, node_uid: str, duration: int, now: datetime) -> JSON:
    stamp = format_micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node_name, "namespace": LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}],
        },
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": duration,
                 "acquireTime": stamp, "renewTime": stamp},
    }


def renewed_lease(lease: JSON, node_name: str, node_uid: str, duration: int, now: datetime) -> JSON:
    """The lease with a fresh renewTime; the owner reference follows a re-created Node."""
    renewed = {**lease, "spec": {**lease.get("spec", {}), "holderIdentity": node_name,
                                 "leaseDurationSeconds": duration, "renewTime": format_micro_time(now)}}
    meta = dict(lease.get("metadata", {}))
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    renewed["metadata"] = meta
    return renewed
