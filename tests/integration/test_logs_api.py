"""The log query API of CIS over the real pipeline: CRI files on a "node" -> the stack's
Filebeat -> Elasticsearch -> GET /v1/instances/{id}/logs."""

from __future__ import annotations

import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cis.devstack.platform import CisProcess, cluster_pods
from cis.devstack.stack import Stack
from tests.integration.helpers import Client, small, wait_for

pytestmark = pytest.mark.usefixtures("clean_tenant")


def cri(t: datetime, message: str, stream: str = "stdout") -> str:
    return f"{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}000Z {stream} F {message}\n"


def write_pod_log(stack: Stack, inst: dict, lines: list[str], container: str = "app") -> Path:
    cluster = stack.clusters[inst["status"]["cluster"]]
    pod = cluster_pods(cluster, f"tenant-{inst['tenant']}", f"cis.io/instance={inst['id']}")[0]
    d = stack.pod_logs_dir / f"tenant-{inst['tenant']}_{inst['id']}_{pod['metadata']['uid']}" / container
    d.mkdir(parents=True, exist_ok=True)
    path = d / "0.log"
    with path.open("a") as f:
        f.write("".join(lines))
    return path


def logs(cis: CisProcess, key: str, iid: str, query: str = "") -> tuple[int, str]:
    req = urllib.request.Request(f"{cis.url}/v1/instances/{iid}/logs?{query}",
                                 headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read().decode()


def test_logs_are_queried_tenant_scoped_and_outlive_the_instance(
        stack: Stack, cis: CisProcess, tenant_key: str, other_tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    inst = c.wait_phase(c.create(small())["id"], "Running", 60)
    t0 = datetime.now(UTC) - timedelta(seconds=30)
    write_pod_log(stack, inst, [cri(t0 + timedelta(seconds=i), f"line {i}") for i in range(10)])
    iid = inst["id"]
    wait_for("10 lines shipped", lambda: logs(cis, tenant_key, iid)[1].count("\n") == 10, 90, every=1)
    assert logs(cis, tenant_key, iid)[1].splitlines() == [f"line {i}" for i in range(10)]
    assert logs(cis, tenant_key, iid, "tailLines=3")[1].splitlines() == ["line 7", "line 8", "line 9"]
    assert logs(cis, tenant_key, iid, "limitBytes=14")[1] == "line 0\nline 1\n"
    stamped = logs(cis, tenant_key, iid, "tailLines=1&timestamps=true")[1]
    # RFC 3339 with the CRI nanoseconds (trailing zeros trimmed, as kubectl prints them).
    assert stamped.startswith((t0 + timedelta(seconds=9)).strftime("%Y-%m-%dT%H:%M:%S."))
    assert stamped.endswith("Z line 9\n")
    assert logs(cis, other_tenant_key, iid)[0] == 404
    assert logs(cis, tenant_key, iid, "tailLines=-1")[0] == 400

    c.call("DELETE", f"/v1/instances/{iid}")
    wait_for("instance gone", lambda: c.call("GET", f"/v1/instances/{iid}")[0] == 404, 60)
    status, text = logs(cis, tenant_key, iid, "tailLines=2")
    assert (status, text.splitlines()) == (200, ["line 8", "line 9"])
    assert logs(cis, other_tenant_key, iid)[0] == 404


def test_follow_streams_lines_appended_after_the_request(
        stack: Stack, cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    inst = c.wait_phase(c.create(small())["id"], "Running", 60)
    now = datetime.now(UTC)
    write_pod_log(stack, inst, [cri(now, "before")])
    wait_for("first line", lambda: "before" in logs(cis, tenant_key, inst["id"])[1], 90, every=1)
    received: list[str] = []

    def reader() -> None:
        req = urllib.request.Request(f"{cis.url}/v1/instances/{inst['id']}/logs?follow=true",
                                     headers={"Authorization": f"Bearer {tenant_key}"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            for raw in resp:
                received.append(raw.decode().rstrip("\n"))
                if received[-1] == "after-2":
                    return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    wait_for("the stream to start", lambda: received == ["before"], 30)
    write_pod_log(stack, inst, [cri(datetime.now(UTC), "after-1"), cri(datetime.now(UTC), "after-2")])
    t.join(90)
    assert received == ["before", "after-1", "after-2"]
