"""Tenants: the cluster-scoped ``Tenant`` resource, quota checks and the create rate limit.

A ``Tenant`` (``cis.io/v1``, cluster-scoped, named by the tenant) holds::

    spec: {displayName, quota: {maxInstances, maxVcpu, maxMemoryGiB},
           allowedRegions: [..] (empty: all), createRatePerSecond, createBurst,
           apiKeys: [{id, hash, createdAt, description}]}   # hashes only, see apikeys

Defaults follow the services users compare us with (reference §1-§3): quota 100 instances,
100 vCPU, 400 GiB like ACI's default regional quota; creates refill at 20/s with a burst
of 100 like Fargate's and ECI's launch token buckets.

Quota counts *active* instances: not Succeeded/Failed (their pods are released; their
records only cost storage). ``take_tokens`` is the token bucket as a pure function of the
previous bucket and the time: the API keeps one bucket per tenant in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from cis.domain.apikeys import is_key_hash
from cis.domain.errors import InvalidInput, QuotaExceeded
from cis.domain.ids import RegionName, TenantName, parse_region_name, parse_tenant_name
from cis.domain.jsonread import (
    decimal_to_json,
    join,
    read_decimal,
    read_int,
    read_list,
    read_object,
    read_str,
)
from cis.domain.model import GROUP, VERSION, Instance
from cis.domain.sizes import Size, cpu_to_millis, gib_to_mib
from cis.domain.timestamps import format_optional, parse_optional
from kubeio.quantity import format_decimal

TENANT_KIND = "Tenant"
TENANT_PLURAL = "tenants"


@dataclass(frozen=True)
class TenantQuota:
    max_instances: int = 100
    max_vcpu: Decimal = Decimal(100)
    max_memory_gib: Decimal = Decimal(400)


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    hash: str = field(repr=False)
    created_at: datetime | None = None
    description: str = ""


@dataclass(frozen=True)
class Tenant:
    name: TenantName
    display_name: str = ""
    quota: TenantQuota = TenantQuota()
    allowed_regions: frozenset[RegionName] = frozenset()  # empty: every region
    create_rate_per_second: float = 20.0
    create_burst: int = 100
    api_keys: tuple[ApiKeyRecord, ...] = ()


_SPEC = frozenset({"displayName", "quota", "allowedRegions", "createRatePerSecond", "createBurst", "apiKeys"})


def parse_tenant_spec(name: str, raw_spec: Any) -> Tenant:
    """A ``Tenant`` from its name and spec JSON (REST body or CR spec)."""
    tenant_name = parse_tenant_name(name)
    body = read_object(raw_spec if raw_spec is not None else {}, "", _SPEC)
    quota = TenantQuota()
    if body.get("quota") is not None:
        q = read_object(body["quota"], "quota", {"maxInstances", "maxVcpu", "maxMemoryGiB"})
        quota = TenantQuota(
            max_instances=read_int(
                q.get("maxInstances", quota.max_instances),
                "quota.maxInstances",
                minimum=0,
                maximum=10_000_000,
            ),
            max_vcpu=_non_negative(q.get("maxVcpu", quota.max_vcpu), "quota.maxVcpu"),
            max_memory_gib=_non_negative(q.get("maxMemoryGiB", quota.max_memory_gib), "quota.maxMemoryGiB"),
        )
    regions = read_list(body.get("allowedRegions") or [], "allowedRegions", max_items=256)
    rate = _non_negative(body.get("createRatePerSecond", 20), "createRatePerSecond")
    keys = read_list(body.get("apiKeys") or [], "apiKeys", max_items=100)
    return Tenant(
        name=tenant_name,
        display_name=read_str(body.get("displayName", ""), "displayName", max_length=256),
        quota=quota,
        allowed_regions=frozenset(
            parse_region_name(read_str(r, join("allowedRegions", i), max_length=63), join("allowedRegions", i))
            for i, r in enumerate(regions)
        ),
        create_rate_per_second=float(rate),
        create_burst=read_int(body.get("createBurst", 100), "createBurst", minimum=1, maximum=1_000_000),
        api_keys=tuple(_key(k, join("apiKeys", i)) for i, k in enumerate(keys)),
    )


def _non_negative(raw: Any, path: str) -> Decimal:
    value = read_decimal(raw, path)
    if value < 0:
        raise InvalidInput(path, "must be >= 0")
    return value


def _key(raw: Any, path: str) -> ApiKeyRecord:
    body = read_object(raw, path, {"id", "hash", "createdAt", "description"})
    key_hash = read_str(body.get("hash"), join(path, "hash"), max_length=80)
    if not is_key_hash(key_hash):
        raise InvalidInput(join(path, "hash"), "must be sha256:<64 hex>")
    return ApiKeyRecord(
        id=read_str(body.get("id"), join(path, "id"), max_length=64, min_length=1),
        hash=key_hash,
        created_at=parse_optional(body.get("createdAt")),
        description=read_str(body.get("description", ""), join(path, "description"), max_length=256),
    )


def tenant_spec_to_json(tenant: Tenant, *, include_keys: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "displayName": tenant.display_name,
        "quota": {
            "maxInstances": tenant.quota.max_instances,
            "maxVcpu": decimal_to_json(tenant.quota.max_vcpu),
            "maxMemoryGiB": decimal_to_json(tenant.quota.max_memory_gib),
        },
        "allowedRegions": sorted(tenant.allowed_regions),
        "createRatePerSecond": tenant.create_rate_per_second,
        "createBurst": tenant.create_burst,
    }
    if include_keys:
        spec["apiKeys"] = [
            {
                "id": k.id,
                "hash": k.hash,
                "createdAt": format_optional(k.created_at),
                "description": k.description,
            }
            if k.created_at
            else {"id": k.id, "hash": k.hash, "description": k.description}
            for k in tenant.api_keys
        ]
    return spec


def tenant_to_resource(tenant: Tenant) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": TENANT_KIND,
        "metadata": {"name": tenant.name},
        "spec": tenant_spec_to_json(tenant),
    }


def tenant_from_resource(raw_resource: Mapping[str, Any]) -> Tenant:
    metadata = raw_resource.get("metadata") or {}
    return parse_tenant_spec(str(metadata.get("name", "")), raw_resource.get("spec"))


def tenant_to_public_json(tenant: Tenant) -> dict[str, Any]:
    """REST form: key ids and descriptions, never hashes."""
    out = {"name": tenant.name, **tenant_spec_to_json(tenant, include_keys=False)}
    out["apiKeys"] = [
        {"id": k.id, "description": k.description, "createdAt": format_optional(k.created_at)} for k in tenant.api_keys
    ]
    return out


# --- quota ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    instances: int = 0
    cpu_millis: int = 0
    memory_mib: int = 0

    def plus(self, size: Size, count: int = 1) -> Usage:
        return Usage(
            self.instances + count,
            self.cpu_millis + count * size.cpu_millis,
            self.memory_mib + count * size.memory_mib,
        )


def usage_of(instances: Iterable[Instance]) -> Usage:
    """What active (not ended) instances hold against the quota."""
    usage = Usage()
    for instance in instances:
        if not instance.status.phase.ended:
            usage = usage.plus(instance.size)
    return usage


def check_quota(tenant: Tenant, usage: Usage, size: Size, count: int = 1) -> None:
    """Raise ``QuotaExceeded`` if ``count`` more instances of ``size`` do not fit."""
    after = usage.plus(size, count)
    q = tenant.quota
    if after.instances > q.max_instances:
        raise QuotaExceeded(
            "instances",
            f"quota of {q.max_instances} active instances exceeded ({usage.instances} active, {count} requested)",
        )
    if after.cpu_millis > cpu_to_millis(q.max_vcpu):
        raise QuotaExceeded(
            "vcpu",
            f"quota of {format_decimal(q.max_vcpu)} vCPU exceeded "
            f"({format_decimal(Decimal(after.cpu_millis) / 1000)} needed)",
        )
    if after.memory_mib > gib_to_mib(q.max_memory_gib):
        raise QuotaExceeded(
            "memoryGiB",
            f"quota of {format_decimal(q.max_memory_gib)} GiB "
            f"exceeded ({format_decimal(Decimal(after.memory_mib) / 1024)} needed)",
        )


def check_region_allowed(tenant: Tenant, region: RegionName | None) -> None:
    """Raise ``InvalidInput("region", ...)`` for a region the tenant may not use."""
    if region is not None and tenant.allowed_regions and region not in tenant.allowed_regions:
        allowed = ", ".join(sorted(tenant.allowed_regions))
        raise InvalidInput("region", f"region {region!r} is not allowed (allowed: {allowed})")


# --- create rate ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenBucket:
    tokens: float
    updated_at: datetime


def take_tokens(
    bucket: TokenBucket | None, *, rate: float, burst: int, now: datetime, count: int = 1
) -> tuple[TokenBucket, float]:
    """Refill ``bucket`` to ``now`` and take ``count`` tokens.

    Returns the new bucket and 0.0, or (when short) the refilled bucket untouched and the
    seconds until ``count`` tokens are there (``inf`` if ``count > burst`` or rate is 0):
    raise ``RateLimited(retry_after)`` with it. A new tenant starts with a full bucket.
    """
    if bucket is None:
        tokens = float(burst)
    else:
        elapsed = max(0.0, (now - bucket.updated_at).total_seconds())
        tokens = min(float(burst), bucket.tokens + elapsed * rate)
    if tokens >= count:
        return TokenBucket(tokens - count, now), 0.0
    if count > burst or rate <= 0:
        return TokenBucket(tokens, now), float("inf")
    return TokenBucket(tokens, now), (count - tokens) / rate
