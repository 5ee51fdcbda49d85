"""An in-memory CIS whose instances are Running the moment they are created.

The counterpart of the Go VK's mock provider: `cis-vk --cis-target instant:` measures the
provider's own overhead against the control plane (bench/bench_vk.py), and unit tests use
it as the one fake behind the `Cis` protocol. It honours clientToken idempotency, label
selectors (equality only), the watch contract of cis.v1 (initial snapshot, then changes,
deletions included) and counts calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from collections import Counter, deque
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

from vk_provider.cis_client import Instance, InstanceEvent, LogOptions, NotFound

JSON = dict[str, Any]


def matches(labels: dict[str, str], selector: str) -> bool:
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class InstantCis:
    def __init__(self, tenant: str = "instant") -> None:
        self.tenant = tenant
        self.instances: dict[str, Instance] = {}
        self.calls: Counter[str] = Counter()
        self._rv = itertools.count(1)
        self._ip = itertools.count(1)
        self._watchers: set[asyncio.Queue[InstanceEvent]] = set()
        self._history: deque[InstanceEvent] = deque(maxlen=10_000)  # for resumed watches

    def _publish(self, event: InstanceEvent) -> None:
        self._history.append(event)
        for q in self._watchers:
            q.put_nowait(event)

    def _running(self, iid: str, spec: JSON) -> Instance:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        n = next(self._ip)
        status = {
            "phase": "Running", "podIP": f"10.250.{n // 250 % 250}.{n % 250 + 1}", "startedAt": now,
            "containers": [{"name": c["name"], "state": "Running", "ready": True, "restartCount": 0,
                            "startedAt": now} for c in spec.get("containers") or []],
        }
        body = {"id": iid, "uid": iid, "tenant": self.tenant, "labels": dict(spec.get("labels") or {}),
                "createdAt": now, "spec": spec, "status": status}
        return Instance(id=iid, uid=iid, resource_version=str(next(self._rv)), body=body)

    async def create(self, spec: JSON) -> Instance:
        self.calls["create"] += 1
        token = str(spec.get("clientToken") or next(self._rv))
        iid = "ci-" + hashlib.sha256(token.encode()).hexdigest()[:20]
        if iid in self.instances:
            return self.instances[iid]
        inst = self._running(iid, spec)
        self.instances[iid] = inst
        self._publish(InstanceEvent(inst))
        return inst

    async def get(self, instance_id: str) -> Instance:
        self.calls["get"] += 1
        if instance_id not in self.instances:
            raise NotFound(f"instance {instance_id} not found")
        return self.instances[instance_id]

    async def list(self, label_selector: str) -> list[Instance]:
        self.calls["list"] += 1
        return [i for i in self.instances.values() if matches(i.labels, label_selector)]

    async def delete(self, instance_id: str) -> None:
        self.calls["delete"] += 1
        inst = self.instances.pop(instance_id, None)
        if inst is not None:
            gone = Instance(inst.id, inst.uid, str(next(self._rv)), inst.body)
            self._publish(InstanceEvent(gone, deleted=True))

    async def ping(self, label_selector: str) -> None:
        self.calls["ping"] += 1

    async def watch(self, label_selector: str, resource_version: str) -> AsyncGenerator[InstanceEvent, None]:
        self.calls["watch"] += 1
        queue: asyncio.Queue[InstanceEvent] = asyncio.Queue()
        self._watchers.add(queue)
        try:
            if not resource_version:
                backlog = [InstanceEvent(i, initial=True) for i in self.instances.values()]
            else:
                backlog = [e for e in self._history if int(e.instance.resource_version) > int(resource_version)]
            for event in backlog:
                if matches(event.instance.labels, label_selector):
                    yield event
            while True:
                event = await queue.get()
                if matches(event.instance.labels, label_selector):
                    yield event
        finally:
            self._watchers.discard(queue)

    async def logs(self, instance_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        self.calls["logs"] += 1
        if instance_id not in self.instances:
            raise NotFound(f"instance {instance_id} not found")
        if options.tail_lines != 0:
            yield f"{instance_id}/{options.container}: running in the instant backend\n".encode()
        if options.follow:
            await asyncio.Event().wait()

    async def close(self) -> None:
        return None
