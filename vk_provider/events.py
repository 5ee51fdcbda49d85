"""core/v1 Events on pods, as the kubelet records them (`kubectl describe pod` shows them).

`emit()` never blocks a sync: it queues, and `run()` writes. A repeat of the same reason
and message for the same pod bumps `count` and `lastTimestamp` of the existing Event
instead of creating another, like client-go's event correlator. A full queue drops the
event with a log line: events are best effort, pod status is what must be right.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubeio.client import KubeClient, KubeError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Clock = Callable[[], datetime]
COMPONENT = "virtual-kubelet"


@dataclass(frozen=True)
class PendingEvent:
    namespace: str
    pod: str
    uid: str
    reason: str
    message: str
    warning: bool


def format_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_object(e: PendingEvent, node: str, name: str, now: datetime) -> JSON:
    stamp = format_time(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": e.namespace},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": e.namespace,
                           "name": e.pod, "uid": e.uid},
        "reason": e.reason, "message": e.message[:1024], "type": "Warning" if e.warning else "Normal",
        "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp,
        "source": {"component": COMPONENT, "host": node},
        "reportingComponent": COMPONENT, "reportingInstance": node,
    }


class EventRecorder:
    def __init__(self, kube: KubeClient, node: str, *, clock: Clock = lambda: datetime.now(UTC),
                 max_queue: int = 10_000, remembered: int = 10_000) -> None:
        self._kube = kube
        self._node = node
        self._clock = clock
        self._queue: asyncio.Queue[PendingEvent] = asyncio.Queue(max_queue)
        self._seen: OrderedDict[PendingEvent, tuple[str, int]] = OrderedDict()
        self._remembered = remembered

    def emit(self, pod: JSON, reason: str, message: str, *, warning: bool = True) -> None:
        meta = pod.get("metadata", {})
        event = PendingEvent(str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", "")),
                             reason, message, warning)
        log.debug("pod %s/%s: %s: %s",
                event.namespace, event.pod, reason, message)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            log.warning("event queue full; dropped %s for %s/%s", reason, event.namespace, event.pod)

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._write(event)
            except KubeError as exc:
                log.warning("could not record event %s on %s/%s: %s", event.reason, event.namespace, event.pod, exc)

    async def _write(self, e: PendingEvent) -> None:
        now = self._clock()
        base = f"/api/v1/namespaces/{e.namespace}/events"
        seen = self._seen.get(e)
        if seen is not None:
            name, count = seen
            try:
                await self._kube.patch(f"{base}/{name}", {"count": count + 1, "lastTimestamp": format_time(now)})
                self._remember(e, name, count + 1)
                return
            except KubeError as exc:
                if exc.status != 404:
                    raise
        name = f"{e.pod}.{os.urandom(8).hex()}"
        await self._kube.create(base, event_object(e, self._node, name, now))
        self._remember(e, name, 1)

    def _remember(self, e: PendingEvent, name: str, count: int) -> None:
        self._seen[e] = (name, count)
        self._seen.move_to_end(e)
        while len(self._seen) > self._remembered:
            self._seen.popitem(last=False)
