"""Probes, metrics, the OpenAPI document, regions and sizes, and the admin routes
(tenants, API keys)."""

from __future__ import annotations

from aiohttp import web

from cis.api.app import principal, services
from cis.api.errors import read_json
from cis.api.openapi import openapi_document
from cis.domain import errors
from cis.domain.ids import TenantName
from cis.domain.sizes import size_table_json
from cis.domain.tenants import parse_tenant_spec, tenant_to_public_json

public_routes = web.RouteTableDef()
v1_routes = web.RouteTableDef()


@public_routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@public_routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = services(request).ready()
    ok = all(checks.values())
    lines = [f"[{'+' if v else '-'}]{k} {'ok' if v else 'not ready'}" for k, v in sorted(checks.items())]
    return web.Response(text="\n".join([*lines, "readyz " + ("ok" if ok else "failed")]) + "\n",
                        status=200 if ok else 503)


@public_routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(text=services(request).metrics.render(),
                        content_type="text/plain", charset="utf-8")


@public_routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())


@v1_routes.get("/regions")
async def regions(request: web.Request) -> web.Response:
    return web.json_response({"items": services(request).regions()})


@v1_routes.get("/sizes")
async def sizes(request: web.Request) -> web.Response:
    return web.json_response({"items": size_table_json()})


def require_admin(request: web.Request) -> None:
    if not principal(request).is_admin:
        raise errors.Forbidden("this route needs an admin key")


@v1_routes.post("/tenants")
async def create_tenant(request: web.Request) -> web.Response:
    require_admin(request)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise errors.InvalidInput("", "the body must be a JSON object")
    spec = {k: v for k, v in raw.items() if k != "name"}
    if "apiKeys" in spec:
        raise errors.InvalidInput("apiKeys", "create keys with POST /v1/tenants/{name}/keys")
    tenant = await services(request).tenants.create_tenant(parse_tenant_spec(str(raw.get("name", "")), spec))
    return web.json_response(tenant_to_public_json(tenant), status=201)


@v1_routes.get("/tenants")
async def list_tenants(request: web.Request) -> web.Response:
    require_admin(request)
    return web.json_response({"items": [tenant_to_public_json(t) for t in services(request).tenants.all_tenants()]})


@v1_routes.post("/tenants/{tenant}/keys")
async def create_key(request: web.Request) -> web.Response:
    require_admin(request)
    tenant = services(request).tenants.tenant(request.match_info["tenant"]).name
    key_id, key = await services(request).tenants.create_key(TenantName(tenant))
    return web.json_response({"id": key_id, "tenant": tenant, "key": key}, status=201)
