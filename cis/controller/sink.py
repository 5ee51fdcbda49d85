"""Group commit of lifecycle events: many reconcilers write, one flush (one fsync) per
batch. `write()` returns only when the events are durable, so the caller may then
record the new event sequence in the instance's status."""

from __future__ import annotations

import asyncio
from typing import Any

from cis.lifecycle_log import LifecycleLog


class EventSink:
    def __init__(self, log: LifecycleLog) -> None:
        self._log = log
        self._pending: list[tuple[list[dict[str, Any]], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self.written = 0

    async def write(self, events: list[dict[str, Any]]) -> None:
        if not events:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((events, done))
        self._wake.set()
        await done

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            lines = [e for events, _ in batch for e in events]
            try:
                self.written += await asyncio.to_thread(self._log.append, lines)
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for _, fut in batch:
                if not fut.done():
                    fut.set_result(None)
