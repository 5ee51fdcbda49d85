"""Report rendering: JSON totals, CSV columns, HTML escaping and the chart."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.errors import InvalidInput
from billing.events import TenantId
from billing.metering import Window, meter_events
from billing.reports import (
    CSV_COLUMNS,
    Period,
    ReportBuilder,
    parse_period,
    render_csv,
    render_html,
    report_to_json,
)
from billing.testing import parsed, prices, run_events, t
from billing.usage import UsageRecord

WINDOW = Window(t("11-21 00:00:00"), t("11-23 00:00:00"))


def _records(**common: Any) -> list[UsageRecord]:
    # 23:00 → 01:30 across midnight: 3600 s (0.0216) on the 21st, 5400 s (0.0324) on the 22nd
    events = run_events(t("11-21 23:00:00"), t("11-22 01:30:00"), **common)
    return list(meter_events(parsed(events), prices(), WINDOW).records)


def _report(tenant: str | None = "acme") -> ReportBuilder:
    builder = ReportBuilder(TenantId(tenant) if tenant else None, parse_period("2026-11"), "USD")
    builder.add_all(_records())
    # a second instance: 10:00 → 10:00:01.5 rounds to 2 s = 0.000012
    events = run_events(t("11-21 10:00:00"), t("11-21 10:00:01.5"), uid="uid-2", instance_id="ci-two")
    builder.add_all(meter_events(parsed(events), prices(), WINDOW).records)
    return builder


def test_json_totals_and_rounding() -> None:
    body = report_to_json(_report().build())
    # 0.0216 + 0.0324 + 0.000012 = 0.054012 exact; owed 0.05
    assert (body["amount"], body["total"], body["seconds"]) == ("0.054012", "0.05", 9002)
    assert [(i["instanceId"], i["amount"], i["seconds"]) for i in body["instances"]] == [
        ("ci-one", "0.054000", 9000),
        ("ci-two", "0.000012", 2),
    ]
    assert body["period"] == {"label": "2026-11", "start": "2026-11-01", "end": "2026-12-01"}


def test_json_grouped_by_day_is_zero_filled() -> None:
    body = report_to_json(_report().build(), group_by="day")
    days = {d["day"]: (d["seconds"], d["amount"]) for d in body["days"]}
    assert len(days) == 30
    assert days["2026-11-21"] == (3602, "0.021612")
    assert days["2026-11-22"] == (5400, "0.032400")
    assert days["2026-11-23"] == (0, "0.000000")


def test_csv_has_fixed_columns_and_a_row_per_instance_day() -> None:
    rows = list(csv.reader(io.StringIO(render_csv(_report().build()))))
    assert tuple(rows[0]) == CSV_COLUMNS
    one = ["acme", "ci-one", "uid-1", "r1", "kind-a"]
    two = ["acme", "ci-two", "uid-2", "r1", "kind-a"]
    assert rows[1:] == [
        [*one, "2026-11-21", "3600", "1800.0", "3600", "0.021600", "USD", ""],
        [*one, "2026-11-22", "5400", "2700.0", "5400", "0.032400", "USD", ""],
        [*two, "2026-11-21", "2", "1.0", "2", "0.000012", "USD", ""],
    ]


def test_csv_neutralises_formulas() -> None:
    builder = ReportBuilder(None, parse_period("2026-11"), "USD")
    builder.add_all(_records(tenant="=HYPERLINK(1)", cluster="+evil"))
    row = list(csv.reader(io.StringIO(render_csv(builder.build()))))[1]
    assert (row[0], row[4]) == ("'=HYPERLINK(1)", "'+evil")


def test_html_escapes_user_text_and_draws_a_bar_per_day() -> None:
    tenant = '<script>alert("x")</script>'
    builder = ReportBuilder(TenantId(tenant), parse_period("2026-11-21..2026-11-22"), "USD")
    builder.add_all(_records(tenant=tenant, instance_id="ci-<b>&amp", cluster="c&d"))
    page = render_html(builder.build())
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page
    assert "ci-&lt;b&gt;&amp;amp" in page and "c&amp;d" in page
    assert "<svg" in page and len(re.findall(r'<rect class="bar"', page)) == 2
    assert "0.05 USD" in page  # 0.054 owed


def test_builder_refuses_another_tenants_records() -> None:
    builder = ReportBuilder(TenantId("other"), parse_period("2026-11"), "USD")
    with pytest.raises(InvalidInput, match="another tenant"):
        builder.add_all(_records())


def test_builder_ignores_days_outside_the_period() -> None:
    builder = ReportBuilder(TenantId("acme"), parse_period("2026-11-22"), "USD")
    report = builder.add_all(_records()).build()
    assert (report.totals.seconds, report.totals.amount) == (5400, Decimal("0.032400"))


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2026-11", date(2026, 11, 1), date(2026, 12, 1)),
        ("2026-12", date(2026, 12, 1), date(2027, 1, 1)),
        ("2026-11-21", date(2026, 11, 21), date(2026, 11, 22)),
        ("2026-11-01..2026-11-15", date(2026, 11, 1), date(2026, 11, 16)),
    ],
    ids=["month", "december", "day", "range"],
)
def test_parse_period(text: str, start: date, end: date) -> None:
    assert parse_period(text) == Period(start, end, text)


@pytest.mark.parametrize(
    "text",
    ["2026", "2026-13", "2026-02-30", "2026-11-15..2026-11-01", "2025-01-01..2026-12-31", "x"],
    ids=["year", "month-13", "feb-30", "reversed", "too-long", "junk"],
)
def test_parse_period_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_period(text)
    assert err.value.field == "period"
