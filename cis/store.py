"""ContainerInstance custom resources in the management cluster: the store of record.

An adapter: Kubernetes errors become CIS errors here. Instance id = CR name, so a retried
create answers AlreadyExists instead of making a second instance; a `clientToken` maps
to a deterministic id and the stored spec fingerprint tells a retry from a conflict.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cis.domain import errors
from cis.domain.ids import InstanceId, TenantName, tenant_namespace
from cis.domain.model import (
    Instance,
    decode_secret_data,
    instance_from_resource,
    instance_secret_name,
    instance_to_resource,
    owner_reference,
    secret_resource,
    status_resource,
)
from cis.domain.timestamps import parse_optional
from kubeio.client import JSON, Conflict, KubeClient, KubeError, NotFound, Unreachable

log = logging.getLogger(__name__)

GROUP_PATH = "/apis/cis.io/v1"
RESTART_ANNOTATION = "cis.io/restart-requested-at"


def instances_path(namespace: str | None = None) -> str:
    if namespace is None:
        return f"{GROUP_PATH}/containerinstances"
    return f"{GROUP_PATH}/namespaces/{namespace}/containerinstances"


def instance_path(tenant: TenantName, instance_id: str) -> str:
    return f"{instances_path(tenant_namespace(tenant))}/{instance_id}"


def translate(exc: KubeError, kind: str = "instance", name: str = "") -> errors.CisError:
    """The one place Kubernetes failures become CIS errors."""
    if isinstance(exc, NotFound):
        return errors.NotFound(kind, name)
    if isinstance(exc, Conflict):
        return errors.Conflict(f"{kind} {name!r} changed or exists: {exc.message}")
    if isinstance(exc, Unreachable) or exc.status in (429, 500, 502, 503, 504):
        return errors.Temporary(f"management cluster unavailable: {exc.message}", retry_after=2)
    if exc.status == 422:
        return errors.InvalidInput("", exc.message)
    return errors.Permanent(f"management cluster: {exc}")


@dataclass(frozen=True)
class Page:
    items: list[Instance]
    continue_token: str | None
    # The items' REST representation as JSON text, when the lister had it at hand.
    public_json: list[str] | None = None


class InstanceStore:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        # The newest revision this process wrote to a ContainerInstance: a list served from
        # the informer's cache waits until the cache reflects it (read-your-writes).
        self.last_write_rv = 0

    def _wrote(self, raw: JSON) -> JSON:
        with contextlib.suppress(KeyError, TypeError, ValueError):
            self.last_write_rv = max(self.last_write_rv, int(raw["metadata"]["resourceVersion"]))
        return raw

    async def ensure_namespace(self, tenant: TenantName) -> None:
        ns = tenant_namespace(tenant)
        try:
            await self.kube.create("/api/v1/namespaces", {
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "labels": {"cis.io/tenant": tenant}},
            })
        except Conflict:
            pass
        except KubeError as exc:
            raise translate(exc, "namespace", ns) from exc

    async def create(self, instance: Instance) -> Instance:
        """Create the CR (and its Secret first, so the controller never sees a spec whose
        secret values are missing). Raises Conflict if the id exists."""
        secret = secret_resource(instance)
        ns = instance.namespace
        try:
            if secret is not None:
                try:
                    await self.kube.create(f"/api/v1/namespaces/{ns}/secrets", secret)
                except Conflict:
                    await self.kube.replace(
                        f"/api/v1/namespaces/{ns}/secrets/{secret['metadata']['name']}", secret)
            body = instance_to_resource(instance)
            # The controller owns status from here on (it may already be writing it);
            # the first reconcile records the Queued state and its event.
            body.pop("status")
            stored = self._wrote(await self.kube.create(instances_path(ns), body))
        except KubeError as exc:
            raise translate(exc, "instance", instance.id) from exc
        # What we sent plus what the server assigned: no need to decode the spec again.
        meta = stored.get("metadata") or {}
        result = replace(
            instance,
            uid=str(meta.get("uid", "")),
            resource_version=meta.get("resourceVersion"),
            created_at=parse_optional(meta.get("creationTimestamp")) or instance.created_at,
        )
        if secret is not None:
            await self._adopt_secret(result)
        return result

    async def _adopt_secret(self, instance: Instance) -> None:
        """Make the Secret owned by the CR, so deleting the instance deletes it too."""
        path = f"/api/v1/namespaces/{instance.namespace}/secrets/{instance_secret_name(instance.id)}"
        try:
            await self.kube.patch(path, {"metadata": {"ownerReferences": [owner_reference(instance)]}})
        except KubeError as exc:
            log.warning("instance %s: could not adopt its secret: %s", instance.id, exc)

    async def get_raw(self, tenant: TenantName, instance_id: str) -> JSON:
        try:
            return await self.kube.get(instance_path(tenant, instance_id))
        except KubeError as exc:
            raise translate(exc, "instance", instance_id) from exc

    async def get(self, tenant: TenantName, instance_id: str, with_secrets: bool = False) -> Instance:
        raw = await self.get_raw(tenant, instance_id)
        secrets = await self.secrets(tenant, InstanceId(instance_id)) if with_secrets else None
        return instance_from_resource(raw, secrets)

    async def secrets(self, tenant: TenantName, instance_id: InstanceId) -> dict[str, str]:
        path = f"/api/v1/namespaces/{tenant_namespace(tenant)}/secrets/{instance_secret_name(instance_id)}"
        try:
            return decode_secret_data(await self.kube.get(path))
        except NotFound:
            return {}
        except KubeError as exc:
            raise translate(exc, "secret", instance_id) from exc

    async def list(self, tenant: TenantName | None, *, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int = 100,
                   continue_token: str | None = None) -> Page:
        path = instances_path(tenant_namespace(tenant) if tenant else None)
        try:
            raw = await self.kube.get(path, {"labelSelector": label_selector, "fieldSelector": field_selector,
                                             "limit": limit, "continue": continue_token})
        except KubeError as exc:
            if exc.status == 410:
                raise errors.InvalidInput("continue", "the continue token has expired") from exc
            if exc.status == 400 and continue_token:
                raise errors.InvalidInput("continue", "invalid continue token") from exc
            if exc.status == 400:
                raise errors.InvalidInput("labels", exc.message) from exc
            raise translate(exc) from exc
        items = []
        for obj in raw.get("items", []):
            try:
                items.append(instance_from_resource(obj))
            except (ValueError, errors.InvalidInput):
                log.warning("skipping malformed ContainerInstance %s", obj.get("metadata", {}).get("name"))
        return Page(items, raw.get("metadata", {}).get("continue") or None)

    async def update_status(self, instance: Instance) -> tuple[Instance, JSON]:
        """Write status with optimistic concurrency (resourceVersion); Conflict on a race.
        Returns the instance at its new version and the object as the apiserver stored it
        (what the watch will bring, so a cache can hold it at once)."""
        try:
            raw = self._wrote(await self.kube.replace(f"{instance_path(instance.tenant, instance.id)}/status",
                                                      status_resource(instance)))
        except KubeError as exc:
            raise translate(exc, "instance", instance.id) from exc
        # The stored status is exactly the one we wrote: no need to decode the object again.
        return replace(instance, resource_version=(raw.get("metadata") or {}).get("resourceVersion")), raw

    async def request_restart(self, instance: Instance) -> Instance:
        """Mark the instance for a restart; the controller recreates its pod."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            raw = self._wrote(await self.kube.patch(instance_path(instance.tenant, instance.id),
                                                    {"metadata": {"annotations": {RESTART_ANNOTATION: stamp}}}))
        except KubeError as exc:
            raise translate(exc, "instance", instance.id) from exc
        return instance_from_resource(raw)

    async def delete(self, tenant: TenantName, instance_id: str) -> None:
        try:
            self._wrote(await self.kube.call("DELETE", instance_path(tenant, instance_id)))
        except KubeError as exc:
            raise translate(exc, "instance", instance_id) from exc

    async def remove_finalizer(self, raw: Mapping[str, Any], finalizer: str) -> None:
        meta = raw["metadata"]
        remaining = [f for f in meta.get("finalizers", []) if f != finalizer]
        body = {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}}
        path = f"{instances_path(meta['namespace'])}/{meta['name']}"
        try:
            await self.kube.patch(path, body)
        except NotFound:
            pass
        except KubeError as exc:
            raise translate(exc, "instance", meta["name"]) from exc

