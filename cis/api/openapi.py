"""The OpenAPI 3.1 document of the REST API, built from plain data.

A unit test checks it is a valid OpenAPI document and an integration test that every
route the app serves appears here, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}
INSTANCE = {"$ref": "#/components/schemas/Instance"}


def _resp(description: str, schema: dict[str, Any] | None = None, media: str = "application/json") -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {media: {"schema": schema}}
    return out


ERRORS = {
    "400": _resp("Invalid input; `error.field` names the offending field", ERROR),
    "401": _resp("Missing or unknown API key", ERROR),
    "403": _resp("Forbidden or quota exceeded", ERROR),
    "404": _resp("Not found (also another tenant's objects)", ERROR),
    "429": _resp("Rate limited; see Retry-After", ERROR),
    "503": _resp("A dependency is unavailable; retry after Retry-After", ERROR),
}


def _q(name: str, description: str, schema: dict[str, Any] | None = None, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
TENANT_Q = _q("tenant", "Admin keys only: act on this tenant")


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    op_id: str,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": {**responses, **ERRORS}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


ENV = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "value": {"type": "string"},
        "secretValue": {"type": "string", "writeOnly": True},
    },
}
CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "image": {"type": "string"},
        "command": {"type": "array", "items": {"type": "string"}},
        "args": {"type": "array", "items": {"type": "string"}},
        "env": {"type": "array", "items": ENV},
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "cpu": {"oneOf": [{"type": "number"}, {"type": "string"}], "description": 'vCPU, e.g. 0.5 or "500m"'},
                "memoryGiB": {"oneOf": [{"type": "number"}, {"type": "string"}]},
            },
        },
        "ports": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["port"],
                "properties": {
                    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                    "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
                },
            },
        },
        "volumeMounts": {
            "type": "array",
            "maxItems": 64,
            "items": {
                "type": "object",
                "required": ["name", "mountPath"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "description": "A volume of the instance's volumes"},
                    "mountPath": {"type": "string", "description": "Absolute path in the container"},
                    "readOnly": {"type": "boolean", "description": "files volumes are always read-only"},
                    "subPath": {"type": "string", "description": "Mount this path of the volume instead of its root"},
                },
            },
        },
    },
}
VOLUME_FILE = {
    "type": "object",
    "additionalProperties": False,
    "description": "One file: exactly one of content (UTF-8 text) or contentBase64 on input. Responses"
    " show content for text and contentBase64 for binary files, and neither for secret volumes.",
    "properties": {
        "content": {"type": "string"},
        "contentBase64": {"type": "string", "contentEncoding": "base64"},
        "mode": {"type": "integer", "minimum": 0, "maximum": 511, "default": 420,
                 "description": "Permission bits, e.g. 420 (0644) or 256 (0400)"},
    },
}
VOLUME = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "description": "Exactly one of emptyDir or files. At most 20 volumes; the files of all volumes together"
    " hold at most 1024 files and 512 KiB.",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "emptyDir": {
            "type": "object",
            "additionalProperties": False,
            "description": "Scratch space shared by the containers, gone with the instance",
            "properties": {
                "medium": {"enum": ["", "Memory"], "default": "",
                           "description": "Memory: a tmpfs counted against the instance's memory"},
                "sizeLimitGiB": {"oneOf": [{"type": "number"}, {"type": "string"}]},
            },
        },
        "files": {
            "type": "object",
            "description": "Read-only directory: relative file path (no '..') to file",
            "additionalProperties": VOLUME_FILE,
        },
        "secret": {"type": "boolean", "default": False,
                   "description": "files only: contents are write-only, never returned"},
    },
}
RULE = {
    "type": "object",
    "required": ["cidr"],
    "properties": {
        "cidr": {"type": "string"},
        "ports": {"type": "array", "items": {"oneOf": [{"type": "integer"}, {"type": "string"}]}},
        "protocol": {"enum": ["TCP", "UDP", "SCTP", "ALL"]},
    },
}
SPEC = {
    "type": "object",
    "required": ["containers"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        "containers": {"type": "array", "minItems": 1, "items": CONTAINER},
        "volumes": {"type": "array", "maxItems": 20, "items": VOLUME},
        "restartPolicy": {"enum": ["Always", "OnFailure", "Never"], "default": "Always"},
        "imageRegistryCredentials": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "server": {"type": "string"},
                    "username": {"type": "string"},
                    "password": {"type": "string", "writeOnly": True},
                },
            },
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "region": {"type": "string"},
        "zone": {"type": "string"},
        "ingress": {"type": "array", "items": RULE},
        "egress": {"type": "array", "items": RULE},
        "activeDeadlineSeconds": {"type": "integer", "minimum": 1},
        "clientToken": {"type": "string", "maxLength": 64},
    },
}
SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": "string"},
                    "requestId": {"type": "string"},
                },
            }
        },
    },
    "InstanceSpec": SPEC,
    "Instance": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "uid": {"type": "string"},
            "tenant": {"type": "string"},
            "spec": {"$ref": "#/components/schemas/InstanceSpec"},
            "size": {"type": "object", "properties": {"cpu": {"type": "string"}, "memoryGiB": {"type": "string"}}},
            "status": {
                "type": "object",
                "properties": {
                    "phase": {"enum": ["Queued", "Scheduled", "Running", "Succeeded", "Failed", "Deleting"]},
                    "cluster": {"type": "string"},
                    "region": {"type": "string"},
                    "podIP": {"type": "string"},
                    "containers": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    },
    "InstanceList": {
        "type": "object",
        "properties": {"items": {"type": "array", "items": INSTANCE}, "continue": {"type": "string"}},
    },
    "Batch": {
        "oneOf": [
            {
                "type": "object",
                "required": ["template", "count"],
                "properties": {
                    "template": {"$ref": "#/components/schemas/InstanceSpec"},
                    "count": {"type": "integer", "minimum": 1, "maximum": 1000},
                },
            },
            {
                "type": "object",
                "required": ["instances"],
                "properties": {"instances": {"type": "array", "items": {"$ref": "#/components/schemas/InstanceSpec"}}},
            },
        ]
    },
    "Tenant": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "quota": {"type": "object"},
            "allowedRegions": {"type": "array", "items": {"type": "string"}},
            "createRatePerSecond": {"type": "number"},
            "createBurst": {"type": "integer"},
        },
    },
    "Items": {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object"}}}},
}
TEXT = {"type": "string"}


def _paths() -> dict[str, Any]:
    items = {"$ref": "#/components/schemas/Items"}
    return {
        "/healthz": {
            "get": {
                "summary": "Liveness",
                "operationId": "healthz",
                "security": [],
                "responses": {"200": _resp("alive", TEXT, "text/plain")},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Readiness of every component",
                "operationId": "readyz",
                "security": [],
                "responses": {"200": _resp("ready", TEXT, "text/plain"), "503": _resp("not ready", TEXT, "text/plain")},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "security": [],
                "responses": {"200": _resp("metrics", TEXT, "text/plain")},
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "security": [],
                "responses": {"200": _resp("OpenAPI document", {"type": "object"})},
            }
        },
        "/v1/instances": {
            "post": _op(
                "Create an instance",
                {
                    "201": _resp("created", INSTANCE),
                    "200": _resp("replayed clientToken", INSTANCE),
                    "409": _resp("clientToken reused with another body", ERROR),
                },
                params=[TENANT_Q],
                body={"$ref": "#/components/schemas/InstanceSpec"},
                op_id="createInstance",
            ),
            "get": _op(
                "List instances",
                {"200": _resp("a page", {"$ref": "#/components/schemas/InstanceList"})},
                params=[
                    TENANT_Q,
                    _q("phase", "Filter by phase"),
                    _q("region", "Filter by region"),
                    _q("labels", "Label selector, e.g. app=web,tier!=db"),
                    _q("limit", "Page size", {"type": "integer", "minimum": 1, "maximum": 1000}),
                    _q("continue", "Token from the previous page"),
                ],
                op_id="listInstances",
            ),
        },
        "/v1/instances/batch": {
            "post": _op(
                "Create many instances",
                {"201": _resp("created", {"$ref": "#/components/schemas/InstanceList"})},
                params=[TENANT_Q],
                body={"$ref": "#/components/schemas/Batch"},
                op_id="createInstances",
            )
        },
        "/v1/instances/{id}": {
            "parameters": [ID_PARAM],
            "get": _op(
                "Get an instance", {"200": _resp("the instance", INSTANCE)}, params=[TENANT_Q], op_id="getInstance"
            ),
            "delete": _op(
                "Delete an instance", {"202": _resp("deleting", INSTANCE)}, params=[TENANT_Q], op_id="deleteInstance"
            ),
        },
        "/v1/instances/{id}/restart": {
            "parameters": [ID_PARAM],
            "post": _op(
                "Restart an instance's containers",
                {"202": _resp("restarting", INSTANCE)},
                params=[TENANT_Q],
                op_id="restartInstance",
            ),
        },
        "/v1/instances/{id}/events": {
            "parameters": [ID_PARAM],
            "get": _op(
                "Lifecycle events of an instance",
                {"200": _resp("events", items), "501": _resp("no event store configured", ERROR)},
                params=[TENANT_Q],
                op_id="instanceEvents",
            ),
        },
        "/v1/instances/{id}/logs": {
            "parameters": [ID_PARAM],
            "get": _op(
                "Container logs (kubectl logs semantics); kept after the instance is gone",
                {"200": _resp("log text; JSON lines with Accept: application/json; a stream with follow=true",
                              TEXT, "text/plain")},
                params=[TENANT_Q, _q("container", "Container name"),
                        _q("tailLines", "Last N lines", {"type": "integer", "minimum": 0, "maximum": 10000}),
                        _q("sinceSeconds", "Relative start", {"type": "integer", "minimum": 1}),
                        _q("sinceTime", "RFC 3339 start"), _q("untilTime", "RFC 3339 end"),
                        _q("timestamps", "Prefix each line with its time", {"type": "boolean"}),
                        _q("limitBytes", "Cut the output after N bytes", {"type": "integer", "minimum": 1}),
                        _q("previous", "The previous run of the container", {"type": "boolean"}),
                        _q("q", "Text query"), _q("pageToken", "Continue after this token (search_after)"),
                        _q("follow", "Stream new lines as they arrive", {"type": "boolean"})],
                op_id="instanceLogs",
            ),
        },
        "/v1/billing/usage": {
            "get": _op(
                "Billed usage per instance or per day (tenant-scoped; admins see all)",
                {"200": _resp("usage", {"type": "object"}), "501": _resp("no Elasticsearch", ERROR)},
                params=[TENANT_Q, _q("period", "YYYY-MM, YYYY-MM-DD or A..B"),
                        _q("groupBy", "instance or day", {"enum": ["instance", "day"]})],
                op_id="billingUsage",
            )
        },
        "/v1/billing/reports/{period}": {
            "parameters": [{"name": "period", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": _op(
                "A billing report as JSON, CSV or HTML with a chart (Accept or ?format=)",
                {"200": {"description": "the report", "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "text/csv": {"schema": TEXT}, "text/html": {"schema": TEXT}}},
                 "501": _resp("no Elasticsearch", ERROR)},
                params=[TENANT_Q, _q("format", "json, csv or html", {"enum": ["json", "csv", "html"]})],
                op_id="billingReport",
            ),
        },
        "/v1/price": {
            "post": _op(
                "Price of a spec (or cpu/memoryGiB) in a region for some seconds, at the rounded size",
                {"200": _resp("the quote", {"type": "object"})},
                body={"type": "object", "required": ["region"], "properties": {
                    "region": {"type": "string"}, "seconds": {"type": "integer", "minimum": 0},
                    "spec": {"$ref": "#/components/schemas/InstanceSpec"},
                    "cpu": {"type": "number"}, "memoryGiB": {"type": "number"},
                    "at": {"type": "string", "format": "date-time"}}},
                op_id="price",
            )
        },
        "/v1/regions": {
            "get": _op("Regions and their clusters' health", {"200": _resp("regions", items)}, op_id="regions")
        },
        "/v1/sizes": {"get": _op("Supported sizes", {"200": _resp("sizes", items)}, op_id="sizes")},
        "/v1/tenants": {
            "post": _op(
                "Create a tenant (admin)",
                {"201": _resp("created", {"$ref": "#/components/schemas/Tenant"})},
                body={"$ref": "#/components/schemas/Tenant"},
                op_id="createTenant",
            ),
            "get": _op("List tenants (admin)", {"200": _resp("tenants", items)}, op_id="listTenants"),
        },
        "/v1/tenants/{tenant}/keys": {
            "parameters": [{"name": "tenant", "in": "path", "required": True, "schema": {"type": "string"}}],
            "post": _op(
                "Create an API key for a tenant (admin); the key is shown once",
                {"201": _resp("the key", {"type": "object"})},
                op_id="createKey",
            ),
        },
    }


def openapi_document(extra_paths: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CIS",
            "version": "v1",
            "description": "Serverless container instances on Kata-isolated pods",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": {**_paths(), **(extra_paths or {})},
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "cis_<id>_<secret>"}},
        },
    }
