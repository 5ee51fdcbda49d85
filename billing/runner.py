"""The billing run: events in Elasticsearch → metering → usage records in Elasticsearch.

`run_billing` bills one window once; `run_forever` re-bills the most recent closed windows
at a fixed interval (the loop / CronJob mode). Both take every outside dependency as a
parameter (client, prices, clock, sleep, the optional Kubernetes end-time lookup), so the
scheduling arithmetic is tested as numbers.

A run always covers whole UTC days from the day of `window_start`: a usage record holds
one instance's whole day, so billing only part of a day would overwrite the record with a
part of its usage. The window end is the "as of" point: records of the last day cover
usage up to it, and a later run with a later end completes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from elasticsearch import AsyncElasticsearch

from billing import store
from billing.errors import BillingError, InvalidInput
from billing.events import InstanceUid, format_time
from billing.metering import DAY, InstanceUsage, Run, Window, meter_instance
from billing.prices import PriceTable, epoch_seconds, from_epoch
from billing.usage import EncodedRecord, split_record_id

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]
MAX_LISTED_FLAGS = 1000  # a summary lists this many flagged runs, and counts all of them
BULK_RECORDS = 2_000  # usage records per bulk request
WRITES_IN_FLIGHT = 2  # bulk requests at once: Elasticsearch indexes one while the next is built


class EndTimeSource(Protocol):
    """Optional: when Kubernetes says instances ended (pod terminated/finishedAt)."""

    async def __call__(self, uids: Sequence[InstanceUid]) -> Mapping[InstanceUid, datetime]: ...


def billing_window(window_start: datetime, window_end: datetime) -> Window:
    """The window a run really bills: from midnight UTC of the start day to the end second."""
    for name, value in (("from", window_start), ("to", window_end)):
        if value.tzinfo is None:
            raise InvalidInput("must carry a timezone (e.g. 'Z')", field=name)
    start = epoch_seconds(window_start)
    return Window(from_epoch(start - start % DAY), from_epoch(epoch_seconds(window_end)))


@dataclass(frozen=True, slots=True)
class FlaggedRun:
    uid: str
    instance_id: str
    tenant: str
    start: datetime
    end: datetime
    flags: tuple[str, ...]

    @classmethod
    def of(cls, run: Run) -> FlaggedRun:
        flags = tuple(sorted(str(f) for f in run.flags))
        return cls(run.uid, run.instance_id, run.tenant, run.start, run.end, flags)


@dataclass(slots=True)
class RunSummary:
    window: Window
    instances: int = 0
    events: int = 0  # events aggregated into runs
    invalid: int = 0  # runs skipped because their events are malformed
    records_written: int = 0
    records_unchanged: int = 0  # produced again with identical content: not rewritten
    records_deleted: int = 0
    seconds: int = 0
    amount: Decimal = Decimal("0.000000")
    flagged_count: int = 0
    flagged: list[FlaggedRun] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        return {
            "window": {
                "start": format_time(self.window.start),
                "end": format_time(self.window.end),
            },
            "instances": self.instances,
            "events": self.events,
            "invalid": self.invalid,
            "recordsWritten": self.records_written,
            "recordsUnchanged": self.records_unchanged,
            "recordsDeleted": self.records_deleted,
            "seconds": self.seconds,
            "amount": str(self.amount),
            "flaggedCount": self.flagged_count,
            "flagged": [
                {
                    "instanceUid": f.uid,
                    "instanceId": f.instance_id,
                    "tenant": f.tenant,
                    "start": format_time(f.start),
                    "end": format_time(f.end),
                    "flags": list(f.flags),
                }
                for f in self.flagged
            ],
            "errors": self.errors,
        }


async def meter_page(
    page: store.RunPage,
    prices: PriceTable,
    window: Window,
    summary: RunSummary,
    end_times: EndTimeSource | None,
) -> dict[str, InstanceUsage | None]:
    """Meter every instance of a page; None marks an instance that could not be priced."""
    summary.events += page.events
    summary.invalid += len(page.invalid)
    for problem in page.invalid[: max(0, 10 - summary.invalid + len(page.invalid))]:
        log.warning("skipping a run with malformed events: %s", problem)  # first ten only
    results: dict[str, InstanceUsage | None] = {}
    for uid, observations in page.runs.items():
        try:
            results[uid] = meter_instance(observations, prices, window)
        except BillingError as exc:
            summary.errors.append(f"instance {uid}: {exc}")
            log.error("cannot bill instance %s: %s", uid, exc)
            results[uid] = None
    if end_times is not None:
        # Ask Kubernetes once per page, only about runs whose stop is missing.
        missing = [InstanceUid(u) for u, r in results.items() if r is not None and r.needs_end_time]
        ended = await end_times(missing) if missing else {}
        for uid, ended_at in ended.items():
            with contextlib.suppress(BillingError):  # the first result already stands
                results[uid] = meter_instance(page.runs[uid], prices, window, ended_at=ended_at)
    return results


def _collect(
    usage: InstanceUsage, stored: dict[str, store.StoredUsage], buffer: list[EncodedRecord], summary: RunSummary
) -> None:
    """Account one instance's usage; queue the records whose content changed."""
    for record in usage.records:
        summary.seconds += record.seconds
        summary.amount += record.amount
        encoded = record.encode()
        before = stored.pop(encoded.record_id, None)
        if before is None or before.digest != encoded.digest:
            buffer.append(encoded)
        else:
            summary.records_unchanged += 1
    summary.flagged_count += len(usage.flagged)
    room = MAX_LISTED_FLAGS - len(summary.flagged)
    summary.flagged.extend(FlaggedRun.of(r) for r in usage.flagged[:room])


async def run_billing(
    es: AsyncElasticsearch,
    prices: PriceTable,
    window_start: datetime,
    window_end: datetime,
    *,
    indices: store.Indices = store.DEFAULT_INDICES,
    settings: store.ScanSettings = store.DEFAULT_SCAN,
    end_times: EndTimeSource | None = None,
    bulk_records: int = BULK_RECORDS,
    writes_in_flight: int = WRITES_IN_FLIGHT,
    progress: Callable[[RunSummary], None] | None = None,
) -> RunSummary:
    """Bill `[midnight of window_start, window_end)` and write its usage records.

    Idempotent: records are keyed by instance and day; a record whose content did not
    change is not rewritten, a changed one is overwritten, and records of the billed days
    that the events no longer support are deleted, so a rerun leaves exactly what the
    events say now. An instance that cannot be priced is reported in `errors` and its
    existing records are left alone.
    """
    window = billing_window(window_start, window_end)
    days = window.days()
    summary = RunSummary(window=window)
    await store.ensure_usage_index(es, indices.usage)
    # What is stored now; every record this run produces is taken out, the rest is stale.
    stored = await store.stored_usage(es, days[0], days[-1], indices.usage)
    keep: set[str] = set()  # instances that could not be billed keep their records
    buffer: list[EncodedRecord] = []
    # Bulk writes run in the background, at most `writes_in_flight` at once, so
    # Elasticsearch indexes one batch while Python meters the next page.
    gate = asyncio.Semaphore(writes_in_flight)

    async def write(records: list[EncodedRecord]) -> None:
        try:
            await store.write_usage(es, records, indices.usage)
        finally:
            gate.release()

    try:
        async with asyncio.TaskGroup() as writes:

            async def flush() -> None:
                if buffer:
                    await gate.acquire()
                    summary.records_written += len(buffer)
                    writes.create_task(write(buffer[:]), name="billing-usage-bulk")
                    buffer.clear()
                    await store.send_pending()  # indexing starts now, not after the page

            async with store.RunScan(es, window.start, window.end, indices=indices, settings=settings) as scan:
                async with contextlib.aclosing(scan.pages()) as pages:
                    async for page in pages:
                        summary.instances += len(page.runs)
                        metered = await meter_page(page, prices, window, summary, end_times)
                        for uid, usage in metered.items():
                            if usage is None:
                                keep.add(uid)
                            else:
                                _collect(usage, stored, buffer, summary)
                            if len(buffer) >= bulk_records:
                                await flush()
                        if progress is not None:
                            progress(summary)
            await flush()
    except ExceptionGroup as group:  # one failed write is the story; the others were cancelled
        raise group.exceptions[0] from None
    stale = [rid for rid in stored if split_record_id(rid)[0] not in keep]
    for start in range(0, len(stale), 5_000):
        await store.delete_usage(es, stale[start : start + 5_000], indices.usage)
    summary.records_deleted = len(stale)
    if stale:
        log.warning("deleted %d usage records the events no longer support", len(stale))
    await store.refresh_usage(es, indices.usage)
    log.info(
        "billed %s..%s: %d instances, %d records written, %d unchanged, %d s, amount %s, "
        "%d flagged, %d errors",
        format_time(window.start), format_time(window.end), summary.instances,
        summary.records_written, summary.records_unchanged, summary.seconds, summary.amount,
        summary.flagged_count, len(summary.errors),
    )  # fmt: skip
    return summary


# --- loop mode --------------------------------------------------------------------------------


def next_window(
    now: datetime, *, interval: timedelta, lateness: timedelta, rebill: timedelta
) -> tuple[datetime, datetime]:
    """The window a loop tick bills: up to the last interval boundary `lateness` ago.

    Ending `lateness` in the past gives late events (Filebeat backoff, an Elasticsearch
    outage) time to arrive; starting `rebill` earlier lets each tick correct the recent
    past. Boundaries are multiples of `interval` since the epoch, so reruns line up.
    """
    step = int(interval.total_seconds())
    if step < 1:
        raise InvalidInput("must be at least one second", field="interval")
    cutoff = epoch_seconds(now - lateness)
    end = from_epoch(cutoff - cutoff % step)
    return end - rebill, end


async def run_forever(
    es: AsyncElasticsearch,
    prices: PriceTable,
    *,
    interval: timedelta,
    lateness: timedelta,
    clock: Clock = lambda: datetime.now(UTC),
    sleep: Sleep = asyncio.sleep,
    rebill: timedelta = timedelta(days=1),
    indices: store.Indices = store.DEFAULT_INDICES,
    settings: store.ScanSettings = store.DEFAULT_SCAN,
    end_times: EndTimeSource | None = None,
    iterations: int | None = None,
) -> None:
    """Bill the recent closed windows every `interval` until cancelled (or `iterations`)."""
    done = 0
    while iterations is None or done < iterations:
        start, end = next_window(clock(), interval=interval, lateness=lateness, rebill=rebill)
        try:
            summary = await run_billing(es, prices, start, end, indices=indices, settings=settings, end_times=end_times)
            if not summary.ok:
                log.error("billing run finished with %d errors", len(summary.errors))
        except Exception:  # one failed tick (ES down) must not end the loop; next tick retries
            log.exception("billing run %s..%s failed", format_time(start), format_time(end))
        done += 1
        if iterations is not None and done >= iterations:
            return
        due = end + interval + lateness
        await sleep(max(0.0, (due - clock()).total_seconds()))
