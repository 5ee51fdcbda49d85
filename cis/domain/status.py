"""From a backing-cluster pod to an instance status, and the decisions that follow.

The controller's pod watch hands each pod (the API's camelCase JSON, as a dict) to
``status_from_pod`` with the instance's previous status; the result is written to the CR
when ``status_changed`` says so, fed to ``events.plan_events``, and checked with
``should_release`` (ended: delete the pod, keep the record) and ``should_replace`` (move it
to another cluster). The ``*_status`` helpers build the statuses the controller itself
decides (scheduled, requeued, lost, deleted).

Phase mapping (pod -> instance):

    Pending (incl. unschedulable)  -> Scheduled  (reason Unschedulable / ErrImagePull / ...)
    Running                        -> Running
    Succeeded                      -> Succeeded  stopReason Completed
    Failed                         -> Failed     stopReason Evicted if the pod was evicted,
                                                 else Failed
    Unknown / missing              -> previous phase (reason PodUnknown)
    any, while the CR is deleting  -> Deleting

Per attempt, ``started_at`` (first container running) and ``stopped_at`` are set once and
never move afterwards: billing and ``instance.started``/``instance.stopped`` rely on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from cis.domain.ids import ClusterName, RegionName, ZoneName
from cis.domain.model import (
    ANNOTATION_ATTEMPT,
    ANNOTATION_UID,
    Condition,
    ContainerState,
    ContainerStatus,
    Instance,
    InstanceStatus,
    Phase,
    StopReason,
)
from cis.domain.spec import InstanceSpec, RestartPolicy
from cis.domain.timestamps import parse_optional

# Pod failure reasons that are the platform's fault, not the workload's.
INFRASTRUCTURE_FAILURES = frozenset(
    {
        "Evicted",
        "NodeLost",
        "NodeShutdown",
        "Preempting",
        "Terminated",
        "UnexpectedAdmissionError",
        "OutOfcpu",
        "OutOfmemory",
        "OutOfpods",
        "NodeAffinity",
    }
)
# Waiting reasons worth surfacing as the instance's reason (the user can act on them).
_NOTABLE_WAITING = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
    "RunContainerError",
)
UNSCHEDULABLE = "Unschedulable"


def _get(raw: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(raw, Mapping):
            return None
        raw = raw.get(key)
    return raw


def _opt_str(raw: Any) -> str | None:
    return raw if isinstance(raw, str) and raw else None


def _opt_int(raw: Any) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _container_status(name: str, raw: Mapping[str, Any] | None, scheduled: bool) -> ContainerStatus:
    if raw is None:
        return ContainerStatus(name=name, reason="ContainerCreating" if scheduled else "Pending")
    state = raw.get("state") or {}
    last = _get(raw, "lastState", "terminated") or {}
    common: dict[str, Any] = {
        "name": name,
        "restart_count": _opt_int(raw.get("restartCount")) or 0,
        "ready": raw.get("ready") is True,
        "last_exit_code": _opt_int(last.get("exitCode")),
        "last_reason": _opt_str(last.get("reason")),
        "last_finished_at": parse_optional(last.get("finishedAt")),
    }
    if isinstance(state.get("running"), Mapping):
        return ContainerStatus(
            state=ContainerState.RUNNING,
            started_at=parse_optional(state["running"].get("startedAt")),
            **common,
        )
    if isinstance(state.get("terminated"), Mapping):
        t = state["terminated"]
        return ContainerStatus(
            state=ContainerState.TERMINATED,
            reason=_opt_str(t.get("reason")),
            message=_opt_str(t.get("message")),
            exit_code=_opt_int(t.get("exitCode")),
            started_at=parse_optional(t.get("startedAt")),
            finished_at=parse_optional(t.get("finishedAt")),
            **common,
        )
    waiting: Mapping[str, Any] = state.get("waiting") or {}
    return ContainerStatus(
        state=ContainerState.WAITING,
        reason=_opt_str(waiting.get("reason")),
        message=_opt_str(waiting.get("message")),
        **common,
    )


def _conditions(raw_status: Mapping[str, Any]) -> tuple[Condition, ...]:
    result = []
    for c in raw_status.get("conditions") or []:
        if isinstance(c, Mapping) and isinstance(c.get("type"), str):
            result.append(
                Condition(
                    type=c["type"],
                    status=_opt_str(c.get("status")) or "Unknown",
                    reason=_opt_str(c.get("reason")),
                    message=_opt_str(c.get("message")),
                    last_transition_time=parse_optional(c.get("lastTransitionTime")),
                )
            )
    return tuple(result)


def _first_started(containers: tuple[ContainerStatus, ...]) -> datetime | None:
    times = [c.started_at for c in containers if c.started_at is not None]
    return min(times) if times else None


def _last_finished(containers: tuple[ContainerStatus, ...]) -> datetime | None:
    times = [c.finished_at for c in containers if c.finished_at is not None]
    return max(times) if times else None


def status_from_pod(
    pod: Mapping[str, Any], previous: InstanceStatus, *, spec: InstanceSpec, now: datetime
) -> InstanceStatus:
    """The instance status implied by ``pod`` (placement fields come from ``previous``).

    ``now`` stands in for timestamps the pod lacks (a stop without ``finishedAt``).
    """
    raw_status: Mapping[str, Any] = pod.get("status") or {}
    conditions = _conditions(raw_status)
    scheduled_cond = next((c for c in conditions if c.type == "PodScheduled"), None)
    by_name = {c.get("name"): c for c in raw_status.get("containerStatuses") or [] if isinstance(c, Mapping)}
    containers = tuple(
        _container_status(
            c.name,
            by_name.get(c.name),
            scheduled_cond is not None and scheduled_cond.status == "True",
        )
        for c in spec.containers
    )
    pod_phase = raw_status.get("phase")
    pod_reason, pod_message = (
        _opt_str(raw_status.get("reason")),
        _opt_str(raw_status.get("message")),
    )
    reason: str | None = None
    message: str | None = None
    stop_reason: StopReason | None = None
    if pod_phase == "Running":
        phase = Phase.RUNNING
    elif pod_phase == "Succeeded":
        phase, stop_reason = Phase.SUCCEEDED, StopReason.COMPLETED
    elif pod_phase == "Failed":
        phase = Phase.FAILED
        stop_reason = StopReason.EVICTED if pod_reason == "Evicted" else StopReason.FAILED
        reason, message = pod_reason, pod_message
        failed = next((c for c in containers if c.exit_code not in (None, 0)), None)
        if reason is None and failed is not None:
            reason = failed.reason or "Error"
            message = f"container {failed.name!r} exited with code {failed.exit_code}"
    elif pod_phase == "Unknown":
        phase, reason, message = previous.phase, "PodUnknown", pod_message
    else:
        phase = Phase.SCHEDULED
    if scheduled_cond is not None and scheduled_cond.status == "False" and phase is Phase.SCHEDULED:
        reason = scheduled_cond.reason or UNSCHEDULABLE
        message = scheduled_cond.message
    if reason is None and phase in (Phase.SCHEDULED, Phase.RUNNING):
        stuck = next((c for c in containers if c.reason in _NOTABLE_WAITING), None)
        if stuck is not None:
            reason, message = stuck.reason, stuck.message
    if previous.phase is Phase.DELETING:
        phase = Phase.DELETING

    started_at = previous.started_at or _first_started(containers)
    stopped_at, final_reason = previous.stopped_at, previous.stop_reason
    if stopped_at is None and stop_reason is not None:
        stopped_at, final_reason = _last_finished(containers) or now, stop_reason
    return replace(
        previous,
        phase=phase,
        pod_ip=_opt_str(raw_status.get("podIP")) or previous.pod_ip,
        containers=containers,
        conditions=conditions,
        reason=reason,
        message=message,
        started_at=started_at,
        stopped_at=stopped_at,
        stop_reason=final_reason,
    )


def status_changed(old: InstanceStatus, new: InstanceStatus) -> bool:
    """Whether ``new`` must be written to the CR. Statuses keep only fields that matter
    (no probe times, image ids, host IPs), so this is plain equality."""
    return old != new


# --- decisions ------------------------------------------------------------------------------


def is_current_pod(instance: Instance, pod: Mapping[str, Any], cluster: ClusterName) -> bool:
    """Whether a watched pod is the instance's current one: on the cluster of the current
    placement, created for the current attempt, for this very instance (a deleted and
    re-created instance reuses its id but not its uid). Anything else is stale (e.g. the
    old pod on a cluster that came back after the instance moved) and should be deleted."""
    annotations = _get(pod, "metadata", "annotations") or {}
    return (
        cluster == instance.status.cluster
        and annotations.get(ANNOTATION_UID) == instance.uid
        and annotations.get(ANNOTATION_ATTEMPT) == str(instance.status.attempt)
    )


def pod_phase(pod: Mapping[str, Any]) -> str | None:
    return _opt_str(_get(pod, "status", "phase"))


def pod_ended(pod: Mapping[str, Any]) -> bool:
    return pod_phase(pod) in ("Succeeded", "Failed")


def pod_news_is_urgent(event: str, pod: Mapping[str, Any]) -> bool:
    """Whether a pod watch event should be reconciled ahead of queued work: the pod runs,
    has ended or is gone, which the instance's status must tell promptly. Earlier steps
    (created, scheduled) can wait their turn; a pod that runs soon after then costs one
    status write instead of two."""
    return event == "DELETED" or pod_phase(pod) in ("Running", "Succeeded", "Failed")


def replacement_allowed(instance: Instance) -> bool:
    """Moving to another cluster is allowed unless the policy is Never and the workload
    already started (it would run twice). Nothing ran in an unschedulable pod."""
    return instance.spec.restart_policy is not RestartPolicy.NEVER or instance.status.started_at is None


def unschedulable_since(status: InstanceStatus) -> datetime | None:
    """When the pod became unschedulable, if it is."""
    cond = status.condition("PodScheduled")
    if status.phase is Phase.SCHEDULED and cond is not None and cond.status == "False":
        return cond.last_transition_time or status.scheduled_at
    return None


def should_replace(
    instance: Instance,
    pod: Mapping[str, Any] | None,
    *,
    now: datetime,
    unschedulable_timeout: timedelta,
) -> bool:
    """Move the instance elsewhere: its pod failed for an infrastructure reason (evicted,
    node lost) and the policy allows it, or it stayed unschedulable past the timeout."""
    if instance.deleting or pod is None:
        return False
    if pod_phase(pod) == "Failed":
        reason = _opt_str(_get(pod, "status", "reason"))
        return reason in INFRASTRUCTURE_FAILURES and replacement_allowed(instance)
    since = unschedulable_since(instance.status)
    return since is not None and now - since >= unschedulable_timeout


def should_release(instance: Instance, pod: Mapping[str, Any]) -> bool:
    """Delete the pod and keep the final status: the containers ended and the restart
    policy says stop (Kubernetes only ends a pod when its policy says so), unless the end
    was the platform's fault and the instance will be re-placed instead."""
    if not pod_ended(pod):
        return False
    reason = _opt_str(_get(pod, "status", "reason"))
    return not (pod_phase(pod) == "Failed" and reason in INFRASTRUCTURE_FAILURES and replacement_allowed(instance))


def scheduled_status(
    previous: InstanceStatus,
    *,
    cluster: ClusterName,
    region: RegionName,
    zone: ZoneName | None,
    now: datetime,
) -> InstanceStatus:
    """A new placement: the pod is about to be created on ``cluster``."""
    return replace(
        previous,
        phase=Phase.SCHEDULED,
        cluster=cluster,
        region=region,
        zone=zone,
        attempt=previous.attempt + 1,
        scheduled_at=now,
        pod_ip=None,
        containers=(),
        conditions=(),
        reason=None,
        message=None,
        started_at=None,
        stopped_at=None,
        stop_reason=None,
    )


def requeued_status(
    previous: InstanceStatus, *, now: datetime, reason: str, message: str | None = None
) -> InstanceStatus:
    """Back to Queued for re-placement. End the running attempt first (``lost_status``)
    so its ``instance.stopped`` is emitted."""
    return replace(
        previous,
        phase=Phase.QUEUED,
        cluster=None,
        region=None,
        zone=None,
        pod_ip=None,
        containers=(),
        conditions=(),
        reason=reason,
        message=message,
        queued_at=now,
        scheduled_at=None,
        started_at=None,
        stopped_at=None,
        stop_reason=None,
    )


def waiting_status(previous: InstanceStatus, *, reason: str, message: str) -> InstanceStatus:
    """Still Queued, with why (no cluster has room, none in the region, ...)."""
    return replace(previous, reason=reason, message=message)


def lost_status(previous: InstanceStatus, *, now: datetime, message: str) -> InstanceStatus:
    """The pod's cluster is unreachable or the pod vanished: the attempt ends as Lost."""
    if previous.stopped_at is not None:
        return previous
    return replace(
        previous,
        phase=Phase.FAILED,
        reason="Lost",
        message=message,
        stopped_at=now,
        stop_reason=StopReason.LOST,
    )


def deleting_status(previous: InstanceStatus, *, now: datetime) -> InstanceStatus:
    """The user deleted the instance: billing stops now, the pod is being removed."""
    stopped = previous.stopped_at is not None
    return replace(
        previous,
        phase=Phase.DELETING,
        stopped_at=previous.stopped_at if stopped else now,
        stop_reason=previous.stop_reason if stopped else StopReason.DELETED,
    )
