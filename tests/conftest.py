"""Checks for every test: no asyncio task may outlive the test that started it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

# Libraries finish some bookkeeping a moment after the call that started it returns
# (grpc.aio reads a cancelled stream's final status in its own task). A task that is
# still pending after this grace period has really leaked.
LEAK_GRACE_SECONDS = 2.0


def _pending_new_tasks(before: set[asyncio.Task[object]]) -> list[asyncio.Task[object]]:
    current = asyncio.current_task()
    return [t for t in asyncio.all_tasks() - before if not t.done() and t is not current]


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LEAK_GRACE_SECONDS
    await asyncio.sleep(0)
    while (leaked := _pending_new_tasks(before)) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert not leaked, f"tasks leaked by this test: {[t.get_name() for t in leaked]}"
