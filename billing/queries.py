"""Elasticsearch request bodies of the billing store, and parsing of their results.

Pure functions, kept apart from `store.py` so the selection logic is readable and tested
without a cluster. Only core features are used (the minimal distribution has no painless,
no ingest, no top_metrics).

Billing reads *runs*, not events: a composite aggregation groups the events of a window
by (instance uid, started_at, size, tenant, region, instance id, cluster) and computes
per run the latest `stopped_at`, whether a start event exists and the latest liveness
time. That is exactly the reduction `metering.observe_events` performs on plain events,
done where the data is: deduplication by event id and order-independence come free,
heartbeats never cross the wire, and the result streams in uid order, page by page.

Which events a window `[ws, we)` needs (horizon `h` past its end):
  * starts with `started_at` in the window (a missing start is flagged where it belongs);
  * stops of runs that started before `we` and stopped at or after `ws`;
  * liveness in `[ws, we + h)` of runs started before `we`: older heartbeats cannot add
    billable seconds, and one heartbeat past `we` proves "still running".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from billing.errors import InvalidEvent
from billing.events import (
    LIVENESS_KINDS,
    EventKind,
    InstanceId,
    InstanceUid,
    Region,
    TenantId,
    format_time,
)
from billing.metering import RunObservation

_LIVENESS = sorted(str(kind) for kind in LIVENESS_KINDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Below 2**33 seconds (the year 2242) a float of seconds has a spacing under half a
# microsecond, so whole milliseconds survive the trip through a float.
_FLOAT_EXACT_MS = 2**33 * 1000

# What billing requires of the `cis-events-*` mapping (the index template is owned by
# cis_logging; tests and the benchmark create their indices with exactly this).
EVENTS_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date"},
        "event": {
            "properties": {
                "id": {"type": "keyword"},
                "kind": {"type": "keyword"},
                "seq": {"type": "long"},
            }
        },
        "instance": {
            "properties": {
                "id": {"type": "keyword"},
                "uid": {"type": "keyword"},
                "tenant": {"type": "keyword"},
                "region": {"type": "keyword"},
                "cluster": {"type": "keyword"},
                "cpu": {"type": "keyword"},
                "memory_gib": {"type": "keyword"},
                "started_at": {"type": "date"},
                "stopped_at": {"type": "date"},
                "reason": {"type": "keyword"},
            }
        },
    },
}


# ... and of its settings: events sorted by run, in the order of the runs aggregation's
# leading sources. Elasticsearch then ends each composite page as soon as it has passed
# the page's last run, instead of visiting every event the window query matches on every
# page (for a million events, most of a billing run's reading time).
EVENTS_INDEX_SORT: dict[str, Any] = {
    "index.sort.field": ["instance.uid", "instance.started_at"],
    "index.sort.order": ["asc", "asc"],
}


def _range(field: str, **bounds: datetime) -> dict[str, Any]:
    return {"range": {field: {op: format_time(value) for op, value in bounds.items()}}}


def runs_query(ws: datetime, we: datetime, horizon: timedelta) -> dict[str, Any]:
    """The events that describe the runs overlapping `[ws, we)` (see module docstring)."""
    return {
        "bool": {
            "should": [
                {
                    "bool": {
                        "filter": [
                            {"term": {"event.kind": EventKind.STARTED.value}},
                            _range("instance.started_at", gte=ws, lt=we),
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"term": {"event.kind": EventKind.STOPPED.value}},
                            _range("instance.started_at", lt=we),
                            _range("instance.stopped_at", gte=ws),
                        ]
                    }
                },
                {
                    "bool": {
                        "filter": [
                            {"terms": {"event.kind": _LIVENESS}},
                            _range("instance.started_at", lt=we),
                            _range("@timestamp", gte=ws, lt=we + horizon),
                        ]
                    }
                },
            ],
            "minimum_should_match": 1,
        }
    }


# Composite sources: uid first (pages follow uid order, so an instance's runs are
# adjacent), then started_at (one bucket per run); the rest is constant per run and only
# carried along.
_SOURCES = [
    ("uid", "instance.uid"),
    ("started_at", "instance.started_at"),
    ("cpu", "instance.cpu"),
    ("memory_gib", "instance.memory_gib"),
    ("tenant", "instance.tenant"),
    ("region", "instance.region"),
    ("id", "instance.id"),
    ("cluster", "instance.cluster"),
]
RUNS_FILTER_PATH = (
    "pit_id,aggregations.runs.after_key,aggregations.runs.buckets.key,"
    "aggregations.runs.buckets.doc_count,aggregations.runs.buckets.stopped.value,"
    "aggregations.runs.buckets.starts.doc_count,aggregations.runs.buckets.live.last.value"
)


def runs_agg(size: int, after: dict[str, Any] | None) -> dict[str, Any]:
    """One page of runs (see module docstring); `size` runs per page."""
    composite: dict[str, Any] = {
        "size": size,
        "sources": [{name: {"terms": {"field": field}}} for name, field in _SOURCES],
    }
    if after is not None:
        composite["after"] = after
    return {
        "runs": {
            "composite": composite,
            "aggs": {
                "stopped": {"max": {"field": "instance.stopped_at"}},
                "starts": {"filter": {"term": {"event.kind": EventKind.STARTED.value}}},
                "live": {
                    "filter": {"terms": {"event.kind": _LIVENESS}},
                    "aggs": {"last": {"max": {"field": "@timestamp"}}},
                },
            },
        }
    }


def _millis(value: object, field: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidEvent(f"expected epoch milliseconds, got {value!r:.40}", field=field)
    ms = int(value)
    if abs(ms) < _FLOAT_EXACT_MS:
        # Within half a microsecond of the true value, so rounding to microseconds
        # gives it exactly; about half the cost of the timedelta sum (three per run).
        return datetime.fromtimestamp(ms / 1000, UTC)
    try:
        return _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        raise InvalidEvent(f"epoch milliseconds out of range: {value!r:.40}", field=field) from None


@functools.lru_cache(maxsize=1024)
def _decimal(value: str, field: str) -> Decimal:
    # Cached: sizes come from a small table, and every run carries two of them.
    try:
        size = Decimal(value)
    except InvalidOperation:
        raise InvalidEvent(f"not a decimal: {value!r:.40}", field=field) from None
    if not size.is_finite() or size <= 0:
        raise InvalidEvent(f"must be a positive decimal, got {value!r:.40}", field=field)
    return size


def observation_from_bucket(bucket: Mapping[str, Any]) -> RunObservation:
    """One composite bucket → one run; raises `InvalidEvent` for values metering cannot use."""
    key = bucket["key"]
    stopped = bucket.get("stopped", {}).get("value")
    last = bucket.get("live", {}).get("last", {}).get("value")
    return RunObservation(
        uid=InstanceUid(str(key["uid"])),
        instance_id=InstanceId(str(key["id"])),
        tenant=TenantId(str(key["tenant"])),
        region=Region(str(key["region"])),
        cluster=str(key["cluster"]),
        cpu=_decimal(str(key["cpu"]), "instance.cpu"),
        memory_gib=_decimal(str(key["memory_gib"]), "instance.memory_gib"),
        started_at=_millis(key["started_at"], "instance.started_at"),
        has_start=bucket.get("starts", {}).get("doc_count", 0) > 0,
        stopped_at=None if stopped is None else _millis(stopped, "instance.stopped_at"),
        last_seen=None if last is None else _millis(last, "@timestamp"),
    )


def usage_days_query(first_day: date, last_day: date, *, tenant: TenantId | None = None) -> dict[str, Any]:
    """Usage records with `first_day <= day <= last_day`, optionally of one tenant."""
    filters: list[dict[str, Any]] = [{"range": {"day": {"gte": first_day.isoformat(), "lte": last_day.isoformat()}}}]
    if tenant is not None:
        filters.append({"term": {"instance.tenant": tenant}})
    return {"bool": {"filter": filters}}


def stored_usage_agg(size: int, after: dict[str, Any] | None) -> dict[str, Any]:
    """Pages of (record id, seconds, amount, digest) of usage records, from doc values."""
    composite: dict[str, Any] = {
        "size": size,
        "sources": [
            {"id": {"terms": {"field": "record_id"}}},
            # missing_bucket: a record lacking a field (hand-made, older) must still be
            # seen, or it could neither be compared nor swept away.
            {"seconds": {"terms": {"field": "seconds", "missing_bucket": True}}},
            {"micros": {"terms": {"field": "amount_micros", "missing_bucket": True}}},
            {"digest": {"terms": {"field": "digest", "missing_bucket": True}}},
        ],
    }
    if after is not None:
        composite["after"] = after
    return {"records": {"composite": composite}}
