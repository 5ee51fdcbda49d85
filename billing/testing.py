"""Builders of lifecycle events and a round-number price table, for tests and benchmarks.

Events follow DESIGN section 4 exactly, so the same dicts are valid Elasticsearch
documents: the unit tests parse them, the integration test and `bench/bench_billing.py`
index them. Like `aiohttp.test_utils`, this ships with the package but production code
never imports it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from billing.events import LifecycleEvent, parse_event
from billing.prices import PriceTable, parse_prices


# Round numbers make amounts easy to compute by hand: at 0.5 vCPU and 1 GiB one second
# costs 0.5 * 0.00001 + 1 * 0.000001 = 0.000006.
def _version(effective_from: str, vcpu_second: str, gib_second: str) -> dict[str, str]:
    return {"effective_from": effective_from, "vcpu_second": vcpu_second, "gib_second": gib_second}


TEST_PRICES: dict[str, Any] = {
    "currency": "USD",
    "regions": {
        "r1": [_version("2026-01-01T00:00:00Z", "0.00001", "0.000001")],
        # r2 doubles its prices at noon on 2026-11-21.
        "r2": [
            _version("2026-01-01T00:00:00Z", "0.00001", "0.000001"),
            _version("2026-11-21T12:00:00Z", "0.00002", "0.000002"),
        ],
    },
}


def prices() -> PriceTable:
    return parse_prices(TEST_PRICES)


def t(text: str) -> datetime:
    """`"11-21 10:00:00.5"` → 2026-11-21T10:00:00.5Z (tests live in November 2026)."""
    return datetime.fromisoformat(f"2026-{text}".replace(" ", "T")).replace(tzinfo=UTC)


def event_id(uid: str, kind: str, seq: int) -> str:
    return hashlib.sha256(f"{uid}|{kind}|{seq}".encode()).hexdigest()[:32]


def raw_event(
    kind: str,
    seq: int,
    at: datetime,
    *,
    uid: str = "uid-1",
    instance_id: str = "ci-one",
    tenant: str = "acme",
    region: str = "r1",
    cluster: str = "kind-a",
    cpu: str = "0.5",
    memory_gib: str = "1",
    started_at: datetime | None = None,
    stopped_at: datetime | None = None,
    reason: str | None = None,
    eid: str | None = None,
) -> dict[str, Any]:
    def fmt(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat().replace("+00:00", "Z")

    return {
        "@timestamp": fmt(at),
        "event": {"id": eid or event_id(uid, kind, seq), "kind": kind, "seq": seq},
        "instance": {
            "id": instance_id,
            "uid": uid,
            "tenant": tenant,
            "region": region,
            "cluster": cluster,
            "cpu": cpu,
            "memory_gib": memory_gib,
            "started_at": fmt(started_at),
            "stopped_at": fmt(stopped_at),
            "reason": reason,
        },
    }


def run_events(
    start: datetime,
    stop: datetime | None,
    *,
    seq: int = 1,
    heartbeats: tuple[datetime, ...] = (),
    restarts: tuple[datetime, ...] = (),
    **common: Any,
) -> list[dict[str, Any]]:
    """created → started → heartbeats/restarts (in time order) → stopped, with rising seq."""
    events = [raw_event("instance.created", seq, start, **common)]
    events.append(raw_event("instance.started", seq + 1, start, started_at=start, **common))
    n = seq + 2
    middle = sorted([(h, "instance.running") for h in heartbeats] + [(r, "container.restarted") for r in restarts])
    for at, kind in middle:
        events.append(raw_event(kind, n, at, started_at=start, **common))
        n += 1
    if stop is not None:
        events.append(
            raw_event(
                "instance.stopped",
                n,
                stop,
                started_at=start,
                stopped_at=stop,
                reason="Completed",
                **common,
            )
        )
    return events


def parsed(raws: list[dict[str, Any]]) -> list[LifecycleEvent]:
    return [parse_event(raw) for raw in raws]
