"""Node registration under NodeRestriction, status patches and Lease renewal, against an
in-memory apiserver at the client seam (it refuses restricted labels as the real one does)."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

from kubeio.client import KubeError, NotFound
from vk_provider.node_controller import NodeController
from vk_provider.settings import NodeSettings

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class FakeApiserver:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []

    async def get(self, path: str, params: Any = None) -> dict[str, Any]:
        self.calls.append(("GET", path))
        if path not in self.objects:
            raise NotFound(404, "NotFound", path)
        return copy.deepcopy(self.objects[path])

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("POST", path))
        if "kubernetes.io/role" in body["metadata"].get("labels", {}):
            raise KubeError(403, "Forbidden", 'node "n" is not allowed to set the following labels: kubernetes.io/role')
        obj = {**copy.deepcopy(body), "metadata": {**body["metadata"], "uid": "uid-" + body["metadata"]["name"]}}
        self.objects[f"{path}/{body['metadata']['name']}"] = obj
        return obj

    async def patch(self, path: str, body: dict[str, Any], content_type: str = "") -> dict[str, Any]:
        self.calls.append(("PATCH", path))
        target = path.removesuffix("/status")
        if target not in self.objects:
            raise NotFound(404, "NotFound", path)
        self.objects[target]["status"] = body["status"]
        return self.objects[target]

    async def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("PUT", path))
        self.objects[path] = body
        return body


async def ok() -> None:
    return None


def controller(api: FakeApiserver, pods_ready: asyncio.Event) -> NodeController:
    return NodeController(api, NodeSettings(name="n", internal_ip="192.0.2.1"), ok, pods_ready,  # type: ignore[arg-type]
                          clock=lambda: NOW)


async def test_registration_drops_restricted_labels_and_patches_status() -> None:
    api, ready = FakeApiserver(), asyncio.Event()
    node = controller(api, ready)
    await node.update_status()
    stored = api.objects["/api/v1/nodes/n"]
    assert "kubernetes.io/role" not in stored["metadata"]["labels"]
    assert stored["metadata"]["labels"]["type"] == "virtual-kubelet"
    ready_cond = next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")
    assert (ready_cond["status"], ready_cond["reason"]) == ("False", "KubeletNotReady")
    assert [m for m, _ in api.calls] == ["GET", "POST", "POST", "PATCH"]
    assert node.registered.is_set()


async def test_lease_is_created_then_renewed() -> None:
    api = FakeApiserver()
    node = controller(api, asyncio.Event())
    await node.update_status()
    await node._renew_lease()
    await node._renew_lease()
    lease = api.objects["/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n"]
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-n"
    assert [m for m, p in api.calls if "leases" in p] == ["GET", "POST", "GET", "PUT"]
    assert node.lease_held.is_set()


async def test_readiness_follows_pods_and_cis() -> None:
    api, pods_ready = FakeApiserver(), asyncio.Event()
    node = controller(api, pods_ready)
    assert node.readiness().reason == "KubeletNotReady"
    node._pinged = True
    pods_ready.set()
    assert node.readiness().ready
    node._cis_error = "connection refused"
    assert (node.readiness().ready, node.readiness().reason) == (False, "CISUnreachable")
