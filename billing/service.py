"""What the CIS REST and gRPC layers call for billing: usage, reports and price quotes.

`cis` does authentication and decides the tenant scope (a tenant's key → its tenant, an
admin key → None, meaning every tenant); these functions only fetch, aggregate and render.
Input parsing lives here too, so every invalid value becomes `InvalidInput` naming the
field (the REST error middleware maps it to 400) and never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from elasticsearch import AsyncElasticsearch

from billing import store
from billing.errors import InvalidInput
from billing.events import Region, TenantId, parse_time
from billing.prices import PriceTable
from billing.reports import (
    Period,
    Report,
    ReportBuilder,
    render_csv,
    render_html,
    report_to_json,
)

MAX_QUOTE_SECONDS = 366 * 86_400  # a year: beyond that a quote is a typo, not a question


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"
    HTML = "html"


CONTENT_TYPES = {
    ReportFormat.JSON: "application/json",
    ReportFormat.CSV: "text/csv; charset=utf-8",
    ReportFormat.HTML: "text/html; charset=utf-8",
}
_BY_MEDIA_TYPE = {
    "application/json": ReportFormat.JSON,
    "text/csv": ReportFormat.CSV,
    "text/html": ReportFormat.HTML,
}


def negotiate_format(accept: str | None, requested: str | None = None) -> ReportFormat:
    """`?format=` wins over `Accept`; the best-weighted known media type wins; JSON default."""
    if requested:
        try:
            return ReportFormat(requested.lower())
        except ValueError:
            raise InvalidInput("expected json, csv or html", field="format") from None
    best: tuple[float, ReportFormat] | None = None
    for part in (accept or "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        fmt = _BY_MEDIA_TYPE.get(media.lower())
        if fmt is None:
            continue
        weight = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    weight = float(param[2:])
                except ValueError:
                    weight = 0.0
        if weight > 0 and (best is None or weight > best[0]):
            best = (weight, fmt)
    return best[1] if best else ReportFormat.JSON


async def load_report(
    es: AsyncElasticsearch,
    prices: PriceTable,
    *,
    tenant: TenantId | None,
    period: Period,
    index: str = store.USAGE_INDEX,
) -> Report:
    """Stream a tenant's (or, with None, everyone's) usage records of `period` into a report."""
    builder = ReportBuilder(tenant, period, prices.currency)
    last_day = period.end - timedelta(days=1)
    async for record in store.query_usage(es, tenant=tenant, first_day=period.start, last_day=last_day, index=index):
        builder.add(record)
    return builder.build()


async def get_usage(
    es: AsyncElasticsearch,
    prices: PriceTable,
    *,
    tenant: TenantId | None,
    period: Period,
    group_by: str = "instance",
    index: str = store.USAGE_INDEX,
) -> dict[str, Any]:
    """Body of `GET /v1/billing/usage`: totals plus rows per instance or per day."""
    report = await load_report(es, prices, tenant=tenant, period=period, index=index)
    return report_to_json(report, group_by=group_by)


@dataclass(frozen=True, slots=True)
class RenderedReport:
    content_type: str
    body: str


async def get_report(
    es: AsyncElasticsearch,
    prices: PriceTable,
    *,
    tenant: TenantId | None,
    period: Period,
    fmt: ReportFormat,
    index: str = store.USAGE_INDEX,
) -> RenderedReport:
    """Body of `GET /v1/billing/reports/{period}` in the negotiated format."""
    report = await load_report(es, prices, tenant=tenant, period=period, index=index)
    if fmt is ReportFormat.CSV:
        body = render_csv(report)
    elif fmt is ReportFormat.HTML:
        body = render_html(report)
    else:
        body = json.dumps(report_to_json(report), indent=2)
    return RenderedReport(CONTENT_TYPES[fmt], body)


# --- price inquiry -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    region: Region
    cpu: Decimal
    memory_gib: Decimal
    seconds: int
    at: datetime | None


def _positive_decimal(raw: object, field: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise InvalidInput("expected a number or a decimal string", field=field)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InvalidInput(f"not a number: {raw!r:.40}", field=field) from None
    if not value.is_finite() or value <= 0:
        raise InvalidInput("must be a positive number", field=field)
    return value


def parse_quote_request(raw: Mapping[str, Any]) -> QuoteRequest:
    """Validate the body of `POST /v1/price`: region, cpu, memoryGiB, seconds?, at?."""
    region = raw.get("region")
    if not isinstance(region, str) or not region:
        raise InvalidInput("required", field="region")
    seconds = raw.get("seconds", 3600)
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput("expected an integer number of seconds", field="seconds")
    if not 0 <= seconds <= MAX_QUOTE_SECONDS:
        raise InvalidInput(f"must be between 0 and {MAX_QUOTE_SECONDS}", field="seconds")
    at = raw.get("at")
    try:
        when = None if at is None else parse_time(at, field="at")
    except InvalidInput as exc:
        raise InvalidInput(exc.message, field="at") from None
    return QuoteRequest(
        region=Region(region),
        cpu=_positive_decimal(raw.get("cpu"), "cpu"),
        memory_gib=_positive_decimal(raw.get("memoryGiB"), "memoryGiB"),
        seconds=seconds,
        at=when,
    )


def quote_price(prices: PriceTable, request: QuoteRequest, *, now: datetime) -> dict[str, Any]:
    """Body of `POST /v1/price`. The caller rounds cpu/memory up to the size table first,
    because the rounded size is what is billed; `now` is used when the request has no `at`.

    Raises `NotFound` for an unknown region and `NoPrice` before its first price.
    """
    quote = prices.quote(request.region, request.cpu, request.memory_gib, request.seconds, request.at or now)
    return quote.to_json()
