"""A keyed work queue, like client-go's: a key waiting is queued once however often it is
added, a key being processed is never processed twice at once, and a key added while
being processed runs again afterwards. Delayed re-adds serve retries and timeouts.

Two lanes: keys added as `urgent` are taken before all others. A controller marks as
urgent the keys whose only news is something that already happened (a pod started), so a
burst of new work (a thousand instances to place) does not make users wait to be told.
A key waiting in the normal lane moves up when it is added again as urgent."""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]


class WorkQueue:
    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._urgent: collections.deque[str] = collections.deque()
        self._normal: collections.deque[str] = collections.deque()
        # Entries in the two lanes, stale ones included; each worker takes one per turn.
        self._entries = asyncio.Semaphore(0)
        self._queued: dict[str, bool] = {}  # waiting keys -> in the urgent lane
        self._active: set[str] = set()
        self._dirty: dict[str, bool] = {}  # added while active -> as urgent
        self._delayed: list[tuple[float, int, str]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._queued) + len(self._delayed)

    def add(self, key: str, *, urgent: bool = False) -> None:
        if key in self._active:
            self._dirty[key] = self._dirty.get(key, False) or urgent
            return
        queued = self._queued.get(key)
        if queued is None or (urgent and not queued):
            # A key moving up leaves its normal-lane entry behind; `_take` skips it.
            self._queued[key] = urgent
            (self._urgent if urgent else self._normal).append(key)
            self._entries.release()

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

    async def _take(self) -> str:
        """The next waiting key: urgent ones first, each lane in the order keys arrived."""
        while True:
            await self._entries.acquire()
            key = (self._urgent or self._normal).popleft()
            if self._queued.pop(key, None) is None:
                continue  # stale: the key moved to the urgent lane and was taken there
            return key

    async def work(self, process: Callable[[str], Awaitable[None]]) -> None:
        """One worker: take a key, process it, repeat. Run several for parallelism."""
        while True:
            key = await self._take()
            self._active.add(key)
            try:
                await process(key)
            finally:
                self._active.discard(key)
                if key in self._dirty:
                    self.add(key, urgent=self._dirty.pop(key))
