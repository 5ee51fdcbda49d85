"""Backing-cluster objects of an instance: created in order, Secrets owned by the pod."""

from __future__ import annotations

import copy
from typing import Any, cast

from cis.domain.pods import instance_manifests
from cis.instance_objects import ensure_instance_objects
from kubeio.client import JSON, Conflict, KubeClient, NotFound
from tests.unit.domain.builders import INSTANCE_ID, container, make_instance

FILES = {"containers": [container(volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}])],
         "volumes": [{"name": "cfg", "files": {"a": {"content": "x"}}}]}


class FakeApiserver:
    """Objects by path; records every call."""

    def __init__(self) -> None:
        self.objects: dict[str, JSON] = {}
        self.calls: list[tuple[str, str]] = []

    async def create(self, path: str, body: JSON) -> JSON:
        self.calls.append(("create", path))
        key = f"{path}/{body['metadata']['name']}"
        if key in self.objects:
            raise Conflict(409, "AlreadyExists", key)
        obj = copy.deepcopy(body)
        obj["metadata"]["uid"] = f"uid-{len(self.calls)}"
        self.objects[key] = obj
        return obj

    async def patch(self, path: str, body: JSON) -> JSON:
        self.calls.append(("patch", path))
        if path not in self.objects:
            raise NotFound(404, "NotFound", path)
        self.objects[path]["metadata"].update(body["metadata"])
        return self.objects[path]


SECRET = f"/api/v1/namespaces/tenant-acme/secrets/{INSTANCE_ID}-files"
POD = f"/api/v1/namespaces/tenant-acme/pods/{INSTANCE_ID}"


async def run(api: FakeApiserver, raw: dict[str, Any]) -> None:
    await ensure_instance_objects(cast(KubeClient, api), instance_manifests(make_instance(raw)))


async def test_secrets_are_owned_by_the_new_pod() -> None:
    api = FakeApiserver()
    await run(api, FILES)
    pod_uid = api.objects[POD]["metadata"]["uid"]
    assert api.objects[SECRET]["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": INSTANCE_ID, "uid": pod_uid}]
    assert [c[0] for c in api.calls] == ["create", "create", "patch"]


async def test_an_instance_without_secrets_costs_no_patch() -> None:
    api = FakeApiserver()
    await run(api, {"containers": [container()]})
    assert [c[0] for c in api.calls] == ["create"]


async def test_a_replay_keeps_existing_objects() -> None:
    api = FakeApiserver()
    await run(api, FILES)
    before = copy.deepcopy(api.objects)
    api.calls.clear()
    await run(api, FILES)
    assert api.objects == before
    assert [c[0] for c in api.calls] == ["create", "create"]  # both conflict; no patch


async def test_a_secret_of_an_earlier_pod_is_taken_over() -> None:
    api = FakeApiserver()
    await run(api, FILES)
    del api.objects[POD]  # the earlier attempt's pod is gone; its Secret awaits collection
    await run(api, FILES)
    assert api.objects[SECRET]["metadata"]["ownerReferences"][0]["uid"] == api.objects[POD]["metadata"]["uid"]


async def test_a_secret_collected_meanwhile_is_created_again() -> None:
    class Collecting(FakeApiserver):
        async def create(self, path: str, body: JSON) -> JSON:
            obj = await super().create(path, body)
            if body["kind"] == "Pod":
                self.objects.pop(SECRET, None)  # the collector removes the old Secret right now
            return obj

    api = Collecting()
    await run(api, FILES)
    assert api.objects[SECRET]["metadata"]["ownerReferences"][0]["uid"] == api.objects[POD]["metadata"]["uid"]
    assert api.objects[SECRET]["data"] == {"cfg.0": "eA=="}


async def test_the_instance_policy_is_owned_by_the_pod_too() -> None:
    api = FakeApiserver()
    await run(api, {"containers": [container()], "ingress": [{"cidr": "203.0.113.0/24", "ports": [443]}]})
    policy = api.objects[f"/apis/networking.k8s.io/v1/namespaces/tenant-acme/networkpolicies/{INSTANCE_ID}"]
    assert policy["metadata"]["ownerReferences"][0]["uid"] == api.objects[POD]["metadata"]["uid"]
