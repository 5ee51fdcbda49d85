"""Instance -> pod status mapping, and the patch that is (or is not) written."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.vk_provider.builders import instance, pod
from vk_provider.podstatus import (
    failed_status,
    pending_status,
    started_by_provider,
    status_from_instance,
    status_patch,
)

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
LATER = datetime(2026, 11, 21, 10, 5, tzinfo=UTC)


def conds(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


@pytest.mark.parametrize(("phase", "pod_phase", "ready", "initialized", "state"), [
    ("Queued", "Pending", "False", "False", "waiting"),
    ("Scheduled", "Pending", "False", "True", "waiting"),
    ("Running", "Running", "True", "True", "running"),
    ("Succeeded", "Succeeded", "False", "True", "terminated"),
    ("Failed", "Failed", "False", "True", "terminated"),
], ids=["queued", "scheduled", "running", "succeeded", "failed"])
def test_phases_map_to_pod_phases(phase: str, pod_phase: str, ready: str, initialized: str, state: str) -> None:
    status = status_from_instance(pod(), instance(phase=phase, podIP="10.1.2.3"), "192.0.2.1", NOW)
    assert status["phase"] == pod_phase
    assert conds(status) == {"PodScheduled": "True", "Initialized": initialized, "ContainersReady": ready,
                             "Ready": ready}
    assert list(status["containerStatuses"][0]["state"]) == [state]
    assert (status["podIP"], status["hostIP"], status["hostIPs"]) == ("10.1.2.3", "192.0.2.1", [{"ip": "192.0.2.1"}])
    assert status["startTime"] == "2026-11-21T10:00:00Z"


def test_container_status_details() -> None:
    inst = instance(containers=[{"name": "main", "state": "Terminated", "exitCode": 3, "reason": "Error",
                                 "restartCount": 2, "startedAt": "2026-11-21T09:00:00Z",
                                 "finishedAt": "2026-11-21T09:01:00Z",
                                 "lastState": {"exitCode": 1, "reason": "Error"}}], phase="Failed",
                    reason="BackoffLimit")
    status = status_from_instance(pod(), inst, "192.0.2.1", NOW)
    cs = status["containerStatuses"][0]
    assert cs == {
        "name": "main", "image": "nginx:1.27", "imageID": "", "ready": False, "restartCount": 2, "started": False,
        "containerID": "cis://ci-1/main",
        "state": {"terminated": {"exitCode": 3, "reason": "Error", "containerID": "cis://ci-1/main",
                                 "startedAt": "2026-11-21T09:00:00Z", "finishedAt": "2026-11-21T09:01:00Z"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
    }
    assert status["reason"] == "BackoffLimit"
    assert conds(status)["Ready"] == "False"
    assert {c["type"]: c.get("reason") for c in status["conditions"]}["Ready"] == "PodCompleted"


def test_an_unchanged_status_is_not_written_again_even_after_apiserver_defaults() -> None:
    first = status_from_instance(pod(), instance(podIP="10.1.2.3"), "192.0.2.1", NOW)
    # The apiserver adds qosClass, `lastState: {}`, null probe times.
    stored = {**first, "qosClass": "BestEffort",
              "containerStatuses": [{**first["containerStatuses"][0], "lastState": {}}],
              "conditions": [{**c, "lastProbeTime": None} for c in first["conditions"]]}
    stored = {k: v for k, v in stored.items() if v is not None}
    again = status_from_instance(pod(status=stored), instance(podIP="10.1.2.3"), "192.0.2.1", LATER)
    assert status_patch(pod(status=stored), again) is None


def test_a_change_is_patched_with_the_uid_precondition_and_keeps_transition_times() -> None:
    first = status_from_instance(pod(), instance(phase="Scheduled"), "192.0.2.1", NOW)
    current = pod(status={k: v for k, v in first.items() if v is not None})
    running = status_from_instance(current, instance(phase="Running"), "192.0.2.1", LATER)
    patch = status_patch(current, running)
    assert patch is not None
    assert patch["metadata"] == {"uid": "uid-1"}
    assert patch["status"]["phase"] == "Running"
    times = {c["type"]: c["lastTransitionTime"] for c in patch["status"]["conditions"]}
    assert times["PodScheduled"] == "2026-11-21T10:00:00Z"  # unchanged status keeps its time
    assert times["Ready"] == "2026-11-21T10:05:00Z"


def test_foreign_conditions_survive() -> None:
    current = pod(status={"phase": "Running", "conditions": [{"type": "example.com/Gate", "status": "True"}]})
    status = status_from_instance(current, instance(), "192.0.2.1", NOW)
    assert status["conditions"][0]["type"] == "example.com/Gate"


def test_pending_status_explains_why() -> None:
    status = pending_status(pod(), "CreateContainerConfigError", 'secret "s" not found', "192.0.2.1", NOW)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {
        "waiting": {"reason": "CreateContainerConfigError", "message": 'secret "s" not found'}}
    assert not started_by_provider({"status": status})


def test_a_lost_instance_fails_the_pod_and_ends_running_containers() -> None:
    running = status_from_instance(pod(), instance(), "192.0.2.1", NOW)
    assert started_by_provider({"status": running})
    lost = failed_status(pod(status=running), "NotFound", "gone", "192.0.2.1", LATER, exit_code=137)
    assert (lost["phase"], lost["reason"]) == ("Failed", "NotFound")
    assert lost["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert conds(lost)["Ready"] == "False"


def test_a_rejected_pod_has_no_container_statuses() -> None:
    rejected = failed_status(pod(), "UnsupportedPodFeature", "init containers", "192.0.2.1", NOW)
    assert (rejected["phase"], rejected["containerStatuses"], rejected["message"]) == (
        "Failed", [], "init containers")


def test_a_queued_instance_shows_why_in_the_waiting_reason() -> None:
    inst = instance(phase="Queued", containers=[], reason="NoCapacity", message="waiting for capacity")
    waiting = status_from_instance(pod(), inst, "192.0.2.1", NOW)["containerStatuses"][0]["state"]["waiting"]
    assert waiting == {"reason": "NoCapacity", "message": "waiting for capacity"}
