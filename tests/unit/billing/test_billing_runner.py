"""Runner arithmetic and seams: windows, the loop schedule, end times, reconciliation diff."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import elasticsearch
import pytest

from billing import queries
from billing.events import InstanceUid
from billing.metering import Flag, Window, observe_events
from billing.reconcile import DifferenceKind, diff_records
from billing.runner import RunSummary, billing_window, meter_page, next_window, run_forever
from billing.store import RunPage
from billing.testing import parsed, prices, run_events, t


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [
        ("11-21 10:00:00", "11-21 11:00:00", ("11-21 00:00:00", "11-21 11:00:00")),
        ("11-21 00:00:00", "11-23 00:00:00", ("11-21 00:00:00", "11-23 00:00:00")),
        ("11-21 23:59:59.9", "11-22 00:00:00.7", ("11-21 00:00:00", "11-22 00:00:00")),
    ],
    ids=["widened-to-midnight", "whole-days", "fractions-dropped"],
)
def test_billing_window_covers_whole_days_from_the_start(start: str, end: str, window: tuple[str, str]) -> None:
    assert billing_window(t(start), t(end)) == Window(t(window[0]), t(window[1]))


def test_billing_window_needs_timezones() -> None:
    with pytest.raises(ValueError, match="timezone"):
        billing_window(datetime(2026, 11, 21), t("11-22 00:00:00"))


HOUR, QUARTER = timedelta(hours=1), timedelta(minutes=15)


@pytest.mark.parametrize(
    ("now", "interval", "lateness", "window"),
    [
        ("11-21 10:20:00", HOUR, QUARTER, ("11-20 10:00:00", "11-21 10:00:00")),
        ("11-21 10:14:59", HOUR, QUARTER, ("11-20 09:00:00", "11-21 09:00:00")),
        ("11-21 00:10:00", timedelta(minutes=5), QUARTER, ("11-19 23:55:00", "11-20 23:55:00")),
    ],
    ids=["after-lateness", "inside-lateness", "across-midnight"],
)
def test_next_window(now: str, interval: timedelta, lateness: timedelta, window: tuple[str, str]) -> None:
    got = next_window(t(now), interval=interval, lateness=lateness, rebill=timedelta(days=1))
    assert got == (t(window[0]), t(window[1]))


class _DownIndices:
    async def exists(self, **_: Any) -> bool:
        raise elasticsearch.ConnectionError("connection refused")


class _DownElasticsearch:
    """An Elasticsearch that is unreachable: the loop must survive it and try again."""

    indices = _DownIndices()


async def test_run_forever_survives_failures_and_sleeps_until_the_next_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [t("11-21 10:20:00")]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += timedelta(seconds=seconds)

    await run_forever(
        _DownElasticsearch(),  # type: ignore[arg-type]
        prices(),
        interval=timedelta(hours=1),
        lateness=timedelta(minutes=15),
        clock=lambda: now[0],
        sleep=sleep,
        iterations=3,
    )
    # window ends 10:00, next is due at 11:00 + 15 min lateness: 55 min after 10:20
    assert sleeps == [55 * 60, 3600]
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert failures == [
        "billing run 2026-11-20T10:00:00.000Z..2026-11-21T10:00:00.000Z failed",
        "billing run 2026-11-20T11:00:00.000Z..2026-11-21T11:00:00.000Z failed",
        "billing run 2026-11-20T12:00:00.000Z..2026-11-21T12:00:00.000Z failed",
    ]


class _Kubernetes:
    """An EndTimeSource that knows when one instance's pod finished."""

    def __init__(self, ended: Mapping[str, datetime]) -> None:
        self.ended = ended
        self.asked: list[list[str]] = []

    async def __call__(self, uids: Sequence[InstanceUid]) -> Mapping[InstanceUid, datetime]:
        self.asked.append(list(uids))
        return {InstanceUid(u): self.ended[u] for u in uids if u in self.ended}


async def test_meter_page_asks_kubernetes_only_about_missing_stops() -> None:
    window = Window(t("11-21 00:00:00"), t("11-22 00:00:00"))
    no_stop = run_events(t("11-21 10:00:00"), None, uid="a", heartbeats=(t("11-21 10:01:00"),))
    complete = run_events(t("11-21 10:00:00"), t("11-21 10:10:00"), uid="b")
    unpriced = run_events(t("11-21 10:00:00"), t("11-21 10:10:00"), uid="c", region="nowhere")
    page = RunPage(
        runs={
            uid: observe_events(parsed(events)) for uid, events in (("a", no_stop), ("b", complete), ("c", unpriced))
        },
        events=42,
        invalid=["{'uid': 'd'}: instance.cpu: not a decimal"],
    )
    kubernetes = _Kubernetes({"a": t("11-21 10:30:00")})
    summary = RunSummary(window=window)

    results = await meter_page(page, prices(), window, summary, kubernetes)

    assert kubernetes.asked == [["a"]]
    usage_a, usage_b = results["a"], results["b"]
    assert usage_a is not None and usage_b is not None
    # closed where Kubernetes says: 1800 s = 0.0108, flagged as such
    assert [(r.seconds, r.amount) for r in usage_a.records] == [(1800, Decimal("0.010800"))]
    assert {f for run in usage_a.flagged for f in run.flags} == {Flag.ENDED_BY_KUBERNETES}
    assert [r.seconds for r in usage_b.records] == [600]
    assert results["c"] is None and "nowhere" in summary.errors[0]
    assert (summary.invalid, summary.events) == (1, 42)


def test_diff_records() -> None:
    same = (10, Decimal("0.1"))
    expected = {"u1-2026-11-21": same, "u2-2026-11-21": (5, Decimal("0.05"))}
    stored = {
        "u1-2026-11-21": same,
        "u2-2026-11-21": (4, Decimal("0.04")),
        "u3-2026-11-21": (1, Decimal("0.01")),
    }
    diffs = diff_records(expected, stored)
    assert [(d.kind, d.record_id) for d in diffs] == [
        (DifferenceKind.MISMATCH, "u2-2026-11-21"),
        (DifferenceKind.ORPHAN_USAGE, "u3-2026-11-21"),
    ]
    assert diff_records(stored, {})[0].kind is DifferenceKind.MISSING_USAGE


def test_runs_query_selects_starts_stops_and_liveness_of_the_window() -> None:
    ws, we = datetime(2026, 11, 21, tzinfo=UTC), datetime(2026, 11, 22, tzinfo=UTC)
    starts, stops, liveness = queries.runs_query(ws, we, timedelta(hours=1))["bool"]["should"]
    day, next_day = "2026-11-21T00:00:00.000Z", "2026-11-22T00:00:00.000Z"
    assert starts["bool"]["filter"][1] == {"range": {"instance.started_at": {"gte": day, "lt": next_day}}}
    assert stops["bool"]["filter"][2] == {"range": {"instance.stopped_at": {"gte": day}}}
    assert liveness["bool"]["filter"][2] == {"range": {"@timestamp": {"gte": day, "lt": "2026-11-22T01:00:00.000Z"}}}
