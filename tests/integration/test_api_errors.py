"""Every invalid request is a 4xx naming the field, and leaves nothing behind."""

from __future__ import annotations

from typing import Any

import pytest

from cis.devstack.platform import CisProcess, api
from tests.integration.helpers import Client, small

BAD_CREATES: list[tuple[str, Any, int, str]] = [
    ("no-containers", {"containers": []}, 400, "containers"),
    ("missing-image", {"containers": [{"name": "a"}]}, 400, "containers[0].image"),
    ("bad-name", {"containers": [{"name": "A_B", "image": "nginx"}]}, 400, "containers[0].name"),
    ("dup-names", {"containers": [{"name": "a", "image": "nginx"}, {"name": "a", "image": "nginx"}]},
     400, "containers[1].name"),
    ("cpu-negative", {"containers": [{"name": "a", "image": "nginx", "resources": {"cpu": -1}}]},
     400, "containers[0].resources.cpu"),
    ("too-big", {"containers": [{"name": "a", "image": "nginx", "resources": {"cpu": 64}}]},
     400, "containers[0].resources.cpu"),
    ("bad-policy", {**small(), "restartPolicy": "Sometimes"}, 400, "restartPolicy"),
    ("unknown-field", {**small(), "colour": "blue"}, 400, "colour"),
    ("bad-env", {"containers": [{"name": "a", "image": "nginx", "env": [{"name": "1X=", "value": "v"}]}]},
     400, "containers[0].env[0].name"),
    ("bad-port", {"containers": [{"name": "a", "image": "nginx", "ports": [{"port": 70000}]}]},
     400, "containers[0].ports[0].port"),
    ("bad-cidr", {**small(), "ingress": [{"cidr": "10.0.0.0/33"}]}, 400, "ingress[0].cidr"),
    ("unknown-region", {**small(), "region": "mars-1"}, 400, "region"),
    ("not-an-object", [1, 2], 400, ""),
]


@pytest.mark.parametrize(("body", "status", "field"), [c[1:] for c in BAD_CREATES], ids=[c[0] for c in BAD_CREATES])
def test_bad_create_is_rejected_naming_the_field(cis: CisProcess, tenant_key: str, body: Any, status: int,
                                                 field: str) -> None:
    before = len(Client(cis, tenant_key).list_all())
    got, err = api(cis.url, "POST", "/v1/instances", tenant_key, body)
    assert got == status, err
    assert err["error"]["code"] == "invalid_input"
    assert err["error"].get("field", "") == field, err
    assert len(Client(cis, tenant_key).list_all()) == before


def test_malformed_json_is_400(cis: CisProcess, tenant_key: str) -> None:
    import urllib.request

    req = urllib.request.Request(f"{cis.url}/v1/instances", data=b"{not json", method="POST",
                                 headers={"Authorization": f"Bearer {tenant_key}"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("expected 400")
    except urllib.error.HTTPError as err:
        assert err.code == 400


@pytest.mark.parametrize(("key", "status"), [("", 401), ("cis_" + "a" * 52, 401), ("garbage", 401)],
                         ids=["none", "unknown", "malformed"])
def test_bad_keys_are_401(cis: CisProcess, key: str, status: int) -> None:
    assert api(cis.url, "GET", "/v1/instances", key)[0] == status


@pytest.mark.parametrize(("path", "field"), [
    ("/v1/instances?limit=0", "limit"), ("/v1/instances?limit=x", "limit"),
    ("/v1/instances?phase=Dancing", "phase"), ("/v1/instances?continue=bogus", "continue"),
], ids=["limit-zero", "limit-nan", "phase", "continue"])
def test_bad_list_queries_are_400(cis: CisProcess, tenant_key: str, path: str, field: str) -> None:
    status, body = api(cis.url, "GET", path, tenant_key)
    assert status == 400 and body["error"]["field"] == field, body


def test_bad_batch_creates_nothing(cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    before = len(c.list_all())
    status, body = c.call("POST", "/v1/instances/batch", {"instances": [small(), {"containers": [{"name": "x"}]}]})
    assert status == 400 and body["error"]["field"] == "instances[1].containers[0].image"
    status, body = c.call("POST", "/v1/instances/batch", {"template": small(), "count": 0})
    assert status == 400 and body["error"]["field"] == "count"
    assert len(c.list_all()) == before


def test_quota_and_admin_routes(cis: CisProcess, other_tenant_key: str) -> None:
    c = Client(cis, other_tenant_key)
    status, body = c.call("POST", "/v1/instances/batch", {"template": small(), "count": 1000})
    assert status == 403 and body["error"]["code"] == "quota_exceeded"
    assert c.call("POST", "/v1/tenants", {"name": "sneaky"})[0] == 403
    assert c.call("GET", "/v1/nope")[0] == 404


def test_client_token_makes_create_idempotent(cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    first = c.call("POST", "/v1/instances", small(clientToken="tok-1"))
    again = c.call("POST", "/v1/instances", small(clientToken="tok-1"))
    assert (first[0], again[0]) == (201, 200)
    assert first[1]["id"] == again[1]["id"]
    other = c.call("POST", "/v1/instances", {**small(clientToken="tok-1"), "restartPolicy": "Never"})
    assert other[0] == 409
    c.call("DELETE", f"/v1/instances/{first[1]['id']}")


def test_openapi_lists_every_served_route(cis: CisProcess) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{cis.url}/openapi.json", timeout=10) as resp:
        doc = json.loads(resp.read())
    from openapi_spec_validator import validate

    validate(doc)
    for path in ("/v1/instances", "/v1/instances/{id}", "/v1/instances/batch", "/v1/regions", "/v1/sizes",
                 "/healthz", "/readyz", "/metrics"):
        assert path in doc["paths"], path
