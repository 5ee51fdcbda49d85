"""The pod controller end to end in memory: an apiserver fake at the client seam (pods list +
watch, status patches with uid preconditions, deletes) and the instant CIS. Covers create ->
Running, graceful deletion, force deletion, restart reconciliation and missing Secrets."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeio.client import Conflict, NotFound
from tests.unit.vk_provider.builders import pod
from vk_provider.events import EventRecorder
from vk_provider.instant import InstantCis
from vk_provider.pod_controller import PodController
from vk_provider.settings import NodeSettings, PodSettings
from vk_provider.translate import LABEL_NODE, LABEL_POD_UID

JSON = dict[str, Any]


class FakeApiserver:
    """Pods of one node: list, watch, status merge patches, deletes; Secrets never exist."""

    def __init__(self) -> None:
        self.pods: dict[str, JSON] = {}
        self.events: list[JSON] = []
        self._rv = 100
        self._watchers: list[asyncio.Queue[bytes]] = []

    def _emit(self, kind: str, obj: JSON) -> None:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        line = json.dumps({"type": kind, "object": obj}).encode()
        for q in self._watchers:
            q.put_nowait(line)

    def add(self, p: JSON) -> None:
        key = f"{p['metadata']['namespace']}/{p['metadata']['name']}"
        self.pods[key] = p
        self._emit("ADDED", copy.deepcopy(p))

    def delete_gracefully(self, key: str, grace: int = 30) -> None:
        p = self.pods[key]
        p["metadata"]["deletionTimestamp"] = (datetime.now(UTC) + timedelta(seconds=grace)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
        p["metadata"]["deletionGracePeriodSeconds"] = grace
        self._emit("MODIFIED", copy.deepcopy(p))

    def force_delete(self, key: str) -> None:
        self._emit("DELETED", copy.deepcopy(self.pods.pop(key)))

    async def get(self, path: str, params: Any = None) -> JSON:
        if path == "/api/v1/pods":
            return {"items": copy.deepcopy(list(self.pods.values())), "metadata": {"resourceVersion": str(self._rv)}}
        raise NotFound(404, "NotFound", path)

    async def stream_lines(self, path: str, params: Any, timeout: float | None) -> AsyncIterator[bytes]:
        q: asyncio.Queue[bytes] = asyncio.Queue()
        self._watchers.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._watchers.remove(q)

    async def patch(self, path: str, body: JSON, content_type: str = "") -> JSON:
        ns, name = path.split("/")[4], path.split("/")[6]
        p = self.pods.get(f"{ns}/{name}")
        if p is None:
            raise NotFound(404, "NotFound", path)
        if body["metadata"]["uid"] != p["metadata"]["uid"]:
            raise Conflict(409, "Conflict", "uid precondition")
        for k, v in body["status"].items():
            if v is None:
                p["status"].pop(k, None)
            else:
                p["status"][k] = v
        self._emit("MODIFIED", copy.deepcopy(p))
        return copy.deepcopy(p)

    async def delete(self, path: str, body: JSON | None = None) -> JSON | None:
        ns, name = path.split("/")[4], path.split("/")[6]
        p = self.pods.get(f"{ns}/{name}")
        if p is None:
            return None
        assert body is not None and body["gracePeriodSeconds"] == 0
        if body["preconditions"]["uid"] != p["metadata"]["uid"]:
            raise Conflict(409, "Conflict", "uid precondition")
        self.force_delete(f"{ns}/{name}")
        return p

    async def create(self, path: str, body: JSON) -> JSON:
        self.events.append(body)
        return body


NODE = NodeSettings(name="vnode", internal_ip="192.0.2.1")
FAST = PodSettings(workers=2, retry_base_seconds=0.05, retry_cap_seconds=0.2)


@contextlib.asynccontextmanager
async def running(api: FakeApiserver, cis: InstantCis) -> AsyncIterator[PodController]:
    recorder = EventRecorder(api, NODE.name)  # type: ignore[arg-type]
    ctl = PodController(api, cis, recorder, NODE, FAST)  # type: ignore[arg-type]
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(ctl.run(), name="controller-under-test"),
                 tg.create_task(recorder.run(), name="recorder-under-test")]
        try:
            await asyncio.wait_for(ctl.ready.wait(), 5)
            yield ctl
        finally:
            for t in tasks:
                t.cancel()


async def eventually(what: str, check: Callable[[], Any], timeout: float = 5.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not {what} within {timeout}s") from None


def phase(api: FakeApiserver, key: str) -> str | None:
    p = api.pods.get(key)
    return None if p is None else p["status"].get("phase")


def for_node(uid: str) -> JSON:
    return {"containers": [{"name": "main", "image": "nginx:1.27"}], "clientToken": "t-" + uid,
            "labels": {LABEL_NODE: "vnode", LABEL_POD_UID: uid}}


async def test_a_pod_runs_and_graceful_deletion_removes_it_with_its_instance() -> None:
    api, cis = FakeApiserver(), InstantCis()
    api.add(pod("web-1", uid="u1"))
    async with running(api, cis):
        await eventually("Running", lambda: phase(api, "default/web-1") == "Running")
        assert len(cis.instances) == 1
        status = api.pods["default/web-1"]["status"]
        assert status["containerStatuses"][0]["ready"] and status["podIP"].startswith("10.250.")
        api.delete_gracefully("default/web-1")
        await eventually("removed", lambda: "default/web-1" not in api.pods)
        assert not cis.instances
    assert cis.calls["create"] == 1
    assert [e["reason"] for e in api.events] == ["ProviderCreateSuccess"]


async def test_a_force_deleted_pod_loses_its_instance() -> None:
    api, cis = FakeApiserver(), InstantCis()
    api.add(pod("web-1", uid="u1"))
    async with running(api, cis):
        await eventually("Running", lambda: phase(api, "default/web-1") == "Running")
        api.force_delete("default/web-1")
        await eventually("the instance deleted", lambda: not cis.instances)


async def test_restart_reconciles_both_ways_without_duplicates() -> None:
    api, cis = FakeApiserver(), InstantCis()
    api.add(pod("kept", uid="u-kept"))
    async with running(api, cis):
        await eventually("Running", lambda: phase(api, "default/kept") == "Running")
    # While the provider is down: a pod appears, another pod's instance is orphaned.
    api.add(pod("new", uid="u-new"))
    orphan = await cis.create(for_node("u-gone"))
    async with running(api, cis):
        await eventually("new Running", lambda: phase(api, "default/new") == "Running")
        await eventually("the orphan deleted", lambda: orphan.id not in cis.instances)
        assert sorted(i.labels[LABEL_POD_UID] for i in cis.instances.values()) == ["u-kept", "u-new"]
    assert cis.calls["create"] == 3  # kept, orphan (by the test), new: kept was not created again


async def test_a_pod_whose_instance_vanished_fails_like_a_lost_pod() -> None:
    api, cis = FakeApiserver(), InstantCis()
    api.add(pod("web-1", uid="u1"))
    async with running(api, cis):
        await eventually("Running", lambda: phase(api, "default/web-1") == "Running")
        await cis.delete(next(iter(cis.instances)))
        await eventually("Failed", lambda: phase(api, "default/web-1") == "Failed")
        status = api.pods["default/web-1"]["status"]
        assert status["reason"] == "NotFound"
        assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 137
    assert cis.calls["create"] == 1


async def test_a_missing_mandatory_secret_keeps_the_pod_out_of_cis() -> None:
    api, cis = FakeApiserver(), InstantCis()
    env = [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "k"}}}]
    api.add(pod("web-1", uid="u1", containers=[{"name": "main", "image": "nginx", "env": env}]))
    async with running(api, cis):
        await eventually("CreateContainerConfigError", lambda: (api.pods["default/web-1"]["status"].get(
            "containerStatuses") or [{}])[0].get("state", {}).get("waiting", {}).get("reason")
            == "CreateContainerConfigError")
        await eventually("the event", lambda: any(e["reason"] == "MandatorySecretNotFound" for e in api.events))
        await asyncio.sleep(0.3)  # several retries
    assert cis.calls["create"] == 0
