"""Billing reports: usage records of a tenant and period → JSON, CSV and an HTML page.

Pure: the store streams usage records into a `ReportBuilder` (one pass, memory per
instance rather than per record), and the renderers turn the finished `Report` into text.
The HTML page is a jinja2 template shipped in the package (`report.html.j2`), rendered
with autoescaping on, with an inline SVG bar chart whose geometry is computed here so
the template only places numbers.

Money follows `billing.prices`: per-instance and per-day amounts are exact sums of line
items (6 decimals); only the report total is rounded, once, to 2 decimals.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import jinja2

from billing.errors import InvalidInput
from billing.events import InstanceId, InstanceUid, Region, TenantId
from billing.prices import round_total
from billing.usage import UsageRecord

# Files shipped next to the code (read by path: works for wheels and editable installs).
_PACKAGE_DIR = Path(__file__).parent
CSV_COLUMNS = (
    "tenant",
    "instance_id",
    "instance_uid",
    "region",
    "cluster",
    "day",
    "seconds",
    "vcpu_seconds",
    "gib_seconds",
    "amount",
    "currency",
    "flags",
)
_ZERO = Decimal("0.000000")
_PERIOD_RE = re.compile(r"^(\d{4}-\d{2})$|^(\d{4}-\d{2}-\d{2})$|^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True, slots=True)
class Period:
    """The UTC days `[start, end)` a report covers, and how the user named them."""

    start: date
    end: date
    label: str

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]


def parse_period(text: str) -> Period:
    """`2026-11` (a month), `2026-11-21` (a day) or `2026-11-01..2026-11-15` (inclusive)."""
    match = _PERIOD_RE.match(text.strip())
    if not match:
        raise InvalidInput(
            f"expected YYYY-MM, YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD, got {text!r:.40}",
            field="period",
        )
    month, day, first, last = match.groups()
    try:
        if month:
            start = date.fromisoformat(f"{month}-01")
            end = (start + timedelta(days=32)).replace(day=1)
        elif day:
            start = date.fromisoformat(day)
            end = start + timedelta(days=1)
        else:
            start, end = date.fromisoformat(first), date.fromisoformat(last) + timedelta(days=1)
    except ValueError as exc:
        raise InvalidInput(f"not a calendar date: {exc}", field="period") from None
    if end <= start:
        raise InvalidInput("the period ends before it starts", field="period")
    if (end - start).days > 366:
        raise InvalidInput("a report covers at most 366 days", field="period")
    return Period(start=start, end=end, label=text.strip())


@dataclass(slots=True)
class Totals:
    seconds: int = 0
    vcpu_seconds: Decimal = Decimal(0)
    gib_seconds: Decimal = Decimal(0)
    amount: Decimal = _ZERO

    def add(self, record: UsageRecord) -> None:
        self.seconds += record.seconds
        self.vcpu_seconds += record.vcpu_seconds
        self.gib_seconds += record.gib_seconds
        self.amount += record.amount

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "vcpuSeconds": str(self.vcpu_seconds),
            "gibSeconds": str(self.gib_seconds),
            "amount": str(self.amount),
        }


@dataclass(slots=True)
class InstanceUsageSummary:
    uid: InstanceUid
    instance_id: InstanceId
    tenant: TenantId
    region: Region
    cluster: str
    totals: Totals = field(default_factory=Totals)
    days: dict[date, Totals] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Report:
    tenant: TenantId | None  # None: the admin view across all tenants
    period: Period
    currency: str
    totals: Totals
    days: dict[date, Totals]  # every day of the period, zero-filled
    instances: list[InstanceUsageSummary]  # ordered by tenant, then instance id

    @property
    def total(self) -> Decimal:
        """The amount owed: the exact sum rounded once, half-up to 2 decimals."""
        return round_total(self.totals.amount)


class ReportBuilder:
    """Accumulates usage records one at a time; `build()` returns the finished report."""

    def __init__(self, tenant: TenantId | None, period: Period, currency: str) -> None:
        self._tenant = tenant
        self._period = period
        self._currency = currency
        self._totals = Totals()
        self._days = {day: Totals() for day in period.days()}
        self._instances: dict[InstanceUid, InstanceUsageSummary] = {}

    def add(self, record: UsageRecord) -> None:
        if self._tenant is not None and record.tenant != self._tenant:
            # The store filters by tenant; reaching here would leak another tenant's usage.
            raise InvalidInput(f"record {record.record_id} belongs to another tenant")
        if record.currency != self._currency:
            raise InvalidInput(f"record {record.record_id} is in {record.currency}, report in {self._currency}")
        if record.day not in self._days:
            return  # outside the period (the store's day filter is inclusive at both ends)
        summary = self._instances.get(record.uid)
        if summary is None:
            summary = InstanceUsageSummary(record.uid, record.instance_id, record.tenant, record.region, record.cluster)
            self._instances[record.uid] = summary
        summary.totals.add(record)
        summary.days.setdefault(record.day, Totals()).add(record)
        summary.flags.update(record.flags)
        self._days[record.day].add(record)
        self._totals.add(record)

    def add_all(self, records: Iterable[UsageRecord]) -> ReportBuilder:
        for record in records:
            self.add(record)
        return self

    def build(self) -> Report:
        instances = sorted(self._instances.values(), key=lambda s: (s.tenant, s.instance_id, s.uid))
        return Report(self._tenant, self._period, self._currency, self._totals, self._days, instances)


# --- JSON ----------------------------------------------------------------------------------


def report_to_json(report: Report, *, group_by: str = "instance") -> dict[str, Any]:
    """The JSON body of a report (and of `GET /v1/billing/usage`, grouped by instance or day)."""
    if group_by not in ("instance", "day"):
        raise InvalidInput("expected 'instance' or 'day'", field="groupBy")
    body: dict[str, Any] = {
        "tenant": report.tenant,
        "period": {
            "label": report.period.label,
            "start": report.period.start.isoformat(),
            "end": report.period.end.isoformat(),  # exclusive
        },
        "currency": report.currency,
        "total": str(report.total),
        **report.totals.to_json(),
    }
    if group_by == "day":
        body["days"] = [{"day": d.isoformat(), **t.to_json()} for d, t in report.days.items()]
    else:
        body["instances"] = [
            {
                "instanceId": s.instance_id,
                "instanceUid": s.uid,
                "tenant": s.tenant,
                "region": s.region,
                "cluster": s.cluster,
                "flags": sorted(s.flags),
                **s.totals.to_json(),
                "days": [{"day": d.isoformat(), **t.to_json()} for d, t in sorted(s.days.items())],
            }
            for s in report.instances
        ]
    return body


# --- CSV -----------------------------------------------------------------------------------


def _cell(text: str) -> str:
    # A cell starting with = + - @ is a formula to spreadsheet programs (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def render_csv(report: Report) -> str:
    """One row per instance and day, columns `CSV_COLUMNS`, amounts exact (6 decimals)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for s in report.instances:
        for day, t in sorted(s.days.items()):
            writer.writerow(
                [
                    _cell(s.tenant),
                    _cell(s.instance_id),
                    _cell(s.uid),
                    _cell(s.region),
                    _cell(s.cluster),
                    day.isoformat(),
                    t.seconds,
                    t.vcpu_seconds,
                    t.gib_seconds,
                    t.amount,
                    report.currency,
                    ";".join(sorted(s.flags)),
                ]
            )
    return out.getvalue()


# --- HTML ----------------------------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_PAD = 720, 240, 32


def _hours(seconds: Decimal) -> Decimal:
    return (seconds / 3600).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def chart_bars(report: Report) -> list[dict[str, Any]]:
    """Geometry of the per-day bars (vCPU-hours), in SVG user units."""
    days = list(report.days.items())
    peak = max((t.vcpu_seconds for _, t in days), default=Decimal(0)) or Decimal(1)
    slot = (CHART_WIDTH - 2 * CHART_PAD) / max(len(days), 1)
    plot_height = CHART_HEIGHT - 2 * CHART_PAD
    label_every = max(1, len(days) // 10)  # at most ~10 date labels stay readable
    bars = []
    for index, (day, totals) in enumerate(days):
        height = float(totals.vcpu_seconds / peak) * plot_height
        bars.append(
            {
                "x": round(CHART_PAD + index * slot + slot * 0.1, 2),
                "y": round(CHART_HEIGHT - CHART_PAD - height, 2),
                "width": round(slot * 0.8, 2),
                "height": round(height, 2),
                "label": day.strftime("%m-%d") if index % label_every == 0 else "",
                "label_x": round(CHART_PAD + index * slot + slot / 2, 2),
                "title": f"{day.isoformat()}: {_hours(totals.vcpu_seconds)} vCPU-hours, "
                f"{totals.amount} {report.currency}",
            }
        )
    return bars


@functools.cache
def _template() -> jinja2.Template:
    source = _PACKAGE_DIR.joinpath("report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(source)


def render_html(report: Report) -> str:
    """A standalone HTML page: totals, a per-day SVG chart, and a table per instance."""
    return _template().render(
        report=report,
        total=report.total,
        bars=chart_bars(report),
        peak_hours=_hours(max((t.vcpu_seconds for t in report.days.values()), default=Decimal(0))),
        chart={"width": CHART_WIDTH, "height": CHART_HEIGHT, "pad": CHART_PAD},
        hours=_hours,
    )
