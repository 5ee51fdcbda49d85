"""Per-second billing end to end: CIS runs instances on the KWOK clusters, its lifecycle
events go through the real Filebeat into Elasticsearch, `cis billing run` meters them,
and the usage API answers within a second of the running time Kubernetes reported."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch

from cis.devstack.platform import CisProcess
from cis.devstack.stack import Stack
from tests.integration.helpers import Client, small, wait_for

pytestmark = pytest.mark.usefixtures("clean_tenant")


def parse(ts: str) -> datetime:
    return datetime.strptime(ts.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def bill(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    subprocess.run([sys.executable, "-m", "cis.cli", "billing", "run", "--es", stack.es_url,
                    "--from", f"{today}T00:00:00Z", "--to", f"{today + timedelta(days=1)}T00:00:00Z"],
                   check=True, capture_output=True, timeout=120)


def usage(cis: CisProcess, key: str) -> dict[str, dict]:
    period = datetime.now(UTC).strftime("%Y-%m-%d")
    body = Client(cis, key).ok("GET", f"/v1/billing/usage?period={period}")
    return {row["instanceId"]: row for row in body["instances"]}


def event_docs(stack: Stack, ids: set[str]) -> int:
    es = Elasticsearch(stack.es_url)
    try:
        es.indices.refresh(index="cis-events-*", ignore_unavailable=True, allow_no_indices=True)
        return int(es.count(index="cis-events-*", query={"terms": {"instance.id": sorted(ids)}})["count"])
    finally:
        es.close()


def test_completed_instances_are_billed_to_the_second(stack: Stack, cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    ids = {}
    for delay in (4, 7):
        spec = small(restartPolicy="Never")
        spec["containers"][0]["env"] = [{"name": "KWOK_COMPLETE_AFTER", "value": f"{delay}s"}]
        ids[c.create(spec)["id"]] = delay
    ran: dict[str, float] = {}
    for iid in ids:
        done = c.wait_phase(iid, "Succeeded", 90)["status"]
        ctr = done["containers"][0]
        # What Kubernetes reports: the container ran from startedAt to finishedAt.
        ran[iid] = (parse(ctr["finishedAt"]) - parse(ctr["startedAt"])).total_seconds()
    # Every lifecycle event (created, scheduled, started, running?, stopped) is in ES.
    wait_for("events shipped", lambda: event_docs(stack, set(ids)) >= 4 * len(ids), 90, every=1)
    time.sleep(2)  # one more Filebeat flush for stragglers

    bill(stack)
    first = usage(cis, tenant_key)
    for iid, seconds in ran.items():
        billed = first[iid]["seconds"]
        assert abs(billed - seconds) <= 1, (iid, billed, seconds)
        assert billed >= ids[iid] - 1
        assert first[iid]["flags"] == []
        assert float(first[iid]["amount"]) > 0

    bill(stack)  # re-running the same period changes nothing
    assert usage(cis, tenant_key) == first

    # Filebeat killed and restarted mid-period (its registry kept): nothing doubles.
    assert stack.filebeat is not None
    stack.filebeat.stop(grace=0)
    stack.filebeat.start()
    time.sleep(5)
    bill(stack)
    assert usage(cis, tenant_key) == first

    # CronJob mode: the recent closed windows, once. Records now cover up to the window's
    # end rather than midnight, but every second and amount stands.
    subprocess.run([sys.executable, "-m", "cis.cli", "billing", "run", "--es", stack.es_url, "--recent",
                    "--interval", "1s", "--lateness", "0s"], check=True, capture_output=True, timeout=120)

    def billed(rows: dict[str, dict]) -> dict[str, tuple[int, str]]:
        return {iid: (row["seconds"], row["amount"]) for iid, row in rows.items() if iid in ids}

    assert billed(usage(cis, tenant_key)) == billed(first)


def test_price_quote_uses_the_rounded_size(cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    exact = c.ok("POST", "/v1/price", {"region": "region-a", "cpu": 0.5, "memoryGiB": 1, "seconds": 3600})
    rounded = c.ok("POST", "/v1/price", {"region": "region-a", "cpu": 0.3, "memoryGiB": 0.9, "seconds": 3600})
    assert rounded["size"] == exact["size"] == {"cpu": "0.5", "memoryGiB": "1"}
    assert {k: v for k, v in rounded.items() if k != "at"} == {k: v for k, v in exact.items() if k != "at"}
    spec = c.ok("POST", "/v1/price", {"region": "region-a", "seconds": 3600, "spec": small()})
    assert spec["size"] == {"cpu": "0.25", "memoryGiB": "0.5"}
    status, body = c.call("POST", "/v1/price", {"region": "region-a", "cpu": -1, "memoryGiB": 1})
    assert status == 400 and body["error"]["field"] == "cpu"
    status, body = c.call("POST", "/v1/price", {"region": "mars", "cpu": 1, "memoryGiB": 2})
    assert status in (400, 404)


def test_reports_in_three_formats(cis: CisProcess, tenant_key: str) -> None:
    import urllib.request

    period = datetime.now(UTC).strftime("%Y-%m")
    for accept, marker in (("application/json", b'"currency"'), ("text/csv", b"instance"), ("text/html", b"<svg")):
        req = urllib.request.Request(f"{cis.url}/v1/billing/reports/{period}",
                                     headers={"Authorization": f"Bearer {tenant_key}", "Accept": accept})
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.headers["Content-Type"].startswith(accept)
            body = resp.read()
            assert marker in body, (accept, body[:200])
    status, body = Client(cis, tenant_key).call("GET", "/v1/billing/reports/2026-13")
    assert status == 400 and body["error"]["field"] == "period"
