"""The node object, its conditions and heartbeats, restricted labels, and the Lease."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from vk_provider import nodes
from vk_provider.settings import NodeSettings, Taint

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 10, 1, tzinfo=UTC)
S = NodeSettings(name="vnode", internal_ip="192.0.2.7", port=10250)


def test_the_node_looks_like_a_kubelet_node() -> None:
    node = nodes.node_object(S, nodes.READY, NOW)
    meta, spec, status = node["metadata"], node["spec"], node["status"]
    assert meta["labels"] == {"type": "virtual-kubelet", "kubernetes.io/role": "agent", "kubernetes.io/os": "linux",
                              "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "vnode"}
    assert spec["taints"] == [{"key": "virtual-kubelet.io/provider", "value": "cis", "effect": "NoSchedule"}]
    assert status["capacity"] == status["allocatable"] == {
        "cpu": "10000", "memory": "64Ti", "pods": "10000", "ephemeral-storage": "1Pi"}
    assert status["addresses"][0] == {"type": "InternalIP", "address": "192.0.2.7"}
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert status["nodeInfo"]["kubeletVersion"].startswith("v1.")
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
        "NetworkUnavailable": "False"}


def test_restricted_labels_can_be_dropped() -> None:
    assert nodes.restricted_labels(nodes.node_labels(S)) == {"kubernetes.io/role"}
    assert nodes.restricted_labels({"node-role.kubernetes.io/agent": "", "node.kubernetes.io/x": "y",
                                    "example.com/a": "b", "topology.kubernetes.io/zone": "z"}) == {
        "node-role.kubernetes.io/agent"}
    node = nodes.node_object(S, nodes.READY, NOW, drop_labels=frozenset({"kubernetes.io/role"}))
    assert "kubernetes.io/role" not in node["metadata"]["labels"]


def test_heartbeats_move_but_transitions_only_on_change() -> None:
    first = nodes.node_conditions([], nodes.READY, NOW)
    again = nodes.node_conditions(first, nodes.READY, LATER)
    ready = {c["type"]: c for c in again}["Ready"]
    assert (ready["lastHeartbeatTime"], ready["lastTransitionTime"]) == ("2026-11-21T10:01:00Z", "2026-11-21T10:00:00Z")
    down = {c["type"]: c for c in nodes.node_conditions(again, nodes.unreachable("refused"), LATER)}["Ready"]
    assert (down["status"], down["reason"], down["lastTransitionTime"]) == (
        "False", "CISUnreachable", "2026-11-21T10:01:00Z")
    assert "refused" in down["message"]


@pytest.mark.parametrize(("readiness", "status", "reason"), [
    (nodes.STARTING, "False", "KubeletNotReady"), (nodes.READY, "True", "KubeletReady"),
    (nodes.unreachable("x"), "False", "CISUnreachable")], ids=["starting", "ready", "unreachable"])
def test_status_patch_carries_readiness(readiness: nodes.Readiness, status: str, reason: str) -> None:
    patch = nodes.status_patch(S, {"status": {}}, readiness, NOW)
    ready = next(c for c in patch["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == (status, reason)


def test_lease_is_owned_by_the_node_and_renewed() -> None:
    lease = nodes.lease_object("vnode", "node-uid", 40, NOW)
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "node-uid"
    assert lease["spec"]["leaseDurationSeconds"] == 40
    renewed = nodes.renewed_lease(lease, "vnode", "new-uid", 40, LATER)
    assert renewed["spec"]["renewTime"] == "2026-11-21T10:01:00.000000Z"
    assert renewed["spec"]["acquireTime"] == lease["spec"]["acquireTime"]
    assert renewed["metadata"]["ownerReferences"][0]["uid"] == "new-uid"


@pytest.mark.parametrize(("text", "taint"), [
    ("a=b:NoSchedule", Taint("a", "b", "NoSchedule")), ("a:NoExecute", Taint("a", "", "NoExecute"))],
    ids=["with-value", "without-value"])
def test_taint_parse(text: str, taint: Taint) -> None:
    assert Taint.parse(text) == taint


@pytest.mark.parametrize("text", ["a=b", "a=b:Sometimes", ":NoSchedule"], ids=["no-effect", "bad-effect", "no-key"])
def test_bad_taints(text: str) -> None:
    with pytest.raises(ValueError):
        Taint.parse(text)
