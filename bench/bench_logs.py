"""Benchmark: "tail 100 lines of one instance" through the CIS log query vs raw Elasticsearch.

Loads N log documents (default 1,000,000 over 1,000 instances, 10 tenants) into uniquely
prefixed indices with the production templates, then times, for random instances,
`cis_logging.fetch_logs(LogQuery(tail_lines=100))` and the very same `_search` body issued
directly with the same client. Both run in the same process and are interleaved, so cache
and JIT effects hit both alike. Prints p50/p99 of each and the ratio (target <= 1.3).

    .venv/bin/python bench/bench_logs.py --es http://127.0.0.1:9200
    .venv/bin/python bench/bench_logs.py --es URL --docs 100000 --instances 100 --samples 200
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from elasticsearch import AsyncElasticsearch

from cis_logging.es_setup import ensure_layout
from cis_logging.layout import EsLayout
from cis_logging.query import LogQuery, build_search, format_rfc3339_nano, to_ns
from cis_logging.reading import fetch_logs


def instance_id(i: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    out, n = [], i * 2654435761 + 12345
    for _ in range(20):
        out.append(alphabet[n % 32])
        n //= 32
    return "ci-" + "".join(out)


def generate(layout: EsLayout, *, docs: int, instances: int, tenants: int,
             start: datetime) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(bulk action, document) pairs, instances interleaved as on a busy node."""
    per = max(1, docs // instances)
    base_ns = to_ns(start)
    step_ns = 3_600_000_000_000 // per  # each instance's lines spread over one hour
    for j in range(per):
        for i in range(instances):
            ns = base_ns + j * step_ns + i * 1000
            ts = format_rfc3339_nano(ns)
            inst = instance_id(i)
            doc_id = f"{i:05d}{j:07d}"
            when = start + timedelta(microseconds=(ns - base_ns) // 1000)
            yield ({"create": {"_index": layout.logs_index(when), "_id": doc_id}}, {
                "@timestamp": ts, "message": f"GET /api/items/{j} 200 {i} bytes=1234 ok",
                "stream": "stdout" if j % 10 else "stderr",
                "instance": {"id": inst}, "tenant": {"id": f"t{i % tenants}"},
                "container": {"name": "app", "restart_count": 0},
                "kubernetes": {"pod": {"uid": f"uid-{i}", "name": inst},
                               "namespace": f"tenant-t{i % tenants}"},
                "log": {"offset": j * 120}, "event": {"id": doc_id, "created": ts},
            })


async def load(es: AsyncElasticsearch, layout: EsLayout, args: argparse.Namespace) -> None:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    gen = generate(layout, docs=args.docs, instances=args.instances, tenants=args.tenants,
                   start=start)
    queue: asyncio.Queue[list[dict[str, Any]] | None] = asyncio.Queue(args.concurrency)
    loaded = 0
    t0 = time.monotonic()

    async def send_batches() -> None:
        nonlocal loaded
        while (ops := await queue.get()) is not None:
            resp = await es.bulk(operations=ops, refresh=False)
            if resp["errors"]:
                bad = [it for it in resp["items"] if it["create"].get("status", 201) >= 300
                       and it["create"]["status"] != 409]
                if bad:
                    raise RuntimeError(f"bulk errors, e.g. {bad[0]}")
            loaded += len(ops) // 2
            if loaded % 100_000 < len(ops) // 2:
                print(f"  loaded {loaded:,} docs ({loaded / (time.monotonic() - t0):,.0f}/s)",
                      flush=True)

    async with asyncio.TaskGroup() as tg:
        for w in range(args.concurrency):
            tg.create_task(send_batches(), name=f"bulk-sender-{w}")
        ops: list[dict[str, Any]] = []
        for action, doc in gen:
            ops += (action, doc)
            if len(ops) >= 2 * args.batch:
                await queue.put(ops)  # blocks while `concurrency` batches wait: bounded memory
                ops = []
        if ops:
            await queue.put(ops)
        for _ in range(args.concurrency):
            await queue.put(None)
    await es.indices.refresh(index=layout.logs_pattern)
    print(f"loaded {loaded:,} docs in {time.monotonic() - t0:.1f}s")


async def delete_indices(es: AsyncElasticsearch, pattern: str) -> None:
    """By name: clusters refuse wildcard deletes (action.destructive_requires_name)."""
    names = list((await es.indices.get(index=pattern, allow_no_indices=True,
                                       ignore_unavailable=True)).body)
    if names:
        await es.indices.delete(index=",".join(names), ignore_unavailable=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(es: AsyncElasticsearch, layout: EsLayout,
                  args: argparse.Namespace) -> tuple[list[float], list[float]]:
    rng = random.Random(42)
    cis_ms: list[float] = []
    raw_ms: list[float] = []
    for n in range(args.warmup + args.samples):
        i = rng.randrange(args.instances)
        query = LogQuery(tenant=f"t{i % args.tenants}", instance_id=instance_id(i),
                         tail_lines=args.tail)
        body = build_search(query, now=datetime.now(UTC))
        body["source"] = body.pop("_source")

        async def via_cis(query: LogQuery = query) -> int:
            page = await fetch_logs(es, query, layout=layout)
            return len(page.lines)

        async def via_raw(body: dict[str, Any] = body) -> int:
            resp = await es.search(index=layout.logs_pattern, ignore_unavailable=True,
                                   allow_no_indices=True, **body)
            return len(resp["hits"]["hits"])

        order: list[tuple[Callable[[], Awaitable[int]], list[float]]] = [
            (via_cis, cis_ms), (via_raw, raw_ms)]
        if n % 2:
            order.reverse()
        for fn, sink in order:
            t0 = time.perf_counter()
            got = await fn()
            elapsed = (time.perf_counter() - t0) * 1000
            if got != min(args.tail, max(1, args.docs // args.instances)):
                raise RuntimeError(f"expected {args.tail} lines, got {got}")
            if n >= args.warmup:
                sink.append(elapsed)
    return cis_ms, raw_ms


async def main_async(args: argparse.Namespace) -> int:
    prefix = args.prefix or f"bench-{uuid.uuid4().hex[:6]}"
    layout = EsLayout(logs_prefix=f"{prefix}-logs", events_prefix=f"{prefix}-events")
    async with AsyncElasticsearch(args.es, request_timeout=120) as es:
        await ensure_layout(es, layout)
        try:
            existing = await es.count(index=layout.logs_pattern, allow_no_indices=True,
                                      ignore_unavailable=True)
            if existing["count"] < args.docs:
                await load(es, layout, args)
            cis_ms, raw_ms = await measure(es, layout, args)
        finally:
            if not args.keep:
                await delete_indices(es, layout.logs_pattern)
                for name in (layout.logs_template_name, layout.events_template_name):
                    await es.options(ignore_status=404).indices.delete_index_template(name=name)
    p50c, p99c = statistics.median(cis_ms), pct(cis_ms, 0.99)
    p50r, p99r = statistics.median(raw_ms), pct(raw_ms, 0.99)
    print(f"tail {args.tail} lines of one instance, {args.samples} samples, "
          f"{args.docs:,} docs / {args.instances:,} instances")
    print(f"  CIS fetch_logs : p50 {p50c:7.2f} ms   p99 {p99c:7.2f} ms")
    print(f"  raw ES search  : p50 {p50r:7.2f} ms   p99 {p99r:7.2f} ms")
    ratio = p50c / p50r
    print(f"  ratio p50 {ratio:.3f}  p99 {p99c / p99r:.3f}  (target <= 1.3: "
          f"{'met' if ratio <= 1.3 else 'NOT met'})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--es", required=True, help="Elasticsearch URL")
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--tail", type=int, default=100)
    parser.add_argument("--batch", type=int, default=5_000, help="documents per bulk request")
    parser.add_argument("--concurrency", type=int, default=2, help="bulk requests in flight")
    parser.add_argument("--prefix", help="index prefix (reuse with --keep to skip loading)")
    parser.add_argument("--keep", action="store_true", help="keep the indices afterwards")
    args = parser.parse_args()
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
