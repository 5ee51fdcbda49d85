"""Metering with hand-computed amounts.

Prices (see billing_factories): r1 bills 0.00001 per vCPU-second and 0.000001 per
GiB-second, so the default size (0.5 vCPU, 1 GiB) costs 0.000006 per second. r2 doubles
both prices at 2026-11-21T12:00:00Z (0.000012 per second for the default size).
Unless a case says otherwise the window is the UTC day 2026-11-21.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from billing.metering import (
    Flag,
    Window,
    billed_span,
    build_runs,
    meter_events,
    observe_events,
)
from billing.testing import parsed, prices, raw_event, run_events, t

DAY = Window(t("11-21 00:00:00"), t("11-22 00:00:00"))


@dataclass
class Case:
    events: list[dict[str, Any]]
    # expected per day: (seconds, amount)
    days: dict[str, tuple[int, str]]
    window: Window = DAY
    flags: set[Flag] = field(default_factory=set)
    lines: int | None = None  # expected number of line items over all records
    ended_at: datetime | None = None


def _shuffled(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    copy = list(events)
    random.Random(7).shuffle(copy)
    return copy


SIMPLE = run_events(t("11-21 10:00:00"), t("11-21 10:30:00.2"))
SIMPLE_HB = run_events(
    t("11-21 10:00:00"),
    t("11-21 10:30:00.2"),
    heartbeats=(t("11-21 10:10:00"), t("11-21 10:20:00")),
)
MISSING_STOP = run_events(
    t("11-21 10:00:00"),
    None,
    heartbeats=(t("11-21 10:01:00"), t("11-21 10:03:00"), t("11-21 10:05:00")),
)
TWO_RUNS = run_events(t("11-21 10:00:00"), t("11-21 10:10:00")) + run_events(
    t("11-21 12:00:00"), t("11-21 12:20:00"), seq=10
)
RESIZED = run_events(t("11-21 10:00:00"), t("11-21 10:10:00")) + run_events(
    t("11-21 12:00:00"), t("11-21 12:20:00"), seq=10, cpu="2", memory_gib="4"
)

CASES = {
    # 1801 s (1800.2 rounded up) * 0.000006 = 0.010806
    "simple": Case(SIMPLE_HB, {"2026-11-21": (1801, "0.010806")}, lines=1),
    # window [00:00, 12:00); run 11:00 → 13:00: 3600 s in the window = 0.0216
    "ends-after-window": Case(
        run_events(t("11-21 11:00:00"), t("11-21 13:00:00")),
        {"2026-11-21": (3600, "0.021600")},
        window=Window(t("11-21 00:00:00"), t("11-21 12:00:00")),
    ),
    # run 11-20 23:00 → 11-22 01:00 covers the whole window: 86400 s = 0.5184
    "covers-window": Case(
        run_events(t("11-20 23:00:00"), t("11-22 01:00:00")),
        {"2026-11-21": (86400, "0.518400")},
    ),
    # 10.7 s rounds up to 11 s on the grid [23:59:59, 00:00:10): the window gets 10 of
    # them (0.00006) and the previous day's window the 11th, never both.
    "fraction-at-window-start": Case(
        run_events(t("11-20 23:59:59.5"), t("11-21 00:00:10.2")),
        {"2026-11-21": (10, "0.000060")},
    ),
    # two-day window; 23:00 → 01:30: 3600 s (0.0216) + 5400 s (0.0324)
    "crosses-midnight": Case(
        run_events(t("11-21 23:00:00"), t("11-22 01:30:00")),
        {"2026-11-21": (3600, "0.021600"), "2026-11-22": (5400, "0.032400")},
        window=Window(t("11-21 00:00:00"), t("11-23 00:00:00")),
    ),
    # a container restart is liveness, not a stop: one run of 3600 s = 0.0216, one line
    "container-restart": Case(
        run_events(
            t("11-21 10:00:00"),
            t("11-21 11:00:00"),
            heartbeats=(t("11-21 10:05:00"), t("11-21 10:15:00")),
            restarts=(t("11-21 10:10:00"),),
        ),
        {"2026-11-21": (3600, "0.021600")},
        lines=1,
    ),
    # every event shipped twice (same ids): still 1801 s
    "duplicated-events": Case(SIMPLE_HB + SIMPLE_HB, {"2026-11-21": (1801, "0.010806")}),
    # the controller re-emitted the stop under a new id and seq: ignored
    "stop-reemitted-new-id": Case(
        [
            *SIMPLE,
            raw_event(
                "instance.stopped",
                9,
                t("11-21 10:31:00"),
                started_at=t("11-21 10:00:00"),
                stopped_at=t("11-21 10:30:00.2"),
            ),
        ],
        {"2026-11-21": (1801, "0.010806")},
    ),
    # arrival order is irrelevant; seq decides
    "out-of-order": Case(_shuffled(SIMPLE_HB), {"2026-11-21": (1801, "0.010806")}),
    # no stop: closed at the last heartbeat 10:05:00 → 300 s = 0.0018, flagged
    "missing-stop": Case(MISSING_STOP, {"2026-11-21": (300, "0.001800")}, flags={Flag.MISSING_STOP}),
    # no stop, Kubernetes says it ended 10:05:30.5 → 330.5 s → 331 s = 0.001986
    "missing-stop-kubernetes-end": Case(
        MISSING_STOP,
        {"2026-11-21": (331, "0.001986")},
        flags={Flag.ENDED_BY_KUBERNETES},
        ended_at=t("11-21 10:05:30.5"),
    ),
    # still running: a heartbeat after the window end proves it, so no flag and the
    # window is billed to its end: 23:00 → 24:00 = 3600 s = 0.0216
    "still-running": Case(
        run_events(t("11-21 23:00:00"), None, heartbeats=(t("11-22 00:00:30"),)),
        {"2026-11-21": (3600, "0.021600")},
    ),
    # 600 s + 1200 s = 1800 s = 0.0108, one line per run
    "two-runs": Case(TWO_RUNS, {"2026-11-21": (1800, "0.010800")}, lines=2),
    # 600 s at 0.000006 (0.0036) + 1200 s at 2*0.00001 + 4*0.000001 = 0.000024 (0.0288)
    "size-change-between-runs": Case(RESIZED, {"2026-11-21": (1800, "0.032400")}, lines=2),
    # r2 doubles at 12:00: 11:30 → 12:30 = 1800 s * 0.000006 + 1800 s * 0.000012
    # = 0.0108 + 0.0216 = 0.0324, split into two lines
    "price-change-in-window": Case(
        run_events(t("11-21 11:30:00"), t("11-21 12:30:00"), region="r2"),
        {"2026-11-21": (3600, "0.032400")},
        lines=2,
    ),
    # the start event was lost: the stop's started_at opens the run (3600 s), flagged
    "missing-start": Case(
        run_events(t("11-21 10:00:00"), t("11-21 11:00:00"))[2:],
        {"2026-11-21": (3600, "0.021600")},
        flags={Flag.MISSING_START},
    ),
    # a stray stop claims 10:15 → 10:45 after the run 10:00 → 10:30 was closed: only
    # 10:30 → 10:45 is new, so 1800 + 900 = 2700 s = 0.0162
    "overlap-billed-once": Case(
        [
            *run_events(t("11-21 10:00:00"), t("11-21 10:30:00")),
            raw_event(
                "instance.stopped",
                20,
                t("11-21 10:45:00"),
                started_at=t("11-21 10:15:00"),
                stopped_at=t("11-21 10:45:00"),
            ),
        ],
        {"2026-11-21": (2700, "0.016200")},
        flags={Flag.MISSING_START, Flag.OVERLAP_TRIMMED},
    ),
    # stopped before the window: nothing
    "before-window": Case(run_events(t("11-20 10:00:00"), t("11-20 11:00:00")), {}),
    # never started (queued then deleted): nothing
    "never-started": Case(
        [
            raw_event("instance.created", 1, t("11-21 10:00:00")),
            raw_event("instance.queued", 2, t("11-21 10:00:01")),
            raw_event("instance.deleted", 3, t("11-21 10:05:00")),
        ],
        {},
    ),
    # clock skew put the stop before the start: zero seconds, never negative
    "stop-before-start": Case(
        [
            raw_event("instance.started", 1, t("11-21 10:00:00"), started_at=t("11-21 10:00:00")),
            raw_event(
                "instance.stopped",
                2,
                t("11-21 09:59:58"),
                started_at=t("11-21 10:00:00"),
                stopped_at=t("11-21 09:59:58"),
            ),
        ],
        {},
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_meter_instance(case: Case) -> None:
    usage = meter_events(parsed(case.events), prices(), case.window, ended_at=case.ended_at)

    got = {r.day.isoformat(): (r.seconds, str(r.amount)) for r in usage.records}
    assert got == case.days
    flags = {flag for run in usage.flagged for flag in run.flags}
    assert flags == case.flags
    for record in usage.records:
        assert record.seconds == sum(line.seconds for line in record.lines)
        assert record.amount == sum(line.amount for line in record.lines)
        assert record.record_id == f"uid-1-{record.day.isoformat()}"
    if case.lines is not None:
        assert sum(len(r.lines) for r in usage.records) == case.lines


def test_size_change_quantities() -> None:
    (record,) = meter_events(parsed(RESIZED), prices(), DAY).records
    # 600 s * 0.5 + 1200 s * 2 vCPU; 600 s * 1 + 1200 s * 4 GiB
    assert (record.vcpu_seconds, record.gib_seconds) == (Decimal("2700.0"), Decimal(5400))
    assert [(line.cpu, line.amount) for line in record.lines] == [
        (Decimal("0.5"), Decimal("0.003600")),
        (Decimal("2"), Decimal("0.028800")),
    ]


def test_price_change_lines() -> None:
    events = run_events(t("11-21 11:30:00"), t("11-21 12:30:00"), region="r2")
    (record,) = meter_events(parsed(events), prices(), DAY).records
    assert [(line.start, line.end, line.amount) for line in record.lines] == [
        (t("11-21 11:30:00"), t("11-21 12:00:00"), Decimal("0.010800")),
        (t("11-21 12:00:00"), t("11-21 12:30:00"), Decimal("0.021600")),
    ]


@pytest.mark.parametrize(
    ("start", "end", "span"),
    [
        ("11-21 10:00:00", "11-21 10:00:00", (0, 0)),
        ("11-21 10:00:00", "11-21 10:00:00.001", (0, 1)),
        ("11-21 10:00:00", "11-21 10:00:01", (0, 1)),
        ("11-21 10:00:00.9", "11-21 10:00:02", (0, 2)),  # 1.1 s → 2 s
        ("11-21 10:00:00.5", "11-21 10:00:01.5", (0, 1)),  # exactly 1 s stays 1 s
    ],
    ids=["zero", "one-ms", "one-second", "fraction-up", "exact-offset"],
)
def test_billed_span_rounds_up_once(start: str, end: str, span: tuple[int, int]) -> None:
    (run,) = build_runs(observe_events(parsed(run_events(t(start), t(end)))), window=DAY)
    base = int(t("11-21 10:00:00").timestamp())
    first, last = billed_span(run)
    assert (first - base, last - base) == span


def test_window_pieces_add_up_to_the_whole_run() -> None:
    """Billing a run hour by hour gives exactly what billing it at once gives."""
    events = parsed(run_events(t("11-21 09:59:59.7"), t("11-21 13:00:00.4")))
    whole = meter_events(events, prices(), DAY).records[0]
    hourly = [
        meter_events(events, prices(), Window(t(f"11-21 {h:02}:00:00"), t(f"11-21 {h + 1:02}:00:00")))
        for h in range(9, 13)
    ]
    assert sum(r.seconds for u in hourly for r in u.records) == whole.seconds == 10801
    assert sum(r.amount for u in hourly for r in u.records) == whole.amount


def test_missing_stop_is_reported_with_its_times() -> None:
    usage = meter_events(parsed(MISSING_STOP), prices(), DAY)
    (run,) = usage.flagged
    assert (run.start, run.end, run.flags) == (
        t("11-21 10:00:00"),
        t("11-21 10:05:00"),
        frozenset({Flag.MISSING_STOP}),
    )
    assert usage.needs_end_time


def test_restart_without_stop_closes_previous_run_at_its_heartbeat() -> None:
    first = run_events(t("11-21 10:00:00"), None, heartbeats=(t("11-21 10:02:00"),))
    second = run_events(t("11-21 11:00:00"), t("11-21 11:10:00"), seq=10)
    usage = meter_events(parsed(first + second), prices(), DAY)
    assert [r.seconds for r in usage.records] == [120 + 600]
    assert [sorted(run.flags) for run in usage.runs] == [[Flag.MISSING_STOP], []]


def test_window_must_be_whole_seconds() -> None:
    with pytest.raises(ValueError, match="whole second"):
        Window(t("11-21 00:00:00.5"), t("11-22 00:00:00"))
    with pytest.raises(ValueError, match="before its end"):
        Window(t("11-22 00:00:00"), t("11-21 00:00:00"))


def test_heartbeats_numbered_on_their_own_grid_do_not_reorder_a_run() -> None:
    """CIS numbers heartbeats by their time grid (huge seq values), not after the stop."""
    events = run_events(t("11-21 10:00:00"), t("11-21 11:00:00"), heartbeats=(t("11-21 10:30:00"),))
    grid = [raw_event("instance.running", 29_443_830 + i, t("11-21 10:40:00"), started_at=t("11-21 10:00:00"))
            for i in range(3)]  # fmt: skip
    (record,) = meter_events(parsed(events + grid), prices(), DAY).records
    assert (record.seconds, record.amount, record.flags) == (3600, Decimal("0.021600"), ())
