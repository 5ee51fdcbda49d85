"""Tenants and API keys as stored in the management cluster (the adapter side).

Tenants are cluster-scoped `Tenant` resources whose spec lists the hashes of their API
keys (`cis.domain.tenants`, `cis.domain.apikeys`). Platform admin keys are hashes in the
Secret `admin-api-keys` of namespace `cis-system`. Both are watched, so authenticating
a request is one dict lookup in memory.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from cis.domain import errors
from cis.domain.apikeys import bearer_key, generate_api_key, hash_api_key
from cis.domain.ids import TenantName
from cis.domain.tenants import ApiKeyRecord, Tenant, tenant_from_resource, tenant_to_resource
from kubeio.client import JSON, Conflict, KubeClient, KubeError, NotFound
from kubeio.informer import Informer

log = logging.getLogger(__name__)

SYSTEM_NAMESPACE = "cis-system"
ADMIN_SECRET = "admin-api-keys"
TENANTS_PATH = "/apis/cis.io/v1/tenants"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant, or the platform admin (tenant None)."""

    tenant: TenantName | None
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.tenant is None


def _unavailable(exc: KubeError) -> errors.Temporary:
    return errors.Temporary(f"management cluster: {exc.message}", retry_after=2)


class TenantDirectory:
    def __init__(self, kube: KubeClient, random_bytes: Callable[[int], bytes] = secrets.token_bytes,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.kube = kube
        self._random = random_bytes
        self._clock = clock
        self.tenants = Informer(kube, TENANTS_PATH, self._tenant_event)
        self.admin = Informer(kube, f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets", self._admin_event,
                              field_selector=f"metadata.name={ADMIN_SECRET}")
        self._by_hash: dict[str, tuple[TenantName | None, str]] = {}
        self._parsed: dict[str, Tenant] = {}
        self._lock = asyncio.Lock()

    def synced(self) -> bool:
        return self.tenants.synced.is_set() and self.admin.synced.is_set()

    async def _tenant_event(self, kind: str, obj: JSON) -> None:
        name = obj["metadata"]["name"]
        old = self._parsed.pop(name, None)
        if old is not None:
            for k in old.api_keys:
                self._by_hash.pop(k.hash, None)
        if kind == "DELETED":
            return
        try:
            tenant = tenant_from_resource(obj)
        except errors.InvalidInput as exc:
            log.error("tenant %s has an invalid spec: %s", name, exc)
            return
        self._parsed[name] = tenant
        for k in tenant.api_keys:
            self._by_hash[k.hash] = (tenant.name, k.id)

    async def _admin_event(self, kind: str, obj: JSON) -> None:
        for h in [h for h, (t, _) in self._by_hash.items() if t is None]:
            del self._by_hash[h]
        if kind == "DELETED":
            return
        for key_id, raw in (obj.get("data") or {}).items():
            self._by_hash[base64.b64decode(raw).decode()] = (None, key_id)

    def tenant(self, name: str) -> Tenant:
        tenant = self._parsed.get(name)
        if tenant is None:
            raise errors.NotFound("tenant", name)
        return tenant

    def all_tenants(self) -> list[Tenant]:
        return sorted(self._parsed.values(), key=lambda t: t.name)

    def authenticate(self, authorization: str | None) -> Principal:
        found = self._by_hash.get(hash_api_key(bearer_key(authorization)))
        if found is None:
            raise errors.Unauthenticated("unknown API key")
        return Principal(found[0], found[1])

    async def create_tenant(self, tenant: Tenant) -> Tenant:
        try:
            created = await self.kube.create(TENANTS_PATH, tenant_to_resource(tenant))
        except Conflict as exc:
            raise errors.Conflict(f"tenant {tenant.name!r} exists") from exc
        except KubeError as exc:
            raise _unavailable(exc) from exc
        await self._tenant_event("ADDED", created)
        return self.tenant(tenant.name)

    async def create_key(self, tenant: TenantName | None, description: str = "") -> tuple[str, str]:
        """A new key; returns (key id, key). The key is shown once and never stored."""
        new = generate_api_key(self._random)
        async with self._lock:
            if tenant is None:
                await self._add_admin_key(new.key_id, new.hash)
            else:
                await self._add_tenant_key(tenant, ApiKeyRecord(new.key_id, new.hash, self._clock(), description))
        # Usable at once by this process, without waiting for the watch.
        self._by_hash[new.hash] = (tenant, new.key_id)
        return new.key_id, new.key

    async def _add_tenant_key(self, name: TenantName, record: ApiKeyRecord) -> None:
        for _ in range(5):
            try:
                raw = await self.kube.get(f"{TENANTS_PATH}/{name}")
            except NotFound as exc:
                raise errors.NotFound("tenant", name) from exc
            tenant = tenant_from_resource(raw)
            body = tenant_to_resource(replace(tenant, api_keys=(*tenant.api_keys, record)))
            body["metadata"]["resourceVersion"] = raw["metadata"]["resourceVersion"]
            try:
                updated = await self.kube.replace(f"{TENANTS_PATH}/{name}", body)
            except Conflict:
                continue  # someone else changed the tenant: read again
            except KubeError as exc:
                raise _unavailable(exc) from exc
            await self._tenant_event("MODIFIED", updated)
            return
        raise errors.Temporary("tenant keeps changing; retry", retry_after=1)

    async def _add_admin_key(self, key_id: str, key_hash: str) -> None:
        path = f"/api/v1/namespaces/{SYSTEM_NAMESPACE}/secrets"
        data = {key_id: base64.b64encode(key_hash.encode()).decode()}
        try:
            await self.kube.create(path, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                          "metadata": {"name": ADMIN_SECRET}, "data": data})
        except Conflict:
            await self.kube.patch(f"{path}/{ADMIN_SECRET}", {"data": data})
        except KubeError as exc:
            raise _unavailable(exc) from exc

    def has_admin_key(self) -> bool:
        return any(t is None for t, _ in self._by_hash.values())

    async def ensure_system_namespace(self) -> None:
        try:
            await self.kube.create("/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}})
        except Conflict:
            pass
