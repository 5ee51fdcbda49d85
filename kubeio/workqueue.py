"""A keyed work queue, like client-go's: a key waiting is queued once however often it is
added, a key being processed is never processed twice at once, and a key added while
being processed runs again afterwards. Delayed re-adds serve retries and timeouts."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]


class WorkQueue:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._active: set[str] = set()
        self._dirty: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued) + len(self._delayed)

    def add(self, key: str) -> None:
        if key in self._active:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._ready.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        heapq.heappush(self._delayed, (self._clock() + delay, next(self._counter), key))
        self._wake.set()

    async def run_delayed(self) -> None:
        """Moves delayed keys to the ready queue when due (one task per queue)."""
        while True:
            now = self._clock()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, key = heapq.heappop(self._delayed)
                self.add(key)
            timeout = self._delayed[0][0] - now if self._delayed else None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def work(self, process: Callable[[str], Awaitable[None]]) -> None:
        """One worker: take a key, process it, repeat. Run several for parallelism."""
        while True:
            key = await self._ready.get()
            self._queued.discard(key)
            self._active.add(key)
            try:
                await process(key)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)
