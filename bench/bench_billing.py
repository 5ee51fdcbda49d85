"""Benchmark: billing run vs a bare composite-aggregation scan over the same events.

    python bench/bench_billing.py --es http://127.0.0.1:9200 [--events 1000000 --instances 100000]

Loads N synthetic lifecycle events (DESIGN section 4 shape, ~10 per instance: created,
queued, scheduled, started, heartbeats, an occasional container restart, stopped, deleted;
1% of instances lose their stop) for one UTC day into a fresh index, then times, each in
a fresh child process so peak RSS belongs to that phase alone:

  (a) a bare composite aggregation over `instance.uid`, paged to the end with the same
      page size as billing (the baseline: the least work any per-instance pass over the
      index must do);
  (b) `billing.runner.run_billing` for that day into an empty usage index, writing every
      usage record; then, for the breakdown, a rerun (records unchanged, so nothing is
      rewritten: the loop mode's steady state) and a reconcile (the same reads and
      metering as a run, without writes);
  (c) the write floor: the records (b) wrote, read back before the clock starts, indexed
      again into an empty index with the usage mapping, in the batches a run sends. No
      run can store its records faster, so (c)/(a) is the lowest ratio this
      Elasticsearch on this machine allows.

Prints the times, the ratio b/a (target <= 2.0), the floor c/a and the billing run's peak RSS (target
<= 500 MB). `--check` exits 1 when a target is missed. Indices are deleted at the end
unless `--keep`; `--reuse` skips loading when the events index is already there.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_scan

from billing import store
from billing.prices import default_prices
from billing.queries import EVENTS_INDEX_SORT, EVENTS_MAPPING
from billing.reconcile import reconcile
from billing.runner import BULK_RECORDS, WRITES_IN_FLIGHT, run_billing
from billing.usage import EncodedRecord

DAY = datetime(2026, 11, 21, tzinfo=UTC)
SIZES = [("0.25", "0.5"), ("0.5", "1"), ("1", "2"), ("2", "4")]
RATIO_TARGET, RSS_TARGET_MB = 2.0, 500
PAGE = store.DEFAULT_SCAN.run_page  # the baseline pages like the billing run does


def _ts(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generate(events: int, instances: int, seed: int = 1) -> Iterator[dict[str, Any]]:
    """Yield `events` events spread over `instances` instances, one instance at a time."""
    rng = random.Random(seed)
    per_instance, extra = divmod(events, instances)
    for n in range(instances):
        count = per_instance + (1 if n < extra else 0)
        uid = hashlib.sha1(f"bench-{n}".encode()).hexdigest()
        cpu, memory = SIZES[n % len(SIZES)]
        base = {
            "id": f"ci-bench-{n}",
            "uid": uid,
            "tenant": f"tenant-{n % 50}",
            "region": "region-a" if n % 3 else "region-b",
            "cluster": f"cluster-{n % 4}",
            "cpu": cpu,
            "memory_gib": memory,
        }
        start = DAY + timedelta(seconds=rng.randrange(0, 20 * 3600), milliseconds=rng.randrange(1000))
        stop = start + timedelta(seconds=rng.randrange(60, 4 * 3600), milliseconds=rng.randrange(1000))
        lost_stop = rng.random() < 0.01
        lifecycle = ["instance.created", "instance.queued", "instance.scheduled", "instance.started"]
        closing = [] if lost_stop else ["instance.stopped", "instance.deleted"]
        beats = max(count - len(lifecycle) - len(closing), 0)
        kinds = (lifecycle + ["instance.running"] * beats + closing)[:count]
        if beats > 1 and rng.random() < 0.05:
            kinds[len(lifecycle)] = "container.restarted"
        for seq, kind in enumerate(kinds, start=1):
            if kind in ("instance.running", "container.restarted"):
                at = start + (stop - start) * (seq - len(lifecycle)) / (beats + 1)
            elif kind in ("instance.stopped", "instance.deleted"):
                at = stop
            else:
                at = start - timedelta(seconds=len(lifecycle) - seq + 1)
            started = kind not in ("instance.created", "instance.queued", "instance.scheduled")
            ended = kind in ("instance.stopped", "instance.deleted")
            yield {
                "@timestamp": _ts(at),
                "event": {
                    "id": hashlib.sha1(f"{uid}|{kind}|{seq}".encode()).hexdigest(),
                    "kind": kind,
                    "seq": seq,
                },
                "instance": {
                    **base,
                    "started_at": _ts(start) if started else None,
                    "stopped_at": _ts(stop) if ended else None,
                    "reason": "Completed" if ended else None,
                },
            }


async def load(es: AsyncElasticsearch, index: str, events: int, instances: int) -> None:
    await es.indices.create(
        index=index,
        mappings=EVENTS_MAPPING,
        settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "-1", **EVENTS_INDEX_SORT},
    )
    gate = asyncio.Semaphore(2)  # two bulks in flight keep one ES core busy without 429s
    started, sent = time.perf_counter(), 0

    async def send(batch: list[dict[str, Any]]) -> None:
        try:
            resp = await es.bulk(operations=batch, filter_path="errors,items.*.error")
            if resp.get("errors"):
                raise RuntimeError(f"bulk load failed: {json.dumps(resp)[:500]}")
        finally:
            gate.release()

    async with asyncio.TaskGroup() as tasks:
        batch: list[dict[str, Any]] = []
        for event in generate(events, instances):
            batch += [{"index": {"_index": index, "_id": event["event"]["id"]}}, event]
            if len(batch) >= 10_000:
                await gate.acquire()  # back-pressure: never generate far ahead of ES
                tasks.create_task(send(batch), name="bench-bulk")
                sent += len(batch) // 2
                batch = []
                print(f"\rloaded {sent} events", end="", file=sys.stderr, flush=True)
        if batch:
            await gate.acquire()
            tasks.create_task(send(batch), name="bench-bulk")
    await es.indices.put_settings(index=index, settings={"refresh_interval": "1s"})
    await es.indices.refresh(index=index)
    await es.indices.forcemerge(index=index, max_num_segments=1)
    print(f"\rloaded {events} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)


async def composite_scan(es: AsyncElasticsearch, index: str) -> int:
    """Every distinct instance uid, paged like the billing run pages (PAGE per request)."""
    after: dict[str, Any] | None = None
    buckets = 0
    while True:
        composite: dict[str, Any] = {"size": PAGE, "sources": [{"uid": {"terms": {"field": "instance.uid"}}}]}
        if after:
            composite["after"] = after
        resp = await es.search(index=index, size=0, aggs={"uids": {"composite": composite}}, filter_path="aggregations")
        agg = resp["aggregations"]["uids"]
        buckets += len(agg["buckets"])
        if len(agg["buckets"]) < PAGE:
            return buckets
        after = agg["after_key"]


async def records_as_written(es: AsyncElasticsearch, index: str) -> list[EncodedRecord]:
    """The usage records in `index`, encoded again as a run sends them (compact JSON)."""
    records = []
    async for hit in async_scan(es, index=index, size=5_000, preserve_order=False):
        source = hit["_source"]
        text = json.dumps(source, ensure_ascii=True, separators=(",", ":"))
        records.append(EncodedRecord(hit["_id"], source["digest"], text))
    return records


async def write_records(es: AsyncElasticsearch, records: list[EncodedRecord], index: str) -> None:
    """Store `records` into a new usage index the way a run does: same mapping and
    settings, the same bulk size and number of bulks in flight, refreshed at the end."""
    await store.ensure_usage_index(es, index)
    gate = asyncio.Semaphore(WRITES_IN_FLIGHT)

    async def write(batch: list[EncodedRecord]) -> None:
        async with gate:
            await store.write_usage(es, batch, index)

    async with asyncio.TaskGroup() as tasks:
        for start in range(0, len(records), BULK_RECORDS):
            tasks.create_task(write(records[start : start + BULK_RECORDS]))
    await store.refresh_usage(es, index)


async def phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one timed phase in this (fresh) process."""
    indices = store.Indices(events=f"{args.prefix}-events", usage=f"{args.prefix}-usage")
    window = (DAY, DAY + timedelta(days=1))
    async with store.connect(args.es, request_timeout=600) as es:
        if args.phase == "bill":  # a first run: nothing stored yet, every record is written
            await es.options(ignore_status=404).indices.delete(index=indices.usage)
        if args.phase == "write":  # untimed: what (b) wrote, and an empty index to write it to
            records = await records_as_written(es, indices.usage)
            await es.options(ignore_status=404).indices.delete(index=f"{args.prefix}-floor")
        began = time.perf_counter()
        if args.phase == "write":
            await write_records(es, records, f"{args.prefix}-floor")
            detail: dict[str, Any] = {"records": len(records)}
        elif args.phase == "scan":
            detail = {"buckets": await composite_scan(es, indices.events)}
        elif args.phase == "reconcile":  # the read and metering half of a run, no writes
            result = await reconcile(es, default_prices(), *window, indices=indices)
            detail = {"instances": result.instances, "differences": len(result.differences)}
        else:  # "bill" or "rebill" (records already stored: only changes are written)
            summary = await run_billing(es, default_prices(), *window, indices=indices)
            detail = {"instances": summary.instances, "written": summary.records_written,
                      "unchanged": summary.records_unchanged, "flagged": summary.flagged_count,
                      "errors": len(summary.errors)}  # fmt: skip
        seconds = time.perf_counter() - began
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"seconds": seconds, "rss_mb": rss_mb, **detail}


def run_phase(args: argparse.Namespace, name: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--es", args.es, "--prefix", args.prefix, "--phase", name]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def prepare(args: argparse.Namespace) -> None:
    async with store.connect(args.es, request_timeout=600) as es:
        index = f"{args.prefix}-events"
        if args.reuse and await es.indices.exists(index=index):
            return
        await es.options(ignore_status=404).indices.delete(index=all_indices(args.prefix))
        await load(es, index, args.events, args.instances)


def all_indices(prefix: str) -> str:
    return ",".join(f"{prefix}-{name}" for name in ("events", "usage", "floor"))


async def cleanup(args: argparse.Namespace) -> None:
    async with store.connect(args.es) as es:
        await es.options(ignore_status=404).indices.delete(index=all_indices(args.prefix))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--es", required=True, help="Elasticsearch URL")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--prefix", default="bench-billing", help="index name prefix")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per phase (best kept)")
    parser.add_argument("--reuse", action="store_true", help="keep an existing events index")
    parser.add_argument("--keep", action="store_true", help="do not delete the indices")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--phase", choices=["scan", "bill", "rebill", "reconcile", "write"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:  # child process: one timed phase, result as the last stdout line
        print(json.dumps(asyncio.run(phase(args))))
        return 0
    if args.instances < 1 or args.events < args.instances:
        parser.error("need at least one instance and one event per instance")

    asyncio.run(prepare(args))
    try:
        run_phase(args, "scan")  # warm the page cache so neither phase pays for cold reads
        scans, bills = [], []
        for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits both alike
            scans.append(run_phase(args, "scan"))
            bills.append(run_phase(args, "bill"))
        rebill = run_phase(args, "rebill")
        read = run_phase(args, "reconcile")
        floor = min((run_phase(args, "write") for _ in range(args.repeat)), key=lambda r: r["seconds"])
    finally:
        if not args.keep:
            asyncio.run(cleanup(args))
    scan = min(scans, key=lambda r: r["seconds"])
    bill = min(bills, key=lambda r: r["seconds"])
    ratio = bill["seconds"] / scan["seconds"]
    peak = max(b["rss_mb"] for b in [*bills, rebill])
    print(f"events: {args.events}, instances: {args.instances}")
    print(f"(a) composite scan:      {scan['seconds']:7.2f} s ({scan['buckets']} instances)")
    print(
        f"(b) billing run:         {bill['seconds']:7.2f} s ({bill['written']} records written, "
        f"{bill['flagged']} runs flagged, {bill['errors']} errors)"
    )
    print(f"    of which read+meter: {read['seconds']:7.2f} s (a reconcile: same reads, no writes)")
    print(
        f"    rerun, unchanged:    {rebill['seconds']:7.2f} s ({rebill['written']} written, "
        f"{rebill['unchanged']} unchanged)"
    )
    print(
        f"(c) write floor:         {floor['seconds']:7.2f} s (the {floor['records']} records of (b), "
        "stored again from ready request bodies)"
    )
    print(
        f"ratio b/a: {ratio:.2f} (target <= {RATIO_TARGET}); rerun/a: {rebill['seconds'] / scan['seconds']:.2f}; "
        f"floor c/a: {floor['seconds'] / scan['seconds']:.2f}"
    )
    print(f"peak RSS of the billing run: {peak:.0f} MB (target <= {RSS_TARGET_MB} MB)")
    missed = ratio > RATIO_TARGET or peak > RSS_TARGET_MB
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
