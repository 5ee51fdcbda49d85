"""The CRDs must describe exactly what the domain writes: an undeclared field would be
pruned silently by the API server, a wrong type rejected."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from cis.domain.model import PLURAL, instance_to_resource
from cis.domain.tenants import parse_tenant_spec, tenant_to_resource

from .builders import make_instance
from .test_model import RICH_STATUS
from .test_spec import FULL
from .test_spec_volumes import WITH_VOLUMES
from .test_tenants import SPEC as TENANT_SPEC

CRDS = Path(__file__).resolve().parents[3] / "deploy" / "crds"


def load(name: str) -> dict[str, Any]:
    doc = yaml.safe_load((CRDS / name).read_text())
    assert isinstance(doc, dict)
    return doc


def schema_of(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def check_structural(node: dict[str, Any], path: str) -> None:
    if node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields"):
        return
    assert "type" in node, f"{path}: no type (not structural)"
    if node["type"] == "object":
        for key, child in node.get("properties", {}).items():
            check_structural(child, f"{path}.{key}")
        if isinstance(node.get("additionalProperties"), dict):
            check_structural(node["additionalProperties"], f"{path}.*")
    elif node["type"] == "array":
        assert "items" in node, f"{path}: array without items"
        check_structural(node["items"], f"{path}[]")
    else:
        assert "properties" not in node and "items" not in node, path


TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def validate(value: Any, node: dict[str, Any], path: str) -> None:
    """Fails on anything the API server would prune or reject."""
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return
    if node.get("x-kubernetes-int-or-string"):
        assert isinstance(value, int | str) and not isinstance(value, bool), path
        return
    expected = TYPES[node["type"]]
    type_ok = isinstance(value, expected)  # kept apart: narrowing Any would lose the type
    bool_ok = node["type"] == "boolean" or not isinstance(value, bool)
    assert type_ok and bool_ok, f"{path}: {value!r} is not {node['type']}"
    if "enum" in node:
        assert value in node["enum"], f"{path}: {value!r} not in enum"
    if node["type"] == "object":
        props = node.get("properties")
        for req in node.get("required", []):
            assert req in value, f"{path}.{req} required"
        for key, child in value.items():
            if props is not None and key in props:
                validate(child, props[key], f"{path}.{key}")
            elif isinstance(node.get("additionalProperties"), dict):
                validate(child, node["additionalProperties"], f"{path}.{key}")
            elif props is not None and path != "metadata":
                pytest.fail(f"{path}.{key} would be pruned")
    if node["type"] == "array":
        for i, item in enumerate(value):
            validate(item, node["items"], f"{path}[{i}]")


@pytest.mark.parametrize("name", ["containerinstances.yaml", "tenants.yaml"])
def test_crds_are_structural(name: str) -> None:
    crd = load(name)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1" and crd["kind"] == "CustomResourceDefinition"
    assert crd["spec"]["group"] == "cis.io"
    assert crd["metadata"]["name"] == f"{crd['spec']['names']['plural']}.cis.io"
    (version,) = crd["spec"]["versions"]
    assert version["name"] == "v1" and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}
    check_structural(schema_of(crd), "")


def resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    node = schema
    for part in json_path.strip(".").split("."):
        node = node["properties"][part]
    return node


def test_container_instance_crd_names_and_columns() -> None:
    crd = load("containerinstances.yaml")
    names = crd["spec"]["names"]
    assert names["plural"] == PLURAL and names["kind"] == "ContainerInstance"
    assert "ci" in names["shortNames"] and crd["spec"]["scope"] == "Namespaced"
    (version,) = crd["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert list(columns) == ["Phase", "Cluster", "Region", "CPU", "Memory", "Age"]
    schema = schema_of(crd)
    for name, path in columns.items():
        if name != "Age":
            assert resolve(schema, path)["type"] == "string"
    for field in version["selectableFields"]:
        assert resolve(schema, field["jsonPath"])["type"] == "string"


def test_tenant_crd_is_cluster_scoped() -> None:
    crd = load("tenants.yaml")
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["kind"] == "Tenant"


@pytest.mark.parametrize(
    "body",
    [{"containers": [{"name": "a", "image": "nginx"}]}, FULL, WITH_VOLUMES],
    ids=["minimal", "full", "volumes"],
)
def test_instance_resource_matches_the_schema(body: dict[str, Any]) -> None:
    resource = json.loads(json.dumps(instance_to_resource(make_instance(body, status=RICH_STATUS))))
    validate(resource, schema_of(load("containerinstances.yaml")), "")


def test_tenant_resource_matches_the_schema() -> None:
    resource = json.loads(json.dumps(tenant_to_resource(parse_tenant_spec("acme", TENANT_SPEC))))
    validate(resource, schema_of(load("tenants.yaml")), "")
