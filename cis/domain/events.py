"""Lifecycle events, exactly as DESIGN §4 defines them (the contract with billing/logging).

One JSON object per line::

    {"@timestamp": "2026-11-21T10:00:00.123Z",
     "event":    {"id": "<hash of uid, kind, seq>", "kind": "instance.started", "seq": 3},
     "instance": {"id", "uid", "tenant", "region", "cluster", "cpu": "0.5",
                  "memory_gib": "1", "started_at", "stopped_at", "reason"}}

``container.restarted`` events carry one more member, ``"container": {"name",
"restart_count", "exit_code", "reason"}`` (the termination that caused the restart).

How the controller uses this module, restart-safe:

1. It computes the new status (``status.status_from_pod`` etc.).
2. ``plan_events(instance, new_status, now)`` returns the events of the change and the
   status to persist, whose ``event_seq`` counts the events emitted so far.
3. It writes the events, *then* persists the status. A crash in between recomputes the
   same kinds with the same ``seq`` from the persisted status, hence the same ``event.id``,
   and Elasticsearch (``_id = event.id``) keeps one copy. Nothing is lost or doubled.

``instance.running`` heartbeats are not transitions: ``heartbeat_event`` emits one per grid
point of a fixed interval (``seq`` = the grid index since the epoch, ``@timestamp`` = the
grid time), so a re-sent heartbeat is byte-identical and heartbeats of two attempts never
share an id. Billing closes an interval whose stop is missing at the last heartbeat.

Timestamps: ``instance.started`` is stamped with ``started_at`` and ``instance.stopped``
with ``stopped_at`` (the facts billing uses); the other kinds with the observation time.
The ``instance`` member shows the state as of the event (a ``started`` event has
``stopped_at: null`` even when it is emitted late, together with the stop).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from cis.domain.model import ContainerStatus, Instance, InstanceStatus, Phase, StopReason
from cis.domain.timestamps import format_optional, format_timestamp


class EventKind(StrEnum):
    CREATED = "instance.created"
    QUEUED = "instance.queued"
    SCHEDULED = "instance.scheduled"
    STARTED = "instance.started"
    RUNNING = "instance.running"
    CONTAINER_RESTARTED = "container.restarted"
    STOPPED = "instance.stopped"
    DELETED = "instance.deleted"


def event_id(uid: str, kind: EventKind, seq: int) -> str:
    """Deterministic id: SHA-256 over (uid, kind, seq), 32 hex chars (128 bits)."""
    material = f"cis-event/v1\x00{uid}\x00{kind.value}\x00{seq}".encode()
    return hashlib.sha256(material).hexdigest()[:32]


def _changes(old: InstanceStatus | None, new: InstanceStatus | None) -> list[tuple[EventKind, ContainerStatus | None]]:
    out: list[tuple[EventKind, ContainerStatus | None]] = []
    if old is None:
        out += [(EventKind.CREATED, None), (EventKind.QUEUED, None)]
    if new is None:
        if old is None or old.stopped_at is None:
            out.append((EventKind.STOPPED, None))
        out.append((EventKind.DELETED, None))
        return out
    same_attempt = old is not None and old.attempt == new.attempt
    if old is not None and new.phase is Phase.QUEUED and old.phase is not Phase.QUEUED:
        out.append((EventKind.QUEUED, None))
    if new.attempt > (old.attempt if old is not None else 0):
        out.append((EventKind.SCHEDULED, None))
    if new.started_at is not None and not (same_attempt and old is not None and old.started_at is not None):
        out.append((EventKind.STARTED, None))
    if same_attempt and old is not None:
        for container in new.containers:
            before = old.container(container.name)
            if before is not None and container.restart_count > before.restart_count:
                out.append((EventKind.CONTAINER_RESTARTED, container))
    if new.stopped_at is not None and not (same_attempt and old is not None and old.stopped_at is not None):
        out.append((EventKind.STOPPED, None))
    return out


def transitions(old: InstanceStatus | None, new: InstanceStatus | None) -> list[EventKind]:
    """The event kinds a status change produces, in order.

    ``old=None``: nothing emitted yet (``created``, ``queued`` first). ``new=None``: the
    record is being removed (``stopped`` if the attempt had not stopped, then ``deleted``).
    A change of ``attempt`` is a new placement (``scheduled``) whose start and stop are
    new facts; ``container.restarted`` appears once per container whose restart count grew.
    """
    return [kind for kind, _ in _changes(old, new)]


def build_event(
    instance: Instance,
    kind: EventKind,
    seq: int,
    at: datetime,
    *,
    status: InstanceStatus | None = None,
    container: ContainerStatus | None = None,
) -> dict[str, Any]:
    """One event. ``status`` defaults to ``instance.status``; ``container`` is required for
    ``container.restarted`` and ignored otherwise."""
    st = status if status is not None else instance.status
    event: dict[str, Any] = {
        "@timestamp": format_timestamp(at),
        "event": {"id": event_id(instance.uid, kind, seq), "kind": kind.value, "seq": seq},
        "instance": {
            "id": instance.id,
            "uid": instance.uid,
            "tenant": instance.tenant,
            "region": st.region,
            "cluster": st.cluster,
            "cpu": instance.size.cpu_text,
            "memory_gib": instance.size.memory_gib_text,
            "started_at": format_optional(st.started_at),
            "stopped_at": format_optional(st.stopped_at),
            "reason": st.stop_reason.value if st.stop_reason is not None else None,
        },
    }
    if kind is EventKind.CONTAINER_RESTARTED:
        if container is None:
            raise ValueError("container.restarted needs the container")
        event["container"] = {
            "name": container.name,
            "restart_count": container.restart_count,
            "exit_code": container.last_exit_code,
            "reason": container.last_reason,
        }
    return event


def _as_of(kind: EventKind, status: InstanceStatus) -> InstanceStatus:
    """The status as it was when ``kind`` happened: an event never reports facts that came
    later, so a replay after more progress produces the same ``instance`` member."""
    if kind in (EventKind.CREATED, EventKind.QUEUED):
        return replace(
            status,
            cluster=None,
            region=None,
            zone=None,
            started_at=None,
            stopped_at=None,
            stop_reason=None,
        )
    if kind is EventKind.SCHEDULED:
        return replace(status, started_at=None, stopped_at=None, stop_reason=None)
    if kind in (EventKind.STARTED, EventKind.CONTAINER_RESTARTED):
        return replace(status, stopped_at=None, stop_reason=None)
    return status


def plan_events(
    instance: Instance, new_status: InstanceStatus | None, at: datetime
) -> tuple[list[dict[str, Any]], InstanceStatus | None]:
    """Events for ``instance.status`` -> ``new_status`` and the status to persist.

    ``new_status=None`` means the record is about to be removed (after the pod is gone);
    the returned status is then None too. An ``instance.status`` with ``event_seq == 0``
    has emitted nothing yet, so its events start with ``created``.
    """
    old = instance.status if instance.status.event_seq > 0 else None
    seq = instance.status.event_seq
    events: list[dict[str, Any]] = []
    stamp_from = new_status if new_status is not None else instance.status
    for kind, container in _changes(old, new_status):
        seq += 1
        if new_status is None and kind is EventKind.STOPPED and stamp_from.stopped_at is None:
            # removed before it stopped: the deletion time is the stop
            stamp_from = replace(stamp_from, stopped_at=at, stop_reason=StopReason.DELETED)
        when = at
        if kind is EventKind.STARTED and stamp_from.started_at is not None:
            when = stamp_from.started_at
        elif kind is EventKind.STOPPED and stamp_from.stopped_at is not None:
            when = stamp_from.stopped_at
        events.append(build_event(instance, kind, seq, when, status=_as_of(kind, stamp_from), container=container))
    if new_status is None:
        return events, None
    return events, replace(new_status, event_seq=seq)


def heartbeat_event(instance: Instance, now: datetime, interval: timedelta) -> dict[str, Any] | None:
    """The ``instance.running`` heartbeat for the latest interval grid point <= ``now``,
    or None if the instance is not running or no grid point passed since it started."""
    st = instance.status
    if st.phase is not Phase.RUNNING or st.started_at is None or st.stopped_at is not None:
        return None
    step = interval.total_seconds()
    if step <= 0:
        raise ValueError("interval must be positive")
    index = int(now.timestamp() // step)
    moment = datetime.fromtimestamp(index * step, tz=UTC)
    if moment <= st.started_at:
        return None
    return build_event(instance, EventKind.RUNNING, index, moment)


def event_line(event: dict[str, Any]) -> str:
    """The JSON line (without the newline): compact, key order as built."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
