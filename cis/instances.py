"""Instance use cases behind both APIs: create (one or a batch), get, list, delete, restart.

Order of checks for a create: parse and validate the whole request, then tenant rules
(region allowed, quota), then the rate limit, and only then write. Nothing is written for
a rejected request, and a batch is validated as a whole before its first write.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Protocol

from cis.decoded import DecodedInstances
from cis.domain import errors
from cis.domain.ids import (
    InstanceId,
    TenantName,
    instance_id_for_token,
    new_instance_id,
    tenant_namespace,
)
from cis.domain.listing import ListQuery, decode_continue, select_page
from cis.domain.model import Instance, Phase, new_instance
from cis.domain.selectors import parse_label_selector
from cis.domain.spec import InstanceSpec, parse_spec
from cis.domain.tenants import (
    Tenant,
    TokenBucket,
    check_quota,
    check_region_allowed,
    take_tokens,
    usage_of,
)
from cis.store import InstanceStore, Page
from cis.tenants import Principal, TenantDirectory

MAX_BATCH = 1000
# CR creates of one batch in flight at once. A CR write is latency-bound in the apiserver
# (about three times a ConfigMap's work), so a batch of 1,000 needs many in flight: 32
# took twice as long as 96 in bench/bench_instances.py. Well under the apiserver's default
# of 200 mutating requests in flight.
CREATE_CONCURRENCY = 96


def check_region(tenant: Tenant, spec: InstanceSpec, known_regions: set[str], field: str) -> None:
    if spec.region is None:
        return
    if spec.region not in known_regions:
        raise errors.InvalidInput(f"{field}region", f"unknown region {spec.region!r}; see GET /v1/regions")
    try:
        check_region_allowed(tenant, spec.region)
    except errors.InvalidInput as exc:
        raise errors.InvalidInput(f"{field}region", exc.reason) from exc


def parse_batch(raw: Any) -> list[InstanceSpec]:
    """`{"template": spec, "count": n}` or `{"instances": [spec, ...]}`."""
    if not isinstance(raw, dict):
        raise errors.InvalidInput("", "the body must be a JSON object")
    unknown = set(raw) - {"template", "count", "instances"}
    if unknown:
        raise errors.InvalidInput(sorted(unknown)[0], "unknown field")
    if "instances" in raw:
        if "template" in raw or "count" in raw:
            raise errors.InvalidInput("instances", "give either instances or template and count")
        items = raw["instances"]
        if not isinstance(items, list) or not items:
            raise errors.InvalidInput("instances", "must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise errors.InvalidInput("instances", f"at most {MAX_BATCH} per request")
        specs = []
        for i, item in enumerate(items):
            try:
                specs.append(parse_spec(item))
            except errors.InvalidInput as exc:
                raise errors.InvalidInput(f"instances[{i}].{exc.field}".rstrip("."), exc.reason) from exc
        return specs
    count = raw.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
        raise errors.InvalidInput("count", f"must be an integer from 1 to {MAX_BATCH}")
    try:
        template = parse_spec(raw.get("template"))
    except errors.InvalidInput as exc:
        raise errors.InvalidInput(f"template.{exc.field}".rstrip("."), exc.reason) from exc
    if template.client_token:
        raise errors.InvalidInput("template.clientToken", "not allowed in a template; use one per instance")
    return [template] * count


class InstanceCache(Protocol):
    """The process's informer view of every ContainerInstance, keyed `namespace/name`."""

    @property
    def objects(self) -> Mapping[str, dict[str, Any]]: ...

    async def reflects(self, resource_version: int) -> bool:
        """Whether the cache is usable, after waiting briefly for it to reflect
        `resource_version`; False only before its first list."""
        ...


class InstanceService:
    def __init__(self, store: InstanceStore, tenants: TenantDirectory,
                 cached_instances: Callable[[TenantName], Iterable[Instance]],
                 regions: Callable[[], set[str]], *,
                 cache: InstanceCache | None = None,
                 decoded: DecodedInstances | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self.store = store
        self._cache = cache
        self._decoded = decoded or DecodedInstances()
        self.tenants = tenants
        self._cached = cached_instances
        self._regions = regions
        self._clock = clock
        self._random = random_bytes
        self._buckets: dict[str, TokenBucket] = {}
        self._namespaces: set[str] = set()
        # Quota is checked and then written; serialize per tenant so two concurrent
        # requests cannot both pass the same remaining quota.
        self._locks: dict[str, asyncio.Lock] = {}

    def _tenant_for(self, principal: Principal, tenant: str | None) -> Tenant:
        if principal.is_admin:
            if not tenant:
                raise errors.InvalidInput("tenant", "an admin must name the tenant")
            return self.tenants.tenant(tenant)
        return self.tenants.tenant(principal.tenant or "")

    async def create(self, principal: Principal, raw_body: Any, tenant: str | None = None) -> tuple[Instance, bool]:
        """Returns (instance, created); created is False for a clientToken replay."""
        spec = parse_spec(raw_body)
        t = self._tenant_for(principal, tenant)
        check_region(t, spec, self._regions(), "")
        if spec.client_token:
            replay = await self._replay(t.name, spec)
            if replay is not None:
                return replay, False
        created = await self._create_many(t, [spec])
        return created[0], True

    async def create_batch(self, principal: Principal, raw_body: Any, tenant: str | None = None) -> list[Instance]:
        specs = parse_batch(raw_body)
        t = self._tenant_for(principal, tenant)
        from_template = len({id(spec) for spec in specs}) == 1
        known = self._regions()
        for i, spec in enumerate(specs):
            check_region(t, spec, known, "template." if from_template else f"instances[{i}].")
        return await self._create_many(t, specs)

    async def _replay(self, tenant: TenantName, spec: InstanceSpec) -> Instance | None:
        assert spec.client_token
        instance_id = instance_id_for_token(tenant, spec.client_token)
        try:
            existing = await self.store.get(tenant, instance_id)
        except errors.NotFound:
            return None
        fresh = new_instance(instance_id, tenant, spec, self._clock())
        if existing.fingerprint != fresh.fingerprint:
            raise errors.Conflict("clientToken was used before with a different request body")
        return existing

    async def _create_many(self, t: Tenant, specs: list[InstanceSpec]) -> list[Instance]:
        lock = self._locks.setdefault(t.name, asyncio.Lock())
        async with lock:
            usage = usage_of(self._cached(t.name))
            for spec in specs:
                check_quota(t, usage, spec.size)
                usage = usage.plus(spec.size)
            bucket, wait = take_tokens(self._buckets.get(t.name), rate=t.create_rate_per_second,
                                       burst=t.create_burst, now=self._clock(), count=len(specs))
            self._buckets[t.name] = bucket
            if wait == float("inf"):
                raise errors.InvalidInput("count", f"more than the tenant's createBurst of {t.create_burst}")
            if wait:
                raise errors.RateLimited(retry_after=max(1, math.ceil(wait)))
            ns = tenant_namespace(t.name)
            if ns not in self._namespaces:
                await self.store.ensure_namespace(t.name)
                self._namespaces.add(ns)
            now = self._clock()
            instances = []
            for spec in specs:
                iid = (instance_id_for_token(t.name, spec.client_token) if spec.client_token
                       else new_instance_id(self._random))
                instances.append(new_instance(iid, t.name, spec, now))
            return await self._create_all_or_nothing(instances)

    async def _create_all_or_nothing(self, instances: list[Instance]) -> list[Instance]:
        """Create concurrently; if any create fails, delete the ones that succeeded, so a
        failed batch leaves nothing behind, and raise the first error."""
        sem = asyncio.Semaphore(CREATE_CONCURRENCY)

        async def create_one(inst: Instance) -> Instance:
            async with sem:
                return await self.store.create(inst)

        results = await asyncio.gather(*(create_one(i) for i in instances), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if not failures:
            return [r for r in results if isinstance(r, Instance)]
        for r in results:
            if isinstance(r, Instance):
                with contextlib.suppress(errors.CisError):
                    await self.store.delete(r.tenant, r.id)
        first = failures[0]
        if isinstance(first, errors.CisError):
            raise first
        raise errors.Temporary(f"creating instances failed: {first}", retry_after=2) from first

    def _scope(self, principal: Principal, tenant: str | None) -> TenantName | None:
        if principal.is_admin:
            return TenantName(tenant) if tenant else None
        return principal.tenant

    async def get(self, principal: Principal, instance_id: str, tenant: str | None = None) -> Instance:
        scope = self._scope(principal, tenant)
        if scope is None:
            raise errors.InvalidInput("tenant", "an admin must name the tenant")
        # Another tenant's instance lives in another namespace: NotFound, never Forbidden.
        return await self.store.get(scope, instance_id)

    async def list(self, principal: Principal, *, tenant: str | None, phase: str | None,
                   region: str | None, labels: str | None, limit: int, cont: str | None) -> Page:
        if phase and phase not in {p.value for p in Phase}:
            raise errors.InvalidInput("phase", f"one of {', '.join(p.value for p in Phase)}")
        scope = self._scope(principal, tenant)
        if self._cache is not None and await self._cache.reflects(self.store.last_write_rv):
            query = ListQuery(namespace=tenant_namespace(scope) if scope else None,
                              selector=parse_label_selector(labels or "", "labels"),
                              phase=phase or None, region=region or None, limit=limit,
                              after=decode_continue(cont) if cont else None)
            raws, token = select_page(self._cache.objects, query)
            decoded = [d for d in map(self._decoded.of, raws) if d is not None]
            self._decoded.prune(self._cache.objects)
            return Page([inst for inst, _ in decoded], token, public_json=[text for _, text in decoded])
        fields = []
        if phase:
            fields.append(f"status.phase={phase}")
        if region:
            fields.append(f"status.region={region}")
        return await self.store.list(scope, label_selector=labels or None,
                                     field_selector=",".join(fields) or None,
                                     limit=limit, continue_token=cont)

    async def delete(self, principal: Principal, instance_id: str, tenant: str | None = None) -> Instance:
        inst = await self.get(principal, instance_id, tenant)
        await self.store.delete(inst.tenant, inst.id)
        return replace(inst, deleting=True)

    async def restart(self, principal: Principal, instance_id: str, tenant: str | None = None) -> Instance:
        """Restart in place: the controller deletes the pod and creates it anew."""
        inst = await self.get(principal, instance_id, tenant)
        if inst.deleting:
            raise errors.Conflict(f"instance {inst.id} is being deleted")
        return await self.store.request_restart(inst)


def instance_key(tenant: TenantName, instance_id: InstanceId | str) -> str:
    return f"{tenant_namespace(tenant)}/{instance_id}"
