"""The work queue dedups keys and never runs one key twice at once."""

from __future__ import annotations

import asyncio

from kubeio.workqueue import WorkQueue


async def test_a_key_added_many_times_is_processed_once() -> None:
    q = WorkQueue()
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)

    for _ in range(5):
        q.add("a")
    q.add("b")
    worker = asyncio.create_task(q.work(process), name="worker")
    await asyncio.sleep(0.01)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert seen == ["a", "b"]


async def test_a_key_added_while_processing_runs_again_after_not_concurrently() -> None:
    q = WorkQueue()
    running = 0
    peak = 0
    runs = 0
    gate = asyncio.Event()

    async def process(key: str) -> None:
        nonlocal running, peak, runs
        running += 1
        peak = max(peak, running)
        runs += 1
        if runs == 1:
            q.add("k")  # arrives while "k" is active
            await gate.wait()
        running -= 1

    q.add("k")
    workers = [asyncio.create_task(q.work(process), name=f"w{i}") for i in range(3)]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.sleep(0.01)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    assert (runs, peak) == (2, 1)


async def test_delayed_keys_arrive_when_due() -> None:
    now = [100.0]
    q = WorkQueue(clock=lambda: now[0])
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)

    tasks = [asyncio.create_task(q.run_delayed(), name="delays"),
             asyncio.create_task(q.work(process), name="worker")]
    q.add_after("later", 5.0)
    await asyncio.sleep(0.01)
    assert seen == []
    now[0] = 106.0
    q.add_after("poke", 0.001)  # wakes the delay loop, which re-reads the clock
    await asyncio.sleep(0.05)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert "later" in seen


async def _drain(q: WorkQueue) -> list[str]:
    """Everything `q` holds, in the order one worker takes it."""
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)

    worker = asyncio.create_task(q.work(process), name="worker")
    await asyncio.sleep(0.01)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    return seen


async def test_urgent_keys_are_taken_before_earlier_normal_ones() -> None:
    q = WorkQueue()
    for key in ("a", "b", "c"):
        q.add(key)
    q.add("x", urgent=True)
    q.add("y", urgent=True)
    assert len(q) == 5
    assert await _drain(q) == ["x", "y", "a", "b", "c"]
    assert len(q) == 0


async def test_a_waiting_key_added_as_urgent_moves_up_and_still_runs_once() -> None:
    q = WorkQueue()
    for key in ("a", "b", "c"):
        q.add(key)
    q.add("c", urgent=True)
    q.add("c")  # already urgent: stays there
    assert len(q) == 3
    assert await _drain(q) == ["c", "a", "b"]


async def test_a_key_taken_from_the_urgent_lane_can_wait_in_the_normal_lane_again() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a", urgent=True)  # leaves a stale entry in the normal lane
    assert await _drain(q) == ["a"]
    q.add("b")
    q.add("a")
    assert await _drain(q) == ["b", "a"]
    assert len(q) == 0


async def test_an_urgent_add_while_processing_reruns_the_key_urgently() -> None:
    q = WorkQueue()
    seen: list[str] = []

    async def process(key: str) -> None:
        seen.append(key)
        if key == "k" and seen.count("k") == 1:
            q.add("n")
            q.add("k", urgent=True)  # "k" is active: it runs again, ahead of "n"

    q.add("k")
    worker = asyncio.create_task(q.work(process), name="worker")
    await asyncio.sleep(0.01)
    worker.cancel()
    await asyncio.gather(worker, return_exceptions=True)
    assert seen == ["k", "k", "n"]
