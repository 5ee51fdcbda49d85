"""Per-second metering: one instance's lifecycle events → billable runs → usage records.

Pure (no I/O, no clock). The runner feeds it the run observations the store aggregates
per instance (`meter_instance`); tests and small callers pass plain events
(`meter_events`), which are reduced to the same observations first.

Rules, in the order they are applied (DESIGN section 4, log-pipeline section 5):
  1. Events are deduplicated by `event.id` and grouped into runs by the `started_at` every
     event of a run carries; only maxima are kept, so shipping order and duplicates do not
     matter (an Elasticsearch aggregation computes the same reduction: `RunObservation`).
  2. A run goes from `instance.started` (its `started_at`) to `instance.stopped` (its
     `stopped_at`). Each start is a new run; `container.restarted` and the
     `instance.running` heartbeats only prove liveness and never split a run.
  3. A run without a stop closes at its last liveness proof (under-bill rather than
     over-bill), or at the end time Kubernetes reported when the caller has one; both are
     flagged. A run whose liveness is proven past the window end is simply still running.
     A run whose start event is missing starts at the `started_at` carried by its other
     events, flagged (in the window that holds the start).
  4. Each run is rounded up to whole seconds *once*, on the whole-second grid:
     `[floor(start), floor(start) + ceil(end - start))`. Clipping and splitting happen
     after rounding and at whole-second boundaries, so the pieces of a run across windows,
     days and price changes always add up to exactly `ceil(end - start)` seconds.
  5. A second already billed by an earlier run of the same instance is never billed again
     (overlaps are trimmed, flagged).
  6. The billed span is clipped to the window, split at UTC midnight (one usage record per
     instance and day) and at price changes (one line item per piece), and priced with the
     money rule documented in `billing.prices`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from billing.errors import InvalidInput
from billing.events import (
    LIVENESS_KINDS,
    EventKind,
    InstanceId,
    InstanceUid,
    LifecycleEvent,
    Region,
    TenantId,
)
from billing.prices import PriceTable, epoch_seconds, from_epoch
from billing.usage import LineItem, UsageRecord

DAY = 86_400
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_ZERO = Decimal(0)
_ZERO_AMOUNT = Decimal("0.000000")


class Flag(StrEnum):
    MISSING_STOP = "missing_stop"  # closed at the last heartbeat
    ENDED_BY_KUBERNETES = "ended_by_kubernetes"  # closed at the end time Kubernetes reported
    MISSING_START = "missing_start"  # start taken from `started_at` on a later event
    OVERLAP_TRIMMED = "overlap_trimmed"  # seconds another run already billed were removed


_NO_FLAGS: frozenset[Flag] = frozenset()


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open billing window `[start, end)`, in whole UTC seconds."""

    start: datetime
    end: datetime
    # The same bounds in epoch seconds, computed once: every instance of a run needs them.
    start_s: int = dataclasses.field(init=False, repr=False, compare=False)
    end_s: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("start", "end"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None:
                raise InvalidInput("must carry a timezone", field=f"window.{name}")
            if value.microsecond:
                raise InvalidInput("must be a whole second", field=f"window.{name}")
        if self.start >= self.end:
            raise InvalidInput("window start must be before its end", field="window")
        object.__setattr__(self, "start_s", epoch_seconds(self.start))
        object.__setattr__(self, "end_s", epoch_seconds(self.end))

    def days(self) -> list[date]:
        """The UTC days the window touches, in order."""
        first = epoch_seconds(self.start) // DAY
        last = (epoch_seconds(self.end) - 1) // DAY
        return [from_epoch(d * DAY).date() for d in range(first, last + 1)]


# Run, RunObservation and InstanceUsage are built for every instance of a run (100k+), so
# they are plain slotted dataclasses: a frozen dataclass's __init__ is about six times
# slower. Treat them as immutable all the same; nothing here mutates one after creation.
@dataclass(slots=True)
class Run:
    """One started → stopped interval of an instance, at the size it started with."""

    uid: InstanceUid
    instance_id: InstanceId
    tenant: TenantId
    region: Region
    cluster: str
    cpu: Decimal
    memory_gib: Decimal
    start: datetime
    end: datetime
    flags: frozenset[Flag] = frozenset()
    reason: str | None = None


@dataclass(slots=True)
class InstanceUsage:
    """What metering found for one instance inside one window."""

    runs: tuple[Run, ...]
    records: tuple[UsageRecord, ...]
    flagged: tuple[Run, ...]  # flagged runs that touch the window

    @property
    def needs_end_time(self) -> bool:
        """True when Kubernetes' end time could close a missing stop more exactly."""
        return any(Flag.MISSING_STOP in run.flags for run in self.flagged)


@dataclass(slots=True)
class RunObservation:
    """What the events say about one run: every event sharing (instance uid, started_at).

    Stores produce these directly (an Elasticsearch aggregation groups the events), and
    `observe_events` reduces plain events to them; metering only ever sees observations.
    """

    uid: InstanceUid
    instance_id: InstanceId
    tenant: TenantId
    region: Region
    cluster: str
    cpu: Decimal
    memory_gib: Decimal
    started_at: datetime
    has_start: bool  # an `instance.started` event of this run was seen
    stopped_at: datetime | None  # latest `stopped_at` of its stop events
    last_seen: datetime | None  # latest liveness proof (heartbeat, container restart)
    reason: str | None = None


@dataclass(slots=True)
class _Observed:
    meta: LifecycleEvent  # the started event if any, else the lowest-seq event
    has_start: bool = False
    stopped_at: datetime | None = None
    last_seen: datetime | None = None
    reason: str | None = None


def _later(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def observe_events(events: Iterable[LifecycleEvent]) -> list[RunObservation]:
    """Rules 1-2: reduce one instance's events to one observation per run.

    Order-free and duplicate-free by construction: events are keyed by `event.id`, a run
    by the `started_at` all its events carry, and only maxima are kept, so arrival order,
    resends and interleaving cannot change the result.
    """
    seen: set[str] = set()
    runs: dict[datetime, _Observed] = {}
    for ev in events:
        if ev.event_id in seen:
            continue
        seen.add(ev.event_id)
        is_start = ev.kind == EventKind.STARTED
        if not (is_start or ev.kind == EventKind.STOPPED or ev.kind in LIVENESS_KINDS):
            continue  # created/queued/scheduled/deleted and unknown kinds do not move billing
        started = ev.started_at or (ev.timestamp if is_start else None)
        if started is None:
            continue
        run = runs.get(started)
        if run is None:
            run = runs[started] = _Observed(meta=ev)
        if is_start:
            run.has_start = True
            run.meta = ev  # the size the run started with is the size billed
        elif not run.has_start and ev.seq < run.meta.seq:
            run.meta = ev
        if ev.kind == EventKind.STOPPED:
            run.stopped_at = _later(run.stopped_at, ev.stopped_at or ev.timestamp)
            run.reason = ev.reason
        elif ev.kind in LIVENESS_KINDS:
            run.last_seen = _later(run.last_seen, ev.timestamp)
    return [
        RunObservation(
            uid=run.meta.uid,
            instance_id=run.meta.instance_id,
            tenant=run.meta.tenant,
            region=run.meta.region,
            cluster=run.meta.cluster,
            cpu=run.meta.cpu,
            memory_gib=run.meta.memory_gib,
            started_at=started,
            has_start=run.has_start,
            stopped_at=run.stopped_at,
            last_seen=run.last_seen,
            reason=run.reason,
        )
        for started, run in sorted(runs.items())
    ]


def build_runs(
    observations: Iterable[RunObservation], *, window: Window, ended_at: datetime | None = None
) -> list[Run]:
    """Rule 3: close each observed run; `ended_at` is when Kubernetes says the instance ended.

    A run without a stop closes at its own last liveness proof, even when a later run
    started meanwhile; Kubernetes' end time can only close the latest run. Liveness at or
    past the window end means "still running", which bills the window fully and is no
    anomaly. A missing start is flagged only in the window that holds the start, because
    a store may look for start events only inside the window.
    """
    ordered = sorted(observations, key=lambda o: o.started_at)
    runs: list[Run] = []
    for index, obs in enumerate(ordered):
        flags: set[Flag] = set()
        if not obs.has_start and obs.started_at >= window.start:
            flags.add(Flag.MISSING_START)
        if obs.stopped_at is not None:
            end = obs.stopped_at
        elif obs.last_seen is not None and obs.last_seen >= window.end:
            end = obs.last_seen
        elif ended_at is not None and index == len(ordered) - 1:
            end = ended_at
            flags.add(Flag.ENDED_BY_KUBERNETES)
        else:
            end = obs.last_seen or obs.started_at
            flags.add(Flag.MISSING_STOP)
        runs.append(_run_of(obs, end, frozenset(flags) if flags else _NO_FLAGS))
    return runs


def _run_of(obs: RunObservation, end: datetime, flags: frozenset[Flag]) -> Run:
    """The billable run of one observed start, ending at `end` (a stop before its start,
    from clock skew, bills nothing)."""
    return Run(
        uid=obs.uid,
        instance_id=obs.instance_id,
        tenant=obs.tenant,
        region=obs.region,
        cluster=obs.cluster,
        cpu=obs.cpu,
        memory_gib=obs.memory_gib,
        start=obs.started_at,
        end=max(end, obs.started_at),
        flags=flags,
        reason=obs.reason,
    )


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICROSECOND


def billed_span(run: Run) -> tuple[int, int]:
    """Rule 4: the run's whole seconds `[a, b)` in epoch seconds, rounded up once."""
    start_us, end_us = _micros(run.start), _micros(run.end)
    seconds = -((start_us - end_us) // 1_000_000)  # ceil without floats
    first = start_us // 1_000_000
    return first, first + max(seconds, 0)


def trim_overlaps(runs: Sequence[Run]) -> list[tuple[Run, int, int]]:
    """Rule 5: the spans to bill, each second at most once; the earlier run keeps a second."""
    if len(runs) == 1:  # most instances: nothing can overlap (same result as the loop below)
        return [(runs[0], *billed_span(runs[0]))]
    spans = sorted(((billed_span(run), index, run) for index, run in enumerate(runs)))
    result: list[tuple[Run, int, int]] = []
    billed_until: int | None = None
    for (first, last), _, run in spans:
        # A fully covered run stays in the result with an empty span, so its flags are seen.
        start = first if billed_until is None else min(max(first, billed_until), last)
        if start > first:
            run = dataclasses.replace(run, flags=run.flags | {Flag.OVERLAP_TRIMMED})
        result.append((run, start, last))
        billed_until = last if billed_until is None else max(billed_until, last)
    return result


def _line_items(run: Run, start: int, end: int, prices: PriceTable) -> Iterable[tuple[date, LineItem]]:
    """Rule 6: split `[start, end)` at UTC midnight and at price changes, price each piece."""
    cursor = start
    while cursor < end:
        day_start = cursor - cursor % DAY
        piece_end = min(end, day_start + DAY)
        day = from_epoch(day_start).date()
        for seg in prices.segments(run.region, cursor, piece_end):
            seconds = seg.end - seg.start
            yield (
                day,
                LineItem(
                    start=from_epoch(seg.start),
                    end=from_epoch(seg.end),
                    seconds=seconds,
                    cpu=run.cpu,
                    memory_gib=run.memory_gib,
                    price_from=seg.version.effective_from,
                    vcpu_second=seg.version.vcpu_second,
                    gib_second=seg.version.gib_second,
                    amount=seg.version.line_amount(seconds, run.cpu, run.memory_gib),
                ),
            )
        cursor = piece_end


def _record(day: date, items: list[tuple[Run, LineItem]], prices: PriceTable, window: Window) -> UsageRecord:
    run = items[0][0]
    seconds, vcpu_seconds, gib_seconds, amount = 0, _ZERO, _ZERO, _ZERO_AMOUNT
    flags: set[str] = set()
    for item_run, line in items:
        seconds += line.seconds
        vcpu_seconds += line.seconds * line.cpu
        gib_seconds += line.seconds * line.memory_gib
        amount += line.amount
        flags.update(item_run.flags)
    day_end = _EPOCH + timedelta(days=day.toordinal() - _EPOCH_ORDINAL + 1)
    return UsageRecord(
        uid=run.uid,
        instance_id=run.instance_id,
        tenant=run.tenant,
        region=run.region,
        cluster=run.cluster,
        day=day,
        seconds=seconds,
        vcpu_seconds=vcpu_seconds,
        gib_seconds=gib_seconds,
        amount=amount,
        currency=prices.currency,
        flags=tuple(sorted(flags)),
        lines=tuple([line for _, line in items]),
        # A past day is complete whatever the window end; stable content lets a rerun
        # recognise an unchanged record and skip writing it.
        covered_until=min(window.end, day_end),
    )


def meter_single_run(obs: RunObservation, prices: PriceTable, window: Window) -> InstanceUsage | None:
    """`meter_instance([obs])` for the common case, or None when it does not apply.

    Most instances have one run that was started and stopped (so no flag can arise) and
    whose billed seconds inside the window fall on one UTC day at one price version. Then
    rules 3-6 are arithmetic on one span, and building the same objects directly is
    several times cheaper than the general path. Anything else returns None and goes the
    general way; the unit tests check both agree, on generated runs too.
    """
    stopped = obs.stopped_at
    if stopped is None or not (obs.has_start or obs.started_at < window.start):
        return None
    run = _run_of(obs, stopped, _NO_FLAGS)
    first, last = billed_span(run)
    start, end = max(first, window.start_s), min(last, window.end_s)
    if start >= end:  # no billable second inside the window
        return InstanceUsage(runs=(run,), records=(), flagged=())
    day_start = start - start % DAY
    if end > day_start + DAY:
        return None
    segments = prices.segments(run.region, start, end)  # raises NoPrice like the general path
    if len(segments) != 1:
        return None
    version = segments[0].version
    seconds = end - start
    line = LineItem(
        start=from_epoch(start),
        end=from_epoch(end),
        seconds=seconds,
        cpu=run.cpu,
        memory_gib=run.memory_gib,
        price_from=version.effective_from,
        vcpu_second=version.vcpu_second,
        gib_second=version.gib_second,
        amount=version.line_amount(seconds, run.cpu, run.memory_gib),
    )
    record = UsageRecord(
        uid=run.uid,
        instance_id=run.instance_id,
        tenant=run.tenant,
        region=run.region,
        cluster=run.cluster,
        day=from_epoch(day_start).date(),
        seconds=seconds,
        vcpu_seconds=_ZERO + seconds * run.cpu,  # the same sums `_record` computes
        gib_seconds=_ZERO + seconds * run.memory_gib,
        amount=_ZERO_AMOUNT + line.amount,
        currency=prices.currency,
        flags=(),
        lines=(line,),
        covered_until=min(window.end, from_epoch(day_start + DAY)),
    )
    return InstanceUsage(runs=(run,), records=(record,), flagged=())


def meter_instance(
    observations: Sequence[RunObservation],
    prices: PriceTable,
    window: Window,
    *,
    ended_at: datetime | None = None,
) -> InstanceUsage:
    """Meter one instance (all observations share one `instance.uid`) over `window`.

    Raises `NoPrice` when a billable second has no price; the caller decides whether that
    fails the run or only this instance.
    """
    if len(observations) == 1:  # `ended_at` only ever closes a run without a stop
        usage = meter_single_run(observations[0], prices, window)
        if usage is not None:
            return usage
    return meter_runs(observations, prices, window, ended_at=ended_at)


def meter_runs(
    observations: Iterable[RunObservation],
    prices: PriceTable,
    window: Window,
    *,
    ended_at: datetime | None = None,
) -> InstanceUsage:
    """The general path of `meter_instance`: any number of runs, every rule applied in turn."""
    runs = build_runs(observations, window=window, ended_at=ended_at)
    ws, we = window.start_s, window.end_s
    by_day: dict[date, list[tuple[Run, LineItem]]] = {}
    final_runs: list[Run] = []
    for run, start, end in trim_overlaps(runs):
        final_runs.append(run)
        for day, line in _line_items(run, max(start, ws), min(end, we), prices):
            by_day.setdefault(day, []).append((run, line))
    records = tuple(_record(day, by_day[day], prices, window) for day in sorted(by_day))
    flagged = tuple(run for run in final_runs if run.flags and run.start < window.end and run.end >= window.start)
    return InstanceUsage(runs=tuple(final_runs), records=records, flagged=flagged)


def meter_events(
    events: Iterable[LifecycleEvent],
    prices: PriceTable,
    window: Window,
    *,
    ended_at: datetime | None = None,
) -> InstanceUsage:
    """`meter_instance` from plain events of one instance (tests, small inputs)."""
    return meter_instance(observe_events(events), prices, window, ended_at=ended_at)
