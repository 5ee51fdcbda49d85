from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from cis.domain.ids import ClusterName
from cis.domain.model import ContainerState, InstanceStatus, Phase, StopReason
from cis.domain.pods import pod_manifest
from cis.domain.status import (
    deleting_status,
    is_current_pod,
    lost_status,
    pod_news_is_urgent,
    requeued_status,
    should_release,
    should_replace,
    status_changed,
    status_from_pod,
    unschedulable_since,
)

from .builders import at, container, cs, make_instance, pod, raw_spec, scheduled, ts

SCHEDULED_TRUE = {"type": "PodScheduled", "status": "True", "lastTransitionTime": ts(1)}
UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient cpu.",
    "lastTransitionTime": ts(1),
}
READY = [
    SCHEDULED_TRUE,
    {"type": "Initialized", "status": "True", "lastTransitionTime": ts(1)},
    {"type": "ContainersReady", "status": "True", "lastTransitionTime": ts(3)},
    {"type": "Ready", "status": "True", "lastTransitionTime": ts(3)},
]


def running(seconds: float) -> dict[str, Any]:
    return {"running": {"startedAt": ts(seconds)}}


def terminated(code: int, reason: str, start: float, end: float) -> dict[str, Any]:
    return {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "startedAt": ts(start),
            "finishedAt": ts(end),
            "containerID": "containerd://abc",
        }
    }


def waiting(reason: str, message: str | None = None) -> dict[str, Any]:
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


# (id, pod, expected phase, reason, container state, exit code, restarts, started, stopped, stop reason)
CASES: list[
    tuple[
        str,
        dict[str, Any],
        Phase,
        str | None,
        ContainerState,
        int | None,
        int,
        float | None,
        float | None,
        StopReason | None,
    ]
] = [
    ("just-created", pod("Pending"), Phase.SCHEDULED, None, ContainerState.WAITING, None, 0, None, None, None),
    (
        "creating",
        pod("Pending", conditions=[SCHEDULED_TRUE], container_statuses=[cs(waiting("ContainerCreating"))]),
        Phase.SCHEDULED,
        None,
        ContainerState.WAITING,
        None,
        0,
        None,
        None,
        None,
    ),
    (
        "unschedulable",
        pod("Pending", conditions=[UNSCHEDULABLE]),
        Phase.SCHEDULED,
        "Unschedulable",
        ContainerState.WAITING,
        None,
        0,
        None,
        None,
        None,
    ),
    (
        "image-pull-backoff",
        pod(
            "Pending",
            conditions=[SCHEDULED_TRUE],
            container_statuses=[cs(waiting("ImagePullBackOff", 'Back-off pulling image "nginx:nope"'))],
        ),
        Phase.SCHEDULED,
        "ImagePullBackOff",
        ContainerState.WAITING,
        None,
        0,
        None,
        None,
        None,
    ),
    (
        "running",
        pod("Running", conditions=READY, pod_ip="10.244.1.9", container_statuses=[cs(running(3), ready=True)]),
        Phase.RUNNING,
        None,
        ContainerState.RUNNING,
        None,
        0,
        3,
        None,
        None,
    ),
    (
        "completed",
        pod("Succeeded", pod_ip="10.244.1.9", container_statuses=[cs(terminated(0, "Completed", 3, 20))]),
        Phase.SUCCEEDED,
        None,
        ContainerState.TERMINATED,
        0,
        0,
        3,
        20,
        StopReason.COMPLETED,
    ),
    (
        "failed-exit-code",
        pod("Failed", container_statuses=[cs(terminated(2, "Error", 3, 7))]),
        Phase.FAILED,
        "Error",
        ContainerState.TERMINATED,
        2,
        0,
        3,
        7,
        StopReason.FAILED,
    ),
    (
        "oom-killed",
        pod("Failed", container_statuses=[cs(terminated(137, "OOMKilled", 3, 8))]),
        Phase.FAILED,
        "OOMKilled",
        ContainerState.TERMINATED,
        137,
        0,
        3,
        8,
        StopReason.FAILED,
    ),
    (
        "restarted",
        pod(
            "Running",
            conditions=READY,
            container_statuses=[
                cs(running(30), restarts=2, ready=True, last={"exitCode": 1, "reason": "Error", "finishedAt": ts(29)})
            ],
        ),
        Phase.RUNNING,
        None,
        ContainerState.RUNNING,
        None,
        2,
        30,
        None,
        None,
    ),
    (
        "crash-loop",
        pod(
            "Running",
            container_statuses=[
                cs(waiting("CrashLoopBackOff", "back-off 40s"), restarts=3, last={"exitCode": 1, "reason": "Error"})
            ],
        ),
        Phase.RUNNING,
        "CrashLoopBackOff",
        ContainerState.WAITING,
        None,
        3,
        None,
        None,
        None,
    ),
    (
        "evicted",
        pod("Failed", reason="Evicted", message="The node was low on resource: memory."),
        Phase.FAILED,
        "Evicted",
        ContainerState.WAITING,
        None,
        0,
        None,
        100,
        StopReason.EVICTED,
    ),
    (
        "deadline-exceeded",
        pod(
            "Failed",
            reason="DeadlineExceeded",
            message="Pod was active on the node longer than the specified deadline",
            container_statuses=[cs(terminated(137, "Error", 3, 60))],
        ),
        Phase.FAILED,
        "DeadlineExceeded",
        ContainerState.TERMINATED,
        137,
        0,
        3,
        60,
        StopReason.FAILED,
    ),
]


@pytest.mark.parametrize(
    ("raw_pod", "phase", "reason", "state", "exit_code", "restarts", "started", "stopped", "stop_reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_status_from_pod(
    raw_pod: dict[str, Any],
    phase: Phase,
    reason: str | None,
    state: ContainerState,
    exit_code: int | None,
    restarts: int,
    started: float | None,
    stopped: float | None,
    stop_reason: StopReason | None,
) -> None:
    inst = make_instance(status=scheduled())
    st = status_from_pod(raw_pod, inst.status, spec=inst.spec, now=at(100))
    assert st.phase is phase
    assert st.reason == reason
    web = st.containers[0]
    assert (web.state, web.exit_code, web.restart_count) == (state, exit_code, restarts)

    def expect(seconds: float | None) -> datetime | None:
        return None if seconds is None else at(seconds).replace(microsecond=0)

    assert st.started_at == expect(started)
    assert st.stopped_at == (at(100) if stopped == 100 else expect(stopped))
    assert st.stop_reason is stop_reason
    assert (st.cluster, st.attempt) == ("c1", 1)  # placement is kept


def test_details_of_running_and_failed() -> None:
    inst = make_instance(status=scheduled())
    run = status_from_pod(
        pod("Running", conditions=READY, pod_ip="10.244.1.9", container_statuses=[cs(running(3), ready=True)]),
        inst.status,
        spec=inst.spec,
        now=at(5),
    )
    assert run.pod_ip == "10.244.1.9" and run.containers[0].ready
    assert run.condition("Ready") is not None
    failed = status_from_pod(
        pod("Failed", container_statuses=[cs(terminated(2, "Error", 3, 7))]), run, spec=inst.spec, now=at(9)
    )
    assert failed.message == "container 'web' exited with code 2"
    assert failed.started_at == run.started_at and failed.pod_ip == "10.244.1.9"
    unsched = status_from_pod(pod("Pending", conditions=[UNSCHEDULABLE]), inst.status, spec=inst.spec, now=at(2))
    assert unsched.message == "0/3 nodes are available: 3 Insufficient cpu."
    assert unschedulable_since(unsched) == at(1).replace(microsecond=0)
    assert unschedulable_since(run) is None


def test_started_and_stopped_are_sticky() -> None:
    inst = make_instance(status=scheduled())
    first = status_from_pod(pod("Running", container_statuses=[cs(running(3))]), inst.status, spec=inst.spec, now=at(4))
    later = status_from_pod(
        pod("Running", container_statuses=[cs(running(50), restarts=1)]), first, spec=inst.spec, now=at(51)
    )
    assert later.started_at == first.started_at
    done = status_from_pod(
        pod("Succeeded", container_statuses=[cs(terminated(0, "Completed", 50, 60))]), later, spec=inst.spec, now=at(61)
    )
    again = status_from_pod(
        pod("Succeeded", container_statuses=[cs(terminated(0, "Completed", 50, 60))]), done, spec=inst.spec, now=at(99)
    )
    assert again.stopped_at == done.stopped_at and not status_changed(done, again)


def test_multi_container_ordering_and_missing_statuses() -> None:
    inst = make_instance({"containers": [container("a"), container("b")]}, status=scheduled())
    st = status_from_pod(
        pod("Running", conditions=READY, container_statuses=[cs(running(4), name="b")]),
        inst.status,
        spec=inst.spec,
        now=at(5),
    )
    assert [c.name for c in st.containers] == ["a", "b"]
    assert st.containers[0].state is ContainerState.WAITING and st.containers[0].reason == "ContainerCreating"
    assert st.containers[1].state is ContainerState.RUNNING


def test_unknown_keeps_phase_and_deleting_is_sticky() -> None:
    inst = make_instance(status=scheduled())
    run = status_from_pod(pod("Running", container_statuses=[cs(running(3))]), inst.status, spec=inst.spec, now=at(4))
    unknown = status_from_pod(pod("Unknown"), run, spec=inst.spec, now=at(5))
    assert unknown.phase is Phase.RUNNING and unknown.reason == "PodUnknown"
    deleting = deleting_status(run, now=at(6))
    assert deleting.phase is Phase.DELETING and deleting.stop_reason is StopReason.DELETED
    assert deleting.stopped_at == at(6)
    after = status_from_pod(
        pod("Failed", container_statuses=[cs(terminated(143, "Error", 3, 7))]), deleting, spec=inst.spec, now=at(8)
    )
    assert after.phase is Phase.DELETING and after.stopped_at == at(6) and after.stop_reason is StopReason.DELETED


def test_status_changed() -> None:
    a = scheduled()
    assert not status_changed(a, replace(a))
    assert status_changed(a, replace(a, pod_ip="10.0.0.1"))


ENDED_OK = pod("Succeeded", container_statuses=[cs(terminated(0, "Completed", 3, 20))])
ENDED_ERR = pod("Failed", container_statuses=[cs(terminated(1, "Error", 3, 20))])
EVICTED = pod("Failed", reason="Evicted")
RUNNING = pod("Running", container_statuses=[cs(running(3))])
PENDING_UNSCHED = pod("Pending", conditions=[UNSCHEDULABLE])


@pytest.mark.parametrize(
    ("policy", "raw_pod", "started", "release"),
    [
        ("Never", ENDED_OK, True, True),
        ("Never", ENDED_ERR, True, True),
        ("OnFailure", ENDED_OK, True, True),
        ("OnFailure", ENDED_ERR, True, True),
        ("Always", RUNNING, True, False),
        ("Never", RUNNING, True, False),
        ("Always", EVICTED, True, False),
        ("OnFailure", EVICTED, True, False),
        ("Never", EVICTED, True, True),
        ("Never", EVICTED, False, False),
        ("Never", PENDING_UNSCHED, False, False),
    ],
    ids=[
        "never-succeeded",
        "never-failed",
        "onfailure-succeeded",
        "onfailure-deadline",
        "always-running",
        "never-running",
        "always-evicted-replaces",
        "onfailure-evicted-replaces",
        "never-evicted-after-start-releases",
        "never-evicted-before-start-replaces",
        "pending",
    ],
)
def test_should_release(policy: str, raw_pod: dict[str, Any], started: bool, release: bool) -> None:
    status = replace(scheduled(), started_at=at(3) if started else None)
    inst = make_instance(raw_spec(restartPolicy=policy), status=status)
    assert should_release(inst, raw_pod) is release


@pytest.mark.parametrize(
    ("policy", "raw_pod", "elapsed", "deleting", "replace_it"),
    [
        ("Always", EVICTED, 0, False, True),
        ("Never", EVICTED, 0, False, True),
        ("Always", ENDED_ERR, 0, False, False),
        ("Always", PENDING_UNSCHED, 299, False, False),
        ("Always", PENDING_UNSCHED, 300, False, True),
        ("Never", PENDING_UNSCHED, 300, False, True),
        ("Always", PENDING_UNSCHED, 300, True, False),
        ("Always", None, 300, False, False),
    ],
    ids=[
        "evicted",
        "never-evicted-not-started",
        "workload-failure",
        "unschedulable-before-timeout",
        "unschedulable-timeout",
        "never-unschedulable-timeout",
        "deleting",
        "no-pod",
    ],
)
def test_should_replace(
    policy: str, raw_pod: dict[str, Any] | None, elapsed: float, deleting: bool, replace_it: bool
) -> None:
    inst = make_instance(raw_spec(restartPolicy=policy), status=scheduled(seconds=0))
    if raw_pod is not None:
        inst = inst.with_status(status_from_pod(raw_pod, inst.status, spec=inst.spec, now=at(1)))
    inst = replace(inst, deleting=deleting)
    got = should_replace(
        inst,
        raw_pod,
        now=at(1).replace(microsecond=0) + timedelta(seconds=elapsed),
        unschedulable_timeout=timedelta(seconds=300),
    )
    assert got is replace_it


def test_lost_then_requeued_then_scheduled() -> None:
    run = replace(scheduled(), phase=Phase.RUNNING, started_at=at(3), pod_ip="10.0.0.9")
    lost = lost_status(run, now=at(50), message="cluster c1 unreachable")
    assert (lost.phase, lost.stop_reason, lost.stopped_at) == (Phase.FAILED, StopReason.LOST, at(50))
    assert lost_status(lost, now=at(60), message="again") == lost
    queued = requeued_status(lost, now=at(51), reason="Lost")
    assert queued.phase is Phase.QUEUED and queued.cluster is None and queued.started_at is None
    assert queued.attempt == 1
    again = scheduled(queued, seconds=52)
    assert again.attempt == 2 and again.phase is Phase.SCHEDULED and again.stopped_at is None


def test_fresh_status_is_queued() -> None:
    assert InstanceStatus().phase is Phase.QUEUED


def test_is_current_pod() -> None:
    inst = make_instance(status=scheduled())
    manifest = pod_manifest(inst)
    assert is_current_pod(inst, manifest, ClusterName("c1"))
    assert not is_current_pod(inst, manifest, ClusterName("c2"))  # old placement elsewhere
    moved = inst.with_status(scheduled(inst.status, seconds=50))
    assert not is_current_pod(moved, manifest, ClusterName("c1"))  # earlier attempt
    assert not is_current_pod(replace(inst, uid="uid-2"), manifest, ClusterName("c1"))


@pytest.mark.parametrize(
    ("event", "phase", "urgent"),
    [
        ("ADDED", "Pending", False),  # just created (or scheduled): one write once it runs
        ("MODIFIED", "Pending", False),
        ("MODIFIED", "Running", True),  # the user must learn it runs
        ("MODIFIED", "Succeeded", True),  # ended: status, events and release
        ("MODIFIED", "Failed", True),
        ("ADDED", "Running", True),  # a running pod seen after a restart or relist
        ("DELETED", "Pending", True),  # gone: re-place or finish
        ("MODIFIED", "Unknown", False),
    ],
)
def test_which_pod_news_jumps_the_queue(event: str, phase: str, urgent: bool) -> None:
    assert pod_news_is_urgent(event, pod(phase)) is urgent
