"""Reconciliation: do the stored usage records match what the events say?

Checks, for the days of a window, that every instance that ran has usage and every usage
record has an instance that ran, and that the seconds and amounts agree. It meters the
events exactly like a run would (without writing anything) and compares page by page
with the stored records, then sweeps the stored records of instances that never appeared
in the events. Differences are returned, never fixed: rerunning the billing fixes them.

Compare like with like: a record covers usage up to its run's window end, so reconcile
with the same window the run used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from elasticsearch import AsyncElasticsearch

from billing import store
from billing.events import format_time
from billing.metering import Window
from billing.prices import PriceTable
from billing.runner import RunSummary, billing_window, meter_page
from billing.usage import split_record_id

Amounts = tuple[int, Decimal]  # (seconds, amount)


class DifferenceKind(StrEnum):
    MISSING_USAGE = "missing_usage"  # the instance ran, no record
    ORPHAN_USAGE = "orphan_usage"  # a record, but no run in the events
    MISMATCH = "mismatch"  # both exist, seconds or amount differ (stale record)


@dataclass(frozen=True, slots=True)
class Difference:
    kind: DifferenceKind
    record_id: str
    day: date
    expected: Amounts | None
    stored: Amounts | None

    def to_json(self) -> dict[str, Any]:
        def pair(value: Amounts | None) -> dict[str, Any] | None:
            return None if value is None else {"seconds": value[0], "amount": str(value[1])}

        return {
            "kind": str(self.kind),
            "recordId": self.record_id,
            "day": self.day.isoformat(),
            "expected": pair(self.expected),
            "stored": pair(self.stored),
        }


@dataclass(slots=True)
class ReconcileReport:
    window: Window
    instances: int = 0
    records_checked: int = 0
    differences: list[Difference] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences and not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {
                "start": format_time(self.window.start),
                "end": format_time(self.window.end),
            },
            "instances": self.instances,
            "recordsChecked": self.records_checked,
            "ok": self.ok,
            "differences": [d.to_json() for d in self.differences],
            "errors": self.errors,
        }


def diff_records(expected: Mapping[str, Amounts], stored: Mapping[str, Amounts]) -> list[Difference]:
    """Pure comparison of two `record_id → (seconds, amount)` maps, sorted by record id."""
    result: list[Difference] = []
    for record_id in sorted(expected.keys() | stored.keys()):
        want, have = expected.get(record_id), stored.get(record_id)
        if want == have:
            continue
        if have is None:
            kind = DifferenceKind.MISSING_USAGE
        elif want is None:
            kind = DifferenceKind.ORPHAN_USAGE
        else:
            kind = DifferenceKind.MISMATCH
        result.append(Difference(kind, record_id, split_record_id(record_id)[1], want, have))
    return result


async def reconcile(
    es: AsyncElasticsearch,
    prices: PriceTable,
    window_start: datetime,
    window_end: datetime,
    *,
    indices: store.Indices = store.DEFAULT_INDICES,
    settings: store.ScanSettings = store.DEFAULT_SCAN,
) -> ReconcileReport:
    """Compare the events of the window's days with the usage records stored for them."""
    window = billing_window(window_start, window_end)
    days = window.days()
    report = ReconcileReport(window=window)
    scratch = RunSummary(window=window)  # collects pricing problems while metering
    stored = {
        rid: (usage.seconds, usage.amount)
        for rid, usage in (await store.stored_usage(es, days[0], days[-1], indices.usage)).items()
    }
    report.records_checked = len(stored)
    expected: dict[str, Amounts] = {}
    unpriced: set[str] = set()  # already in `errors`; their records stay unjudged
    async with store.RunScan(es, window.start, window.end, indices=indices, settings=settings) as scan:
        async with contextlib.aclosing(scan.pages()) as pages:
            async for page in pages:
                report.instances += len(page.runs)
                for uid, usage in (await meter_page(page, prices, window, scratch, None)).items():
                    if usage is None:
                        unpriced.add(uid)
                        continue
                    for record in usage.records:
                        rid = record.record_id
                        expected[rid] = (record.seconds, record.amount)
                        # Compare as we go so both maps only hold what still differs.
                        if stored.get(rid) == expected[rid]:
                            del stored[rid], expected[rid]
    for rid in [rid for rid in stored if split_record_id(rid)[0] in unpriced]:
        del stored[rid]
    report.differences = diff_records(expected, stored)
    report.errors.extend(scratch.errors)
    return report
