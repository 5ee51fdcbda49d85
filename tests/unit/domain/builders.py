"""Shared builders for domain tests: specs, instances, pods as the API returns them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from cis.domain.ids import ClusterName, InstanceId, RegionName, TenantName
from cis.domain.model import Instance, InstanceStatus, new_instance
from cis.domain.spec import parse_spec
from cis.domain.status import scheduled_status

T0 = datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC)
INSTANCE_ID = InstanceId("ci-aaaaaaaaaaaaaaaaaaaa")
TENANT = TenantName("acme")


def at(seconds: float) -> datetime:
    """T0 + seconds (millisecond-exact, so timestamps survive a JSON round trip)."""
    return T0 + timedelta(seconds=seconds)


def ts(seconds: float) -> str:
    """Kubernetes-style timestamp (second precision, Z) of T0 + seconds."""
    return at(seconds).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def container(name: str = "web", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "nginx:1.27", **extra}


def raw_spec(**extra: Any) -> dict[str, Any]:
    return {"containers": [container()], **extra}


def make_instance(
    raw: dict[str, Any] | None = None,
    *,
    status: InstanceStatus | None = None,
    uid: str = "uid-1",
) -> Instance:
    spec = parse_spec(raw if raw is not None else raw_spec())
    inst = new_instance(INSTANCE_ID, TENANT, spec, T0)
    inst = replace(inst, uid=uid)
    return inst.with_status(status) if status is not None else inst


def scheduled(previous: InstanceStatus | None = None, seconds: float = 1) -> InstanceStatus:
    return scheduled_status(
        previous or InstanceStatus(queued_at=T0),
        cluster=ClusterName("c1"),
        region=RegionName("eu-west"),
        zone=None,
        now=at(seconds),
    )


def pod(
    phase: str,
    *,
    container_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    reason: str | None = None,
    message: str | None = None,
    pod_ip: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "startTime": ts(1), "qosClass": "Guaranteed"}
    if container_statuses is not None:
        status["containerStatuses"] = container_statuses
    if conditions is not None:
        status["conditions"] = conditions
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
        status["hostIP"] = "10.0.0.5"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": INSTANCE_ID, "namespace": "tenant-acme", "uid": "pod-uid"},
        "spec": {},
        "status": status,
    }


def cs(
    state: dict[str, Any],
    *,
    name: str = "web",
    restarts: int = 0,
    ready: bool = False,
    last: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A containerStatuses entry."""
    out: dict[str, Any] = {
        "name": name,
        "state": state,
        "lastState": {"terminated": last} if last else {},
        "ready": ready,
        "restartCount": restarts,
        "image": "registry.example/library/nginx:1.27",
        "imageID": "",
        "started": "running" in state,
    }
    return out
