"""The OpenAPI document is valid OpenAPI 3.1 and names an error response on every operation."""

from __future__ import annotations

from openapi_spec_validator import validate

from cis.api.openapi import openapi_document


def test_document_is_valid_openapi() -> None:
    validate(openapi_document())


def test_every_v1_operation_documents_client_errors() -> None:
    doc = openapi_document()
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            if method == "parameters":
                continue
            assert {"400", "401", "404"} <= set(op["responses"]), (method, path)


def served_routes() -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, sub-applications included."""
    from typing import Any, cast

    from aiohttp import web

    from cis.api.app import Services, create_app
    from cis.api.metrics import Metrics

    svc = Services(instances=cast(Any, None), tenants=cast(Any, None), metrics=Metrics(),
                   regions=list, ready=dict)
    app = create_app(svc)
    out: set[tuple[str, str]] = set()

    def walk(a: web.Application, prefix: str) -> None:
        for resource in a.router.resources():
            if isinstance(resource, web.PrefixedSubAppResource):
                walk(resource._app, prefix)
                continue
            for route in resource:
                if route.method != "HEAD":
                    out.add((route.method.lower(), prefix + resource.canonical))

    walk(app, "")
    return out


def test_every_served_route_is_documented() -> None:
    doc = openapi_document()
    documented = {(m, p) for p, item in doc["paths"].items() for m in item if m != "parameters"}
    missing = served_routes() - documented
    assert not missing, f"routes missing from openapi.json: {sorted(missing)}"
