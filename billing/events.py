"""Lifecycle events as billing sees them: the DESIGN section 4 JSON, parsed and typed.

The controller writes these events, Filebeat ships them into `cis-events-*`, and the store
hands their raw `_source` dicts to `parse_event`. Parsing is strict about what billing
relies on (ids, kind, seq, sizes, times) and lenient about the rest, so a new optional
field in the contract never breaks a billing run. Everything here is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, NewType, TypedDict

from billing.errors import InvalidEvent

InstanceUid = NewType("InstanceUid", str)
InstanceId = NewType("InstanceId", str)
TenantId = NewType("TenantId", str)
Region = NewType("Region", str)
EventId = NewType("EventId", str)


class EventKind(StrEnum):
    CREATED = "instance.created"
    QUEUED = "instance.queued"
    SCHEDULED = "instance.scheduled"
    STARTED = "instance.started"
    RUNNING = "instance.running"
    CONTAINER_RESTARTED = "container.restarted"
    STOPPED = "instance.stopped"
    DELETED = "instance.deleted"


# Kinds that prove the instance was alive at their @timestamp. A container restart happens
# inside a running instance, so it counts as liveness and never splits billing.
LIVENESS_KINDS = frozenset({EventKind.RUNNING, EventKind.CONTAINER_RESTARTED})


class RawEventMeta(TypedDict):
    id: str
    kind: str
    seq: int


class RawInstance(TypedDict, total=False):
    id: str
    uid: str
    tenant: str
    region: str
    cluster: str
    cpu: str
    memory_gib: str
    started_at: str | None
    stopped_at: str | None
    reason: str | None


RawEvent = TypedDict("RawEvent", {"@timestamp": str, "event": RawEventMeta, "instance": RawInstance})


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    event_id: EventId
    kind: str  # an EventKind value, or an unknown kind billing ignores
    seq: int
    timestamp: datetime
    uid: InstanceUid
    instance_id: InstanceId
    tenant: TenantId
    region: Region
    cluster: str
    cpu: Decimal
    memory_gib: Decimal
    started_at: datetime | None
    stopped_at: datetime | None
    reason: str | None


def parse_time(value: object, *, field: str) -> datetime:
    """Parse an RFC 3339 timestamp into an aware UTC datetime; naive input is taken as UTC."""
    if not isinstance(value, str):
        raise InvalidEvent(f"expected an RFC 3339 timestamp, got {value!r:.60}", field=field)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidEvent(f"not an RFC 3339 timestamp: {value!r:.60}", field=field) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """Render a UTC datetime the way Elasticsearch and the events do: `...Z`, ms precision."""
    # Usage documents carry four times each, so the common case (already UTC) skips the
    # conversion; an aware UTC isoformat always ends in "+00:00".
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="milliseconds")[:-6] + "Z"


def _optional_time(raw: Mapping[str, Any], key: str) -> datetime | None:
    value = raw.get(key)
    return None if value is None else parse_time(value, field=f"instance.{key}")


def _text(raw: Mapping[str, Any], key: str, *, prefix: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidEvent("missing or not a non-empty string", field=f"{prefix}.{key}")
    return value


def _size(raw: Mapping[str, Any], key: str) -> Decimal:
    value = raw.get(key)
    # Sizes are strings on the wire ("0.5"); ints are harmless, floats would hide rounding.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidEvent(f"expected a decimal string, got {value!r:.40}", field=f"instance.{key}")
    try:
        size = Decimal(value)
    except InvalidOperation as exc:
        raise InvalidEvent(f"not a decimal: {value!r:.40}", field=f"instance.{key}") from exc
    if not size.is_finite() or size <= 0:
        raise InvalidEvent(f"must be a positive decimal, got {value!r:.40}", field=f"instance.{key}")
    return size


def parse_event(raw: Mapping[str, object]) -> LifecycleEvent:
    """Validate one event document (`_source`) and return it typed; raises `InvalidEvent`."""
    meta = raw.get("event")
    inst = raw.get("instance")
    if not isinstance(meta, dict):
        raise InvalidEvent("missing object", field="event")
    if not isinstance(inst, dict):
        raise InvalidEvent("missing object", field="instance")
    seq = meta.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidEvent(f"expected a non-negative integer, got {seq!r:.40}", field="event.seq")
    reason = inst.get("reason")
    return LifecycleEvent(
        event_id=EventId(_text(meta, "id", prefix="event")),
        kind=_text(meta, "kind", prefix="event"),
        seq=seq,
        timestamp=parse_time(raw.get("@timestamp"), field="@timestamp"),
        uid=InstanceUid(_text(inst, "uid", prefix="instance")),
        instance_id=InstanceId(_text(inst, "id", prefix="instance")),
        tenant=TenantId(_text(inst, "tenant", prefix="instance")),
        region=Region(_text(inst, "region", prefix="instance")),
        cluster=str(inst.get("cluster") or ""),
        cpu=_size(inst, "cpu"),
        memory_gib=_size(inst, "memory_gib"),
        started_at=_optional_time(inst, "started_at"),
        stopped_at=_optional_time(inst, "stopped_at"),
        reason=reason if isinstance(reason, str) else None,
    )
