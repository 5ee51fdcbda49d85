"""/v1/billing/usage, /v1/billing/reports/{period} and /v1/price, over the billing package.

Tenant keys see their own usage; admin keys see everyone's or name a tenant. billing's
errors become CIS errors here, so the one error middleware answers them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from elasticsearch import AsyncElasticsearch

from billing import errors as billing_errors
from billing.events import TenantId
from billing.prices import PriceTable
from billing.reports import parse_period
from billing.service import get_report, get_usage, negotiate_format, parse_quote_request, quote_price
from cis.api.app import principal, services
from cis.api.errors import read_json
from cis.domain import errors
from cis.domain.sizes import round_up
from cis.domain.spec import parse_spec

routes = web.RouteTableDef()
T = TypeVar("T")


@dataclass(frozen=True)
class BillingContext:
    es: AsyncElasticsearch
    prices: PriceTable


async def billing_call(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except billing_errors.InvalidInput as exc:
        raise errors.InvalidInput(exc.field or "", exc.message) from exc
    except billing_errors.NotFound as exc:
        raise errors.NotFound("billing", str(exc)) from exc
    except billing_errors.Temporary as exc:
        raise errors.Temporary(str(exc), retry_after=exc.retry_after or 5) from exc
    except billing_errors.Permanent as exc:
        raise errors.Permanent(str(exc)) from exc


def scope(request: web.Request) -> TenantId | None:
    p = principal(request)
    if p.is_admin:
        tenant = request.query.get("tenant")
        return TenantId(tenant) if tenant else None
    return TenantId(p.tenant or "")


def _billing(request: web.Request) -> BillingContext:
    b = services(request).billing
    if not isinstance(b, BillingContext):
        raise errors.NotImplementedCapability("billing needs Elasticsearch (cis serve --es)")
    return b


def _period(text: str | None) -> Any:
    try:
        return parse_period(text or datetime.now(UTC).strftime("%Y-%m"))
    except billing_errors.InvalidInput as exc:
        raise errors.InvalidInput("period", exc.message) from exc


@routes.get("/billing/usage")
async def usage(request: web.Request) -> web.Response:
    b = _billing(request)
    group_by = request.query.get("groupBy", "instance")
    if group_by not in ("instance", "day"):
        raise errors.InvalidInput("groupBy", "one of instance, day")
    period = _period(request.query.get("period"))
    body = await billing_call(lambda: get_usage(b.es, b.prices, tenant=scope(request), period=period,
                                                group_by=group_by))
    return web.json_response(body)


@routes.get("/billing/reports/{period}")
async def report(request: web.Request) -> web.Response:
    b = _billing(request)
    period = _period(request.match_info["period"])
    try:
        fmt = negotiate_format(request.headers.get("Accept"), request.query.get("format"))
    except billing_errors.InvalidInput as exc:
        raise errors.InvalidInput("format", exc.message) from exc
    rendered = await billing_call(lambda: get_report(b.es, b.prices, tenant=scope(request), period=period, fmt=fmt))
    body = rendered.body if isinstance(rendered.body, bytes) else str(rendered.body).encode()
    return web.Response(body=body, headers={"Content-Type": rendered.content_type})


@routes.post("/price")
async def price(request: web.Request) -> web.Response:
    """A quote for a spec (or a plain cpu/memoryGiB) in a region for some seconds, at
    the size it would be billed at: rounded up to the size table."""
    b = _billing(request)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise errors.InvalidInput("", "the body must be a JSON object")
    if "spec" in raw:
        size = parse_spec(raw["spec"]).size
    else:
        size = round_up(_decimal(raw.get("cpu"), "cpu"), _decimal(raw.get("memoryGiB"), "memoryGiB"),
                        cpu_field="cpu", memory_field="memoryGiB")
    body = {k: v for k, v in raw.items() if k != "spec"}
    body.update({"cpu": size.cpu_text, "memoryGiB": size.memory_gib_text})

    async def quote() -> dict[str, Any]:
        return quote_price(b.prices, parse_quote_request(body), now=datetime.now(UTC))

    result = await billing_call(quote)
    return web.json_response({**result, "size": size.to_json()})


def _decimal(raw: object, field: str) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise errors.InvalidInput(field, "a number is required")
    try:
        return Decimal(str(raw))
    except ArithmeticError as exc:
        raise errors.InvalidInput(field, "not a number") from exc
