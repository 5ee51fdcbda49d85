"""Restarts and outages: the controller is killed mid-batch, loses its lease, a backing
apiserver stops.

Runs after the other instance tests (file order) because it stops and restarts shared
processes; it restores them before it ends.
"""

from __future__ import annotations

import collections
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cis.devstack.platform import CisProcess, cluster_pods
from cis.devstack.probes import answers_ok
from cis.devstack.stack import Stack
from tests.integration.helpers import Client, small, wait_for

pytestmark = pytest.mark.usefixtures("clean_tenant")


def lifecycle_events(stack: Stack) -> list[dict[str, Any]]:
    out = []
    for f in stack.events_dir.glob("lifecycle-*.ndjson"):
        out += [json.loads(line) for line in f.read_text().splitlines()]
    return out


def test_killing_the_controller_mid_batch_leaves_one_pod_per_instance(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    c = Client(cis, tenant_key)
    created = c.ok("POST", "/v1/instances/batch", {"template": small(labels={"batch": "kill"}), "count": 200}, 201)
    ids = {i["id"] for i in created["items"]}
    cis.process.stop(grace=0)  # SIGTERM then SIGKILL at once: no clean shutdown
    cis.process.start()
    cis.process.wait_ready(lambda: answers_ok(f"{cis.url}/readyz"), 90, "ready again")

    def all_running() -> bool:
        items = c.list_all("labels=batch%3Dkill")
        return sum(1 for i in items if i["status"].get("phase") == "Running") == 200

    wait_for("200 Running after the restart", all_running, 180, every=2)
    pods: collections.Counter[str] = collections.Counter()
    for cluster in stack.backing:
        for pod in cluster_pods(cluster, "tenant-acme"):
            if pod["metadata"]["name"] not in ids:
                continue
            pods[pod["metadata"]["name"]] += 1
    assert set(pods) == ids and max(pods.values()) == 1
    # Every instance got exactly one `instance.started` event id (lines may repeat; ids do not differ).
    started = collections.defaultdict(set)
    for e in lifecycle_events(stack):
        if e["event"]["kind"] == "instance.started" and e["instance"]["id"] in ids:
            started[e["instance"]["id"]].add(e["event"]["id"])
    assert set(started) == ids and all(len(v) == 1 for v in started.values())
    for iid in ids:
        c.call("DELETE", f"/v1/instances/{iid}")
    wait_for("batch deleted", lambda: not c.list_all("labels=batch%3Dkill"), 180, every=2)


def lease_spec(stack: Stack) -> dict[str, Any]:
    lease: dict[str, Any] = json.loads(stack.user.kubectl("get", "lease", "cis-controller", "-n", "cis-system",
                                                          "-o", "json"))
    return dict(lease["spec"])


def test_a_leader_that_loses_its_lease_stands_by_and_leads_again(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    """Another holder takes the Lease: CIS stops reconciling within the renew deadline but
    keeps serving its API; once that holder's lease runs out, CIS leads again and catches up."""
    c = Client(cis, tenant_key)
    ours = lease_spec(stack)["holderIdentity"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    stack.user.kubectl("patch", "lease", "cis-controller", "-n", "cis-system", "--type=merge", "-p", json.dumps(
        {"spec": {"holderIdentity": "intruder", "renewTime": now, "acquireTime": now, "leaseDurationSeconds": 30}}))
    taken = datetime.now(UTC)
    # The leader notices at its next renewal and stands down within its 10 s renew deadline.
    wait_for("the controller standing by", lambda: "controller standing by" in cis.process.log_file.read_text(),
             15, every=0.5)
    created = c.ok("POST", "/v1/instances", small(labels={"lease": "lost"}), 201)  # the API still serves
    assert (datetime.now(UTC) - taken).total_seconds() < 25, "too slow to check that nobody reconciles"
    wait_for("20 s after the takeover", lambda: (datetime.now(UTC) - taken).total_seconds() > 20, 30, every=0.5)
    inst = c.ok("GET", f"/v1/instances/{created['id']}")
    assert inst["status"].get("phase") in (None, "Queued") and lease_spec(stack)["holderIdentity"] == "intruder"
    assert not any(p["metadata"]["name"] == created["id"]
                   for cluster in stack.backing for p in cluster_pods(cluster, "tenant-acme"))
    assert cis.process.popen is not None and cis.process.popen.poll() is None
    # The intruder never renews: its lease runs out 30 s after it took it, and CIS takes it back.
    wait_for("Running once CIS leads again",
             lambda: c.ok("GET", f"/v1/instances/{created['id']}")["status"].get("phase") == "Running", 90, every=1)
    assert lease_spec(stack)["holderIdentity"] == ours
    assert (datetime.now(UTC) - taken).total_seconds() >= 30
    c.call("DELETE", f"/v1/instances/{created['id']}")
    wait_for("instance deleted", lambda: c.call("GET", f"/v1/instances/{created['id']}")[0] == 404, 60, every=1)


def test_losing_a_backing_cluster_replaces_instances_and_reports_lost_ones(
    stack: Stack, cis: CisProcess, tenant_key: str
) -> None:
    c = Client(cis, tenant_key)
    movable = c.create(small(region="region-a"))["id"]  # restartPolicy Always: may move
    once_spec = small()
    once_spec["restartPolicy"] = "Never"
    once_spec["region"] = "region-a"
    once = c.create(once_spec)["id"]
    for iid in (movable, once):
        c.wait_phase(iid, "Running", 60)
    lost = stack.clusters["region-a"]
    lost.apiserver.stop()
    try:
        fresh = c.create(small())["id"]
        assert c.wait_phase(fresh, "Running", 90)["status"]["cluster"] == "region-b"
        failed = c.wait_phase(once, "Failed", 90)
        assert failed["status"]["reason"] == "Lost"
        # A region-pinned Always instance waits for its region; unpin to see it move.
        unpinned = c.create(small())["id"]
        c.wait_phase(unpinned, "Running", 60)
    finally:
        back_at = datetime.now(UTC)
        lost.apiserver.start()
        lost.wait_apiserver()
        # Shared cluster: leave it as the later tests expect, its nodes heartbeating and
        # untainted and its controllers watching again.
        lost.wait_recovered(since=back_at)
    moved = c.wait_phase(movable, "Running", 120)
    assert moved["status"]["cluster"] == "region-a"
    assert moved["status"]["attempt"] >= 2
    # Its pod kept running on the returning cluster and was taken over; the new attempt is
    # billed from then on, never again for the time the lost attempt was billed.
    started = datetime.fromisoformat(moved["status"]["startedAt"].replace("Z", "+00:00"))
    assert started >= back_at - timedelta(seconds=1)
    kinds = [e["event"]["kind"] for e in lifecycle_events(stack) if e["instance"]["id"] == once]
    assert "instance.stopped" in kinds
    for iid in (movable, once, fresh, unpinned):
        c.call("DELETE", f"/v1/instances/{iid}")
