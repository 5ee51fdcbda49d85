from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from cis.domain.events import (
    EventKind,
    build_event,
    event_id,
    event_line,
    heartbeat_event,
    plan_events,
    transitions,
)
from cis.domain.model import ContainerStatus, InstanceStatus, Phase, StopReason
from cis.domain.status import deleting_status, lost_status, requeued_status

from .builders import INSTANCE_ID, T0, at, make_instance, scheduled

K = EventKind
QUEUED = InstanceStatus(queued_at=T0)
SCHED = scheduled(QUEUED)
RUN = replace(SCHED, phase=Phase.RUNNING, started_at=at(3), containers=(ContainerStatus("web"),))
RESTARTED = replace(RUN, containers=(ContainerStatus("web", restart_count=1, last_exit_code=1, last_reason="Error"),))
DONE = replace(RUN, phase=Phase.SUCCEEDED, stopped_at=at(20), stop_reason=StopReason.COMPLETED)
FAILED_EARLY = replace(SCHED, phase=Phase.FAILED, stopped_at=at(5), stop_reason=StopReason.FAILED)
LOST = lost_status(RUN, now=at(30), message="gone")
REQUEUED = requeued_status(LOST, now=at(31), reason="Lost")
RESCHED = scheduled(REQUEUED, seconds=32)
RERUN = replace(RESCHED, phase=Phase.RUNNING, started_at=at(35))
DELETING = deleting_status(RUN, now=at(40))


@pytest.mark.parametrize(
    ("old", "new", "kinds"),
    [
        (None, QUEUED, [K.CREATED, K.QUEUED]),
        (None, SCHED, [K.CREATED, K.QUEUED, K.SCHEDULED]),
        (None, DONE, [K.CREATED, K.QUEUED, K.SCHEDULED, K.STARTED, K.STOPPED]),
        (QUEUED, QUEUED, []),
        (QUEUED, SCHED, [K.SCHEDULED]),
        (SCHED, SCHED, []),
        (SCHED, RUN, [K.STARTED]),
        (QUEUED, RUN, [K.SCHEDULED, K.STARTED]),
        (RUN, RUN, []),
        (RUN, RESTARTED, [K.CONTAINER_RESTARTED]),
        (RESTARTED, RESTARTED, []),
        (RUN, DONE, [K.STOPPED]),
        (SCHED, DONE, [K.STARTED, K.STOPPED]),
        (DONE, DONE, []),
        (SCHED, FAILED_EARLY, [K.STOPPED]),
        (RUN, LOST, [K.STOPPED]),
        (LOST, REQUEUED, [K.QUEUED]),
        (REQUEUED, RESCHED, [K.SCHEDULED]),
        (RESCHED, RERUN, [K.STARTED]),
        (REQUEUED, RERUN, [K.SCHEDULED, K.STARTED]),
        (RUN, DELETING, [K.STOPPED]),
        (DELETING, None, [K.DELETED]),
        (RUN, None, [K.STOPPED, K.DELETED]),
        (DONE, None, [K.DELETED]),
        (None, None, [K.CREATED, K.QUEUED, K.STOPPED, K.DELETED]),
    ],
    ids=[
        "new-queued",
        "new-scheduled",
        "new-already-done",
        "queued-noop",
        "scheduled",
        "scheduled-noop",
        "started",
        "missed-scheduled",
        "running-noop",
        "restarted",
        "restarted-noop",
        "completed",
        "short-lived",
        "done-noop",
        "failed-before-start",
        "lost",
        "requeued",
        "rescheduled",
        "restarted-elsewhere",
        "skipped-phases-new-attempt",
        "delete-running",
        "removed-after-delete",
        "removed-while-running",
        "removed-after-done",
        "removed-unseen",
    ],
)
def test_transitions(old: InstanceStatus | None, new: InstanceStatus | None, kinds: list[EventKind]) -> None:
    assert transitions(old, new) == kinds


def test_event_ids_are_deterministic_and_distinct() -> None:
    a = event_id("uid-1", K.STARTED, 3)
    assert a == event_id("uid-1", K.STARTED, 3) and len(a) == 32
    assert (
        len({a, event_id("uid-2", K.STARTED, 3), event_id("uid-1", K.STOPPED, 3), event_id("uid-1", K.STARTED, 4)}) == 4
    )


def test_event_shape_matches_design() -> None:
    inst = make_instance(status=DONE)
    event = json.loads(event_line(build_event(inst, K.STOPPED, 5, at(20))))
    assert list(event) == ["@timestamp", "event", "instance"]
    assert event["@timestamp"] == "2026-11-21T10:00:20.123Z"
    assert event["event"] == {"id": event_id("uid-1", K.STOPPED, 5), "kind": "instance.stopped", "seq": 5}
    assert event["instance"] == {
        "id": INSTANCE_ID,
        "uid": "uid-1",
        "tenant": "acme",
        "region": "eu-west",
        "cluster": "c1",
        "cpu": "0.25",
        "memory_gib": "0.5",
        "started_at": "2026-11-21T10:00:03.123Z",
        "stopped_at": "2026-11-21T10:00:20.123Z",
        "reason": "Completed",
    }


def test_plan_events_numbers_and_stamps() -> None:
    inst = make_instance(status=QUEUED)
    events, persisted = plan_events(inst, SCHED, at(1))
    assert [e["event"]["seq"] for e in events] == [1, 2, 3]
    assert [e["event"]["kind"] for e in events] == ["instance.created", "instance.queued", "instance.scheduled"]
    assert persisted is not None and persisted.event_seq == 3
    events, persisted = plan_events(inst.with_status(persisted), DONE, at(25))
    assert [(e["event"]["kind"], e["event"]["seq"], e["@timestamp"]) for e in events] == [
        ("instance.started", 4, "2026-11-21T10:00:03.123Z"),
        ("instance.stopped", 5, "2026-11-21T10:00:20.123Z"),
    ]
    assert persisted is not None and persisted.event_seq == 5
    events, persisted = plan_events(inst.with_status(persisted), persisted, at(26))
    assert events == [] and persisted is not None and persisted.event_seq == 5


def test_replay_after_a_crash_gives_the_same_ids() -> None:
    inst = make_instance(status=replace(SCHED, event_seq=3))
    first, _ = plan_events(inst, RUN, at(4))  # written, then the controller died
    replay, _ = plan_events(inst, DONE, at(30))  # the pod moved on meanwhile
    assert first[0]["event"]["id"] == replay[0]["event"]["id"]
    # stamped with started_at, and without the stop that came later: byte-identical
    assert first[0] == replay[0]


def test_removal_of_a_running_instance_stops_it_at_deletion() -> None:
    inst = make_instance(status=replace(RUN, event_seq=4))
    events, persisted = plan_events(inst, None, at(40))
    assert persisted is None
    stop, deleted = events
    assert stop["event"]["kind"] == "instance.stopped" and stop["instance"]["reason"] == "Deleted"
    assert stop["instance"]["stopped_at"] == stop["@timestamp"] == "2026-11-21T10:00:40.123Z"
    assert deleted["event"]["seq"] == 6


def test_container_restarted_carries_the_container() -> None:
    inst = make_instance(status=replace(RUN, event_seq=4))
    (event,), _ = plan_events(inst, RESTARTED, at(10))
    assert event["container"] == {"name": "web", "restart_count": 1, "exit_code": 1, "reason": "Error"}
    with pytest.raises(ValueError):
        build_event(inst, K.CONTAINER_RESTARTED, 1, at(1))


def test_heartbeats() -> None:
    minute = timedelta(minutes=1)
    inst = make_instance(status=replace(RUN, started_at=T0))
    assert heartbeat_event(inst, T0 + timedelta(seconds=30), minute) is None  # no grid point yet
    beat = heartbeat_event(inst, T0 + timedelta(seconds=100), minute)
    assert beat is not None and beat["event"]["kind"] == "instance.running"
    assert beat["@timestamp"] == "2026-11-21T10:01:00.000Z"
    assert beat == heartbeat_event(inst, T0 + timedelta(seconds=110), minute)  # same grid point
    later = heartbeat_event(inst, T0 + timedelta(seconds=130), minute)
    assert later is not None and later["event"]["seq"] == beat["event"]["seq"] + 1
    assert heartbeat_event(inst.with_status(DONE), T0 + timedelta(seconds=100), minute) is None
    assert heartbeat_event(inst.with_status(SCHED), T0 + timedelta(seconds=100), minute) is None
