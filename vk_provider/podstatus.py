"""Pod status from a CIS instance (pure), and the patch that writes it.

A status is computed from (pod, instance, host IP, now) and compared with the pod's: only
a difference is written, as a JSON merge patch of the status subresource carrying the
pod's uid as a precondition (what the kubelet does), so it never overwrites a newer pod of
the same name and never needs a resourceVersion retry loop. Conditions of types we do not
own survive; ours keep their transition time until their status flips.

Instance phases map as: Queued/Scheduled -> Pending, Running -> Running, Succeeded and
Failed as is; Deleting keeps the pod's phase (the pod is on its way out).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from vk_provider.cis_client import Instance

JSON = dict[str, Any]
TERMINAL = ("Succeeded", "Failed")
MANAGED = ("phase", "conditions", "containerStatuses", "podIP", "podIPs", "hostIP", "hostIPs",
           "startTime", "reason", "message")
OUR_CONDITIONS = ("PodScheduled", "Initialized", "ContainersReady", "Ready")
CONTAINER_ID_SCHEME = "cis://"


def format_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_terminal(pod: JSON) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL


def started_by_provider(pod: JSON) -> bool:
    """Whether CIS ever ran this pod's containers (we wrote a CIS container id)."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(str(s.get("containerID", "")).startswith(CONTAINER_ID_SCHEME) for s in statuses)


def pod_phase(instance_phase: str, current: str | None) -> str:
    return {"Queued": "Pending", "Scheduled": "Pending", "Running": "Running",
            "Succeeded": "Succeeded", "Failed": "Failed"}.get(instance_phase, current or "Pending")


def _state(raw: JSON, container_id: str, default_waiting: str) -> JSON:
    state = raw.get("state") or "Waiting"
    if state == "Running":
        running = {"startedAt": raw["startedAt"]} if raw.get("startedAt") else {}
        return {"running": running}
    if state == "Terminated":
        term: JSON = {"exitCode": int(raw.get("exitCode") or 0), "containerID": container_id}
        for key in ("reason", "message", "startedAt", "finishedAt"):
            if raw.get(key):
                term[key] = raw[key]
        return {"terminated": term}
    waiting: JSON = {"reason": raw.get("reason") or default_waiting}
    if raw.get("message"):
        waiting["message"] = raw["message"]
    return {"waiting": waiting}


def container_statuses(pod: JSON, inst: Instance) -> list[JSON]:
    by_name = {c.get("name"): c for c in inst.status.get("containers") or []}
    # A queued instance says why (e.g. NoCapacity): show it where `kubectl get pods` looks.
    queued = inst.phase == "Queued"
    default_reason = str(inst.status.get("reason") or "ContainerCreating") if queued else "ContainerCreating"
    default_message = inst.status.get("message") if queued else None
    out = []
    for c in pod.get("spec", {}).get("containers") or []:
        name = c["name"]
        raw = by_name.get(name) or {}
        if default_message and not raw.get("message"):
            raw = {**raw, "message": default_message}
        cid = f"{CONTAINER_ID_SCHEME}{inst.id}/{name}"
        state = _state(raw, cid, default_reason)
        status: JSON = {
            "name": name, "image": c.get("image", ""), "imageID": "", "state": state,
            "ready": raw.get("ready") is True and "running" in state,
            "restartCount": int(raw.get("restartCount") or 0), "started": "running" in state,
        }
        if "waiting" not in state or status["restartCount"]:
            status["containerID"] = cid
        last = raw.get("lastState") or {}
        if last:
            lt: JSON = {"exitCode": int(last.get("exitCode") or 0)}
            for key in ("reason", "finishedAt"):
                if last.get(key):
                    lt[key] = last[key]
            status["lastState"] = {"terminated": lt}
        out.append(status)
    return out


def waiting_containers(pod: JSON, reason: str, message: str) -> list[JSON]:
    return [{"name": c["name"], "image": c.get("image", ""), "imageID": "", "ready": False, "restartCount": 0,
             "started": False, "state": {"waiting": {"reason": reason, "message": message[:1000]}}}
            for c in pod.get("spec", {}).get("containers") or []]


def conditions(pod: JSON, phase: str, initialized: bool, statuses: list[JSON], now: datetime) -> list[JSON]:
    old = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    unready = [s["name"] for s in statuses if not s.get("ready")]
    ready = phase == "Running" and bool(statuses) and not unready
    if phase in TERMINAL:
        not_ready: tuple[str | None, str | None] = ("PodCompleted", None)
    else:
        not_ready = ("ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]")
    wanted = {
        "PodScheduled": (True, None, None),
        "Initialized": (initialized, None if initialized else "InstanceQueued",
                        None if initialized else "waiting for CIS capacity"),
        "ContainersReady": (ready, *((None, None) if ready else not_ready)),
        "Ready": (ready, *((None, None) if ready else not_ready)),
    }
    out = [c for t, c in old.items() if t not in wanted]
    for type_, (ok, reason, message) in wanted.items():
        status = "True" if ok else "False"
        prev = old.get(type_) or {}
        cond: JSON = {"type": type_, "status": status,
                      "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status
                      and prev.get("lastTransitionTime") else format_time(now)}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        out.append(cond)
    return out


def _base(pod: JSON, host_ip: str, now: datetime) -> JSON:
    current = pod.get("status") or {}
    return {"hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
            "startTime": current.get("startTime") or format_time(now), "reason": None, "message": None}


def status_from_instance(pod: JSON, inst: Instance, host_ip: str, now: datetime) -> JSON:
    current = pod.get("status") or {}
    phase = pod_phase(inst.phase, current.get("phase"))
    statuses = container_statuses(pod, inst)
    out = _base(pod, host_ip, now)
    out.update(phase=phase, containerStatuses=statuses,
               conditions=conditions(pod, phase, inst.phase != "Queued", statuses, now))
    pod_ip = inst.status.get("podIP")
    if pod_ip:
        out.update(podIP=pod_ip, podIPs=[{"ip": pod_ip}])
    if phase == "Failed":
        out.update(reason=inst.status.get("reason") or inst.status.get("stopReason"),
                   message=inst.status.get("message"))
    return out


def pending_status(pod: JSON, reason: str, message: str, host_ip: str, now: datetime) -> JSON:
    """Not (yet) in CIS: a missing Secret, CIS unavailable, or the create in flight."""
    statuses = waiting_containers(pod, reason, message)
    out = _base(pod, host_ip, now)
    out.update(phase="Pending", containerStatuses=statuses,
               conditions=conditions(pod, "Pending", True, statuses, now))
    return out


def failed_status(pod: JSON, reason: str, message: str, host_ip: str, now: datetime,
                  exit_code: int | None = None) -> JSON:
    """Rejected (an unsupported feature, a spec CIS refuses) or lost (the instance vanished:
    running containers end with `exit_code`, as a killed process would)."""
    statuses = []
    for s in (pod.get("status") or {}).get("containerStatuses") or []:
        if exit_code is not None and "terminated" not in (s.get("state") or {}):
            s = {**s, "ready": False, "started": False,
                 "state": {"terminated": {"exitCode": exit_code, "reason": reason, "finishedAt": format_time(now)}}}
        statuses.append(s)
    out = _base(pod, host_ip, now)
    out.update(phase="Failed", containerStatuses=statuses, reason=reason, message=message[:1000],
               conditions=conditions(pod, "Failed", True, statuses, now))
    return out


def normalized(value: Any) -> Any:
    """For comparison only: the apiserver writes `lastState: {}`, `imageID: ""`, null
    probe times; empty and null members mean the same as absent ones."""
    if isinstance(value, dict):
        out = {k: normalized(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (None, "", {}, [])}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def status_patch(pod: JSON, status: JSON) -> JSON | None:
    """A merge patch of the status subresource for the fields that differ, or None."""
    current = pod.get("status") or {}
    changed = {k: v for k, v in status.items()
               if k in MANAGED and normalized(current.get(k)) != normalized(v)}
    if not changed:
        return None
    return {"metadata": {"uid": pod["metadata"]["uid"]}, "status": changed}
