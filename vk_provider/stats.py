"""`/stats/summary` (kubelet stats/v1alpha1 Summary) and `/runningpods/` bodies (pure).

CIS meters instances by their size, not by measured usage, so the summary lists every pod
and container with its start time and no cpu/memory usage figures: absent figures make
metrics-server skip a pod, which is honest; made-up ones would drive an HPA wrongly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vk_provider.cis_client import Instance

JSON = dict[str, Any]


def _time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def stats_summary(node: str, started: datetime, pods: list[JSON]) -> JSON:
    out = []
    for pod in pods:
        meta, status = pod.get("metadata", {}), pod.get("status") or {}
        running = {s.get("name"): ((s.get("state") or {}).get("running") or {}).get("startedAt")
                   for s in status.get("containerStatuses") or []}
        out.append({
            "podRef": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "startTime": status.get("startTime") or meta.get("creationTimestamp"),
            "containers": [{"name": c.get("name"), "startTime": running.get(c.get("name")) or status.get("startTime")}
                           for c in pod.get("spec", {}).get("containers") or []],
        })
    return {"node": {"nodeName": node, "startTime": _time(started), "systemContainers": []}, "pods": out}


def pod_list(pods: list[JSON]) -> JSON:
    return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}


def running_pods(pods: list[JSON], instance_for: Any) -> JSON:
    """The pods CIS is running, as the kubelet's runtime view: metadata and containers only."""
    items = []
    for pod in pods:
        meta = pod.get("metadata", {})
        inst: Instance | None = instance_for(meta.get("uid", ""))
        if inst is None or inst.phase != "Running":
            continue
        items.append({
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "spec": {"containers": [{"name": c.get("name"), "image": c.get("image")}
                                    for c in pod.get("spec", {}).get("containers") or []]},
            "status": {},
        })
    return pod_list(items)
