from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from cis.domain.apikeys import generate_api_key
from cis.domain.errors import InvalidInput, QuotaExceeded
from cis.domain.ids import RegionName
from cis.domain.model import InstanceStatus, Phase
from cis.domain.sizes import Size
from cis.domain.tenants import (
    Tenant,
    TenantQuota,
    Usage,
    check_quota,
    check_region_allowed,
    parse_tenant_spec,
    take_tokens,
    tenant_from_resource,
    tenant_to_public_json,
    tenant_to_resource,
    usage_of,
)

from .builders import T0, make_instance, scheduled

KEY = generate_api_key(lambda n: bytes(range(n)))
SPEC: dict[str, Any] = {
    "displayName": "ACME Corp",
    "quota": {"maxInstances": 10, "maxVcpu": 4, "maxMemoryGiB": 8.5},
    "allowedRegions": ["eu-west"],
    "createRatePerSecond": 2,
    "createBurst": 5,
    "apiKeys": [{"id": KEY.key_id, "hash": KEY.hash, "createdAt": "2026-11-21T10:00:00.000Z", "description": "ci"}],
}


def test_parse_defaults() -> None:
    tenant = parse_tenant_spec("acme", None)
    assert tenant.quota == TenantQuota() and tenant.create_burst == 100
    assert tenant.allowed_regions == frozenset()


def test_resource_round_trip_and_public_form() -> None:
    tenant = parse_tenant_spec("acme", SPEC)
    assert tenant.quota.max_memory_gib == Decimal("8.5")
    res = json.loads(json.dumps(tenant_to_resource(tenant)))
    assert res["kind"] == "Tenant" and res["metadata"] == {"name": "acme"}
    assert tenant_from_resource(res) == tenant
    public = json.dumps(tenant_to_public_json(tenant))
    assert KEY.hash not in public and KEY.key_id in public


@pytest.mark.parametrize(
    ("name", "spec", "field"),
    [
        ("Acme", {}, "name"),
        ("acme", {"quota": {"maxInstances": -1}}, "quota.maxInstances"),
        ("acme", {"quota": {"maxVcpu": "lots"}}, "quota.maxVcpu"),
        ("acme", {"quota": {"max": 1}}, "quota.max"),
        ("acme", {"allowedRegions": ["EU"]}, "allowedRegions[0]"),
        ("acme", {"createBurst": 0}, "createBurst"),
        ("acme", {"createRatePerSecond": -1}, "createRatePerSecond"),
        ("acme", {"apiKeys": [{"id": "x", "hash": "md5:abc"}]}, "apiKeys[0].hash"),
        ("acme", {"apiKeys": [{"hash": KEY.hash}]}, "apiKeys[0].id"),
        ("acme", {"owner": "me"}, "owner"),
    ],
    ids=[
        "name",
        "negative-instances",
        "vcpu-garbage",
        "unknown-quota-field",
        "region",
        "burst",
        "rate",
        "hash-format",
        "key-id-missing",
        "unknown-field",
    ],
)
def test_invalid_tenant_names_the_field(name: str, spec: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_tenant_spec(name, spec)
    assert err.value.field == field


TENANT = Tenant(
    name=parse_tenant_spec("acme", {}).name,
    quota=TenantQuota(max_instances=3, max_vcpu=Decimal(2), max_memory_gib=Decimal(4)),
)


@pytest.mark.parametrize(
    ("usage", "size", "count", "resource"),
    [
        (Usage(), Size(1000, 2048), 2, None),
        (Usage(2, 1000, 2048), Size(1000, 2048), 1, None),
        (Usage(3, 750, 1536), Size(250, 512), 1, "instances"),
        (Usage(1, 1500, 1024), Size(1000, 2048), 1, "vcpu"),
        (Usage(1, 500, 3072), Size(500, 1024), 1, None),
        (Usage(1, 500, 3072), Size(500, 2048), 1, "memoryGiB"),
        (Usage(), Size(250, 512), 4, "instances"),
    ],
    ids=["fits", "exactly-full", "instances", "vcpu", "memory-exact", "memory", "batch"],
)
def test_check_quota(usage: Usage, size: Size, count: int, resource: str | None) -> None:
    if resource is None:
        check_quota(TENANT, usage, size, count)
    else:
        with pytest.raises(QuotaExceeded) as err:
            check_quota(TENANT, usage, size, count)
        assert err.value.resource == resource


def test_usage_counts_only_active_instances() -> None:
    active = make_instance(status=scheduled())
    ended = make_instance(status=InstanceStatus(phase=Phase.SUCCEEDED))
    assert usage_of([active, ended]) == Usage(1, 250, 512)


def test_region_allowed() -> None:
    tenant = parse_tenant_spec("acme", SPEC)
    check_region_allowed(tenant, RegionName("eu-west"))
    check_region_allowed(tenant, None)
    with pytest.raises(InvalidInput) as err:
        check_region_allowed(tenant, RegionName("us-east"))
    assert err.value.field == "region"
    check_region_allowed(parse_tenant_spec("acme", {}), RegionName("anywhere"))


def test_token_bucket() -> None:
    bucket, wait = take_tokens(None, rate=2, burst=3, now=T0)
    assert wait == 0 and bucket.tokens == 2
    bucket, _ = take_tokens(bucket, rate=2, burst=3, now=T0)
    bucket, _ = take_tokens(bucket, rate=2, burst=3, now=T0)
    assert bucket.tokens == 0
    refused, wait = take_tokens(bucket, rate=2, burst=3, now=T0)
    assert wait == pytest.approx(0.5) and refused.tokens == 0
    later = T0 + timedelta(seconds=0.5)
    bucket, wait = take_tokens(refused, rate=2, burst=3, now=later)
    assert wait == 0 and bucket.tokens == pytest.approx(0)
    full, _ = take_tokens(bucket, rate=2, burst=3, now=later + timedelta(hours=1))
    assert full.tokens == pytest.approx(2)  # capped at burst, minus the one taken
    _, wait = take_tokens(None, rate=2, burst=3, now=T0, count=4)
    assert wait == float("inf")
    _, wait = take_tokens(bucket, rate=2, burst=3, now=later, count=3)
    assert wait == pytest.approx(1.5)
