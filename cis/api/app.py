"""The aiohttp application: one factory, typed app keys, the /v1 sub-application.

`create_app(services)` builds the app around already-constructed services; it starts
nothing. Middlewares: request id and error mapping (outer app and /v1), then
authentication on /v1 only, so probes and metrics need no key.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cis.api.errors import request_id_and_errors
from cis.api.metrics import Metrics
from cis.instances import InstanceService
from cis.tenants import Principal, TenantDirectory

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Services:
    """Everything handlers use, built once by the wiring in `cis.main`."""

    instances: InstanceService
    tenants: TenantDirectory
    metrics: Metrics
    regions: Callable[[], list[dict[str, Any]]]
    ready: Callable[[], dict[str, bool]]
    instance_events: Callable[..., Awaitable[list[dict[str, Any]]]] | None = None
    logs: Any = None  # cis.logs_api.LogService, when Elasticsearch is configured
    billing: Any = None  # cis.billing_api.BillingService, when Elasticsearch is configured
    extra: dict[str, Any] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)
PRINCIPAL = "principal"


def principal(request: web.Request) -> Principal:
    p = request.get(PRINCIPAL)
    assert isinstance(p, Principal)
    return p


def services(request: web.Request) -> Services:
    return request.config_dict[SERVICES]


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[PRINCIPAL] = services(request).tenants.authenticate(request.headers.get("Authorization"))
    return await handler(request)


@web.middleware
async def count_requests(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    route = request.match_info.route.resource
    canonical = route.canonical if route is not None else "unmatched"
    services(request).metrics.inc("cis_http_requests_total", method=request.method,
                                  route=canonical, status=str(response.status))
    return response


def create_app(svc: Services) -> web.Application:
    from cis.api import routes_billing, routes_instances, routes_meta

    app = web.Application(middlewares=[request_id_and_errors], client_max_size=8 * 1024 * 1024)
    app[SERVICES] = svc
    svc.metrics.describe("cis_http_requests_total", "HTTP requests by route and status")
    app.add_routes(routes_meta.public_routes)
    v1 = web.Application(middlewares=[request_id_and_errors, count_requests, authenticate])
    v1.add_routes(routes_instances.routes)
    v1.add_routes(routes_meta.v1_routes)
    v1.add_routes(routes_billing.routes)
    for extra in svc.extra.get("v1_routes", []):
        v1.add_routes(extra)
    app.add_subapp("/v1", v1)
    return app
