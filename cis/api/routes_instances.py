"""/v1/instances: create, batch create, get, list, delete, restart, events."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cis.api.app import principal, services
from cis.api.errors import read_json
from cis.domain import errors
from cis.domain.ids import TenantName
from cis.domain.model import instance_to_public_json
from cis.logs_api import respond

routes = web.RouteTableDef()


def query_int(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidInput(name, "must be an integer") from None
    if not lo <= value <= hi:
        raise errors.InvalidInput(name, f"must be between {lo} and {hi}")
    return value


def tenant_param(request: web.Request) -> str | None:
    """Admins act on a tenant's behalf with ?tenant=; for a tenant key it must match."""
    tenant = request.query.get("tenant")
    p = principal(request)
    if tenant and not p.is_admin and tenant != p.tenant:
        raise errors.NotFound("tenant", tenant)
    return tenant


@routes.post("/instances")
async def create_instance(request: web.Request) -> web.Response:
    inst, created = await services(request).instances.create(
        principal(request), await read_json(request), tenant_param(request))
    return web.json_response(instance_to_public_json(inst), status=201 if created else 200,
                             headers={"Location": f"/v1/instances/{inst.id}"})


@routes.post("/instances/batch")
async def create_batch(request: web.Request) -> web.Response:
    created = await services(request).instances.create_batch(
        principal(request), await read_json(request), tenant_param(request))
    return web.json_response({"items": [instance_to_public_json(i) for i in created],
                              "count": len(created)}, status=201)


@routes.get("/instances")
async def list_instances(request: web.Request) -> web.Response:
    page = await services(request).instances.list(
        principal(request), tenant=tenant_param(request), phase=request.query.get("phase"),
        region=request.query.get("region"), labels=request.query.get("labels"),
        limit=query_int(request, "limit", 100, 1, 1000), cont=request.query.get("continue"))
    more = f',"continue":{json.dumps(page.continue_token)}' if page.continue_token else ""
    if page.public_json is not None:  # items already encoded: join them rather than encode all again
        return web.Response(text=f'{{"items":[{",".join(page.public_json)}]{more}}}', content_type="application/json")
    body: dict[str, Any] = {"items": [instance_to_public_json(i) for i in page.items]}
    if page.continue_token:
        body["continue"] = page.continue_token
    return web.json_response(body)


@routes.get("/instances/{id}")
async def get_instance(request: web.Request) -> web.Response:
    inst = await services(request).instances.get(principal(request), request.match_info["id"],
                                                 tenant_param(request))
    return web.json_response(instance_to_public_json(inst))


@routes.delete("/instances/{id}")
async def delete_instance(request: web.Request) -> web.Response:
    inst = await services(request).instances.delete(principal(request), request.match_info["id"],
                                                    tenant_param(request))
    return web.json_response(instance_to_public_json(inst), status=202)


@routes.post("/instances/{id}/restart")
async def restart_instance(request: web.Request) -> web.Response:
    inst = await services(request).instances.restart(principal(request), request.match_info["id"],
                                                     tenant_param(request))
    return web.json_response(instance_to_public_json(inst), status=202)


@routes.get("/instances/{id}/events")
async def instance_events(request: web.Request) -> web.Response:
    svc = services(request)
    inst = await svc.instances.get(principal(request), request.match_info["id"], tenant_param(request))
    if svc.instance_events is None:
        raise errors.NotImplementedCapability("instance events need Elasticsearch")
    return web.json_response({"items": await svc.instance_events(inst)})


@routes.get("/instances/{id}/logs")
async def instance_logs(request: web.Request) -> web.StreamResponse:
    svc = services(request)
    if svc.logs is None:
        raise errors.NotImplementedCapability("logs need Elasticsearch (cis serve --es)")
    p = principal(request)
    tenant = tenant_param(request) if p.is_admin else p.tenant
    if not tenant:
        raise errors.InvalidInput("tenant", "an admin must name the tenant")
    return await respond(request, svc.logs, TenantName(tenant), request.match_info["id"])
