"""CIS places instances as Kata pods on the real backing clusters and keeps status true.

Runs against the real `cis serve` process, the real user (management) cluster and two
KWOK-backed clusters in two regions.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest

from cis.devstack.platform import CisProcess, cluster_pods
from cis.devstack.stack import Stack
from tests.integration.helpers import Client, small, wait_for

pytestmark = pytest.mark.usefixtures("clean_tenant")


def pod_of(stack: Stack, inst: dict[str, Any]) -> dict[str, Any] | None:
    cluster = stack.clusters[inst["status"]["cluster"]]
    pods = cluster_pods(cluster, f"tenant-{inst['tenant']}", f"cis.io/instance={inst['id']}")
    return pods[0] if pods else None


def test_create_runs_a_hardened_kata_pod_and_delete_removes_it(stack: Stack, cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    created = c.create(small())
    assert created["status"]["phase"] in ("Queued", "Scheduled")
    inst = c.wait_phase(created["id"], "Running", 60)
    assert inst["status"]["podIP"]
    pod = pod_of(stack, inst)
    assert pod is not None
    spec = pod["spec"]
    assert spec["runtimeClassName"] == "kata"
    assert spec["automountServiceAccountToken"] is False
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for ctr in spec["containers"]:
        assert ctr["resources"]["requests"] == ctr["resources"]["limits"]
        assert ctr["securityContext"]["allowPrivilegeEscalation"] is False
        assert not ctr["securityContext"].get("privileged")
    assert spec.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert pod["status"]["qosClass"] == "Guaranteed"
    # Writes name CIS as their field manager (not the client library's default).
    ns = f"tenant-{inst['tenant']}"
    cr_path = f"/apis/cis.io/v1/namespaces/{ns}/containerinstances/{inst['id']}"
    record = json.loads(stack.user.kubectl("get", "--raw", cr_path))
    backing = stack.clusters[inst["status"]["cluster"]]
    raw_pod = json.loads(backing.kubectl("get", "--raw", f"/api/v1/namespaces/{ns}/pods/{inst['id']}"))
    assert {m["manager"] for m in record["metadata"]["managedFields"]} == {"cis"}
    assert "cis" in {m["manager"] for m in raw_pod["metadata"]["managedFields"]}

    assert c.call("DELETE", f"/v1/instances/{inst['id']}")[0] == 202
    wait_for("instance gone", lambda: c.call("GET", f"/v1/instances/{inst['id']}")[0] == 404, 60)
    assert pod_of(stack, inst) is None


def test_never_restart_instance_completes_is_released_and_keeps_its_record(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    c = Client(cis, tenant_key)
    spec = small(restartPolicy="Never")
    spec["containers"][0]["env"] = [{"name": "KWOK_COMPLETE_AFTER", "value": "2s"}]
    inst = c.create(spec)
    done = c.wait_phase(inst["id"], "Succeeded", 60)
    ctr = done["status"]["containers"][0]
    assert ctr["state"] == "Terminated" and ctr["exitCode"] == 0
    wait_for("pod released", lambda: pod_of(stack, done) is None, 30)
    assert c.phase(inst["id"]) == "Succeeded"  # the record stays
    kinds = [e["event"]["kind"] for e in _events_on_disk(stack, inst["id"])]
    assert kinds[0] == "instance.created"
    assert "instance.started" in kinds and kinds[-1] == "instance.stopped"


def _events_on_disk(stack: Stack, instance_id: str) -> list[dict[str, Any]]:
    events = []
    for f in sorted(stack.events_dir.glob("lifecycle-*.ndjson")):
        for line in f.read_text().splitlines():
            e = json.loads(line)
            if e["instance"]["id"] == instance_id:
                events.append(e)
    return sorted(events, key=lambda e: e["event"]["seq"])


def test_region_pinned_instance_lands_only_there(stack: Stack, cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    ids = [c.create(small(region="region-b"))["id"] for _ in range(4)]
    for iid in ids:
        inst = c.wait_phase(iid, "Running", 60)
        assert inst["status"]["region"] == "region-b"
        assert inst["status"]["cluster"] == "region-b"
    for iid in ids:
        c.call("DELETE", f"/v1/instances/{iid}")


def test_batch_of_500_runs_spread_over_both_clusters_without_doubles(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    c = Client(cis, tenant_key)
    created = c.ok("POST", "/v1/instances/batch", {"template": small(labels={"batch": "b500"}), "count": 500}, 201)
    ids = {i["id"] for i in created["items"]}
    assert len(ids) == 500

    def running() -> bool:
        items = c.list_all("labels=batch%3Db500")
        return sum(1 for i in items if i["status"].get("phase") == "Running") == 500

    wait_for("500 Running", running, 240, every=2)
    per_cluster: collections.Counter[str] = collections.Counter()
    seen: collections.Counter[str] = collections.Counter()
    for cluster in stack.backing:
        for pod in cluster_pods(cluster, "tenant-acme"):
            if pod["metadata"]["name"] not in ids:
                continue
            per_cluster[cluster.spec.name] += 1
            seen[pod["metadata"]["name"]] += 1
    assert set(seen) == ids, "every instance has a pod"
    assert max(seen.values()) == 1, "no instance has two pods"
    assert min(per_cluster[c.spec.name] for c in stack.backing) >= 100, per_cluster
    for iid in ids:
        c.call("DELETE", f"/v1/instances/{iid}")
    wait_for("batch deleted", lambda: not c.list_all("labels=batch%3Db500"), 240, every=2)


def test_cluster_without_room_keeps_instances_queued_until_room_appears(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    cluster = stack.clusters["region-b"]
    nodes = [f"region-b-node-{i}" for i in range(stack.settings.kwok_nodes)]
    for node in nodes:
        cluster.kubectl("cordon", node)
    c = Client(cis, tenant_key)
    try:
        inst = c.create(small(region="region-b"))
        queued = wait_for("a reason for waiting", lambda: (i := c.get(inst["id"]))["status"].get("reason") and i, 30)
        assert queued["status"]["phase"] == "Queued"
        # Cordoned nodes offer no room at all: "TooLarge" until they return.
        assert queued["status"]["reason"] in ("NoCapacity", "NoHealthyCluster", "TooLarge")
    finally:
        for node in nodes:
            cluster.kubectl("uncordon", node)
    c.wait_phase(inst["id"], "Running", 60)
    c.call("DELETE", f"/v1/instances/{inst['id']}")


def test_tenants_cannot_see_each_other(cis: CisProcess, tenant_key: str, other_tenant_key: str) -> None:
    acme, globex = Client(cis, tenant_key), Client(cis, other_tenant_key)
    inst = acme.create(small())
    status, body = globex.call("GET", f"/v1/instances/{inst['id']}")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert globex.call("DELETE", f"/v1/instances/{inst['id']}")[0] == 404
    assert inst["id"] not in {i["id"] for i in globex.list_all()}
    assert acme.get(inst["id"])["id"] == inst["id"]
    acme.call("DELETE", f"/v1/instances/{inst['id']}")


def test_security_groups_are_network_policies_collected_with_the_pod(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    c = Client(cis, tenant_key)
    plain = c.wait_phase(c.create(small())["id"], "Running", 60)
    guarded = c.wait_phase(c.create(small(
        ingress=[{"cidr": "203.0.113.0/24", "ports": [443]}],
        egress=[{"cidr": "198.51.100.0/24", "protocol": "UDP"}],
    ))["id"], "Running", 60)

    def policies(inst: dict[str, Any]) -> dict[str, dict[str, Any]]:
        cluster = stack.clusters[inst["status"]["cluster"]]
        items = json.loads(cluster.kubectl("get", "networkpolicies", "-n", f"tenant-{inst['tenant']}", "-o", "json"))
        return {p["metadata"]["name"]: p for p in items["items"]}

    plain_pod = pod_of(stack, plain)
    assert plain_pod is not None and plain_pod["metadata"]["labels"]["cis.io/egress"] == "default"
    around_plain = policies(plain)
    assert {"cis-tenant-isolation", "cis-default-egress"} <= set(around_plain)
    assert plain["id"] not in around_plain  # default rules cost no policy of its own

    guarded_pod = pod_of(stack, guarded)
    assert guarded_pod is not None and "cis.io/egress" not in guarded_pod["metadata"]["labels"]
    own = policies(guarded)[guarded["id"]]
    assert own["spec"]["ingress"] == [{"from": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
                                       "ports": [{"protocol": "TCP", "port": 443}]}]
    assert own["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "198.51.100.0/24"}}],
                                      "ports": [{"protocol": "UDP"}]}]
    assert own["metadata"]["ownerReferences"][0]["uid"] == guarded_pod["metadata"]["uid"]

    c.ok("DELETE", f"/v1/instances/{guarded['id']}")
    wait_for("instance gone", lambda: c.call("GET", f"/v1/instances/{guarded['id']}")[0] == 404, 60)
    wait_for("its policy collected with its pod", lambda: guarded["id"] not in policies(guarded), 60)
