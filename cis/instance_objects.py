"""Create an instance's objects on a backing cluster and tie them to its pod.

The controller builds the manifests (``domain.pods.instance_manifests``: Secrets, the
instance's own NetworkPolicy if it has rules, then the Pod) and hands them here. Creation
is idempotent: an object that exists already is kept (a replayed reconcile). Once the pod
exists, every other object gets the pod as its owner, so the backing cluster's garbage
collector deletes env values, registry passwords, volume files and the instance's policy
together with the pod, whichever way the pod goes (released, re-placed, restarted,
orphan-collected): nothing of a tenant's stays behind.

An object left from an earlier attempt on the same cluster may still be owned by that
attempt's pod, now gone; taking it over for the new pod stops the collector from removing
it, and one the collector removed meanwhile is created again.
"""

from __future__ import annotations

import logging
from typing import Any

from cis.domain.pods import owned_by_pod
from kubeio.client import JSON, Conflict, KubeClient, NotFound

log = logging.getLogger(__name__)

_PLURALS = {"Pod": "pods", "Secret": "secrets", "Namespace": "namespaces", "NetworkPolicy": "networkpolicies"}


def collection_path(manifest: dict[str, Any]) -> str:
    api, kind, ns = manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace")
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    plural = _PLURALS[kind]
    return f"{prefix}/namespaces/{ns}/{plural}" if ns else f"{prefix}/{plural}"


async def ensure_instance_objects(client: KubeClient, manifests: list[dict[str, Any]]) -> None:
    """Create ``manifests`` in order (existing ones are kept), then make the pod own the
    others. Costs one PATCH per object besides the pod: nothing for a plain instance."""
    pod: JSON | None = None
    for manifest in manifests:
        try:
            created = await client.create(collection_path(manifest), manifest)
        except Conflict:
            continue
        if manifest["kind"] == "Pod":
            pod = created
    dependents = [m for m in manifests if m["kind"] != "Pod"]
    if pod is None or not dependents:
        # The pod existed already: the call that created it gave the others their owner.
        return
    name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
    for manifest in dependents:
        owned = owned_by_pod(manifest, name, uid)
        path = f"{collection_path(manifest)}/{manifest['metadata']['name']}"
        try:
            await client.patch(path, {"metadata": {"ownerReferences": owned["metadata"]["ownerReferences"]}})
        except NotFound:
            log.info("%s was collected with an earlier pod; creating it again", path)
            await client.create(collection_path(manifest), owned)
