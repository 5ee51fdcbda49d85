"""Executes log queries against Elasticsearch: one page (`fetch_logs`) or a live tail
(`follow_logs`). The I/O edge around the pure `query` and `lines` modules.

The CIS REST handler and the virtual kubelet call these same two functions. Elasticsearch
errors become `Unavailable` (retry later) here; nothing else from the client leaks out.

`follow_logs` orders new lines by arrival (`event.created`, stamped by Filebeat when it
reads the line), not by their own timestamp: a line delayed by an outage carries an old
timestamp and would be skipped by a cursor on `@timestamp`. Each poll re-reads a
`lookback` window behind the newest arrival seen and drops ids it already delivered, which
absorbs refresh delays, out-of-order bulk retries and small clock differences between
nodes (a re-placed instance's runs may come from two nodes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from cis_logging.errors import InvalidParameter, LoggingError, NotFound, Unavailable
from cis_logging.layout import F_CREATED, F_INSTANCE, F_TENANT, F_TIMESTAMP, EsLayout
from cis_logging.lines import LogLine, LogPage, cut_to_bytes, last_sort_values, parse_hits
from cis_logging.query import (
    LogQuery,
    build_follow_search,
    build_latest_created,
    build_runs_search,
    build_search,
    encode_page_token,
    previous_runs,
)

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[None]]

DEFAULT_LAYOUT = EsLayout()
_RETRYABLE = frozenset({429, 502, 503, 504})


def utc_now() -> datetime:
    return datetime.now(UTC)


async def search(es: AsyncElasticsearch, index: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One `_search`; a missing index is an empty answer, an unreachable cluster `Unavailable`."""
    kwargs = dict(body)
    if "_source" in kwargs:
        kwargs["source"] = kwargs.pop("_source")
    try:
        resp = await es.search(index=index, ignore_unavailable=True, allow_no_indices=True,
                               **kwargs)
    except ApiError as exc:
        if exc.meta.status in _RETRYABLE:
            raise Unavailable(f"Elasticsearch answered {exc.meta.status}",
                              retry_after=1.0) from exc
        raise LoggingError(f"log search failed: {exc.meta.status} {str(exc)[:300]}") from exc
    except TransportError as exc:
        raise Unavailable(f"Elasticsearch unreachable: {str(exc)[:300]}", retry_after=2.0) from exc
    return dict(resp.body)


async def fetch_logs(es: AsyncElasticsearch, query: LogQuery, *,
                     layout: EsLayout = DEFAULT_LAYOUT, clock: Clock = utc_now) -> LogPage:
    """One page of lines of `query`, chronological, with kubectl-logs semantics.

    Raises NotFound when `previous` is asked and no container of the instance restarted.
    """
    now = clock()
    runs: dict[str, int] | None = None
    if query.previous:
        runs = previous_runs(await search(es, layout.logs_pattern,
                                          build_runs_search(query, now=now)))
        if not runs:
            raise NotFound(f"previous terminated container not found for {query.instance_id}")
    raw = await search(es, layout.logs_pattern, build_search(query, now=now, runs=runs))
    newest_first = query.tail_lines is not None
    lines = parse_hits(raw, newest_first=newest_first, sorted_by=F_TIMESTAMP)
    sort = last_sort_values(raw, newest_first=newest_first)
    has_more = not newest_first and len(lines) == query.limit
    truncated = False
    if query.limit_bytes is not None:
        lines, _, truncated = cut_to_bytes(lines, query.limit_bytes, timestamps=query.timestamps)
    token = encode_page_token(sort) if sort is not None and not truncated else None
    return LogPage(tuple(lines), token, has_more and not truncated, truncated)


async def instance_seen(es: AsyncElasticsearch, tenant: str, instance_id: str, *,
                        layout: EsLayout = DEFAULT_LAYOUT) -> bool:
    """Whether the tenant's instance left any log line or lifecycle event: lets the API
    tell "deleted but known" (200, maybe empty) from "never yours" (404)."""
    body = {
        "query": {"bool": {"minimum_should_match": 1, "should": [
            {"bool": {"filter": [{"term": {F_TENANT: tenant}},
                                 {"term": {F_INSTANCE: instance_id}}]}},
            {"bool": {"filter": [{"term": {"instance.tenant": tenant}},
                                 {"term": {"instance.id": instance_id}}]}},
        ]}},
        "size": 0,
        "terminate_after": 1,
        "track_total_hits": 1,
    }
    raw = await search(es, f"{layout.logs_pattern},{layout.events_pattern}", body)
    return int(raw.get("hits", {}).get("total", {}).get("value", 0)) > 0


async def _drain_arrivals(es: AsyncElasticsearch, query: LogQuery, layout: EsLayout, *,
                          now: datetime, created_from_ns: int,
                          page_size: int) -> AsyncIterator[LogLine]:
    """Every line that arrived at or after `created_from_ns`, in arrival order."""
    after: list[Any] | None = None
    while True:
        body = build_follow_search(query, now=now, created_from_ns=created_from_ns,
                                   search_after=after, size=page_size)
        raw = await search(es, layout.logs_pattern, body)
        for line in parse_hits(raw, newest_first=False, sorted_by=F_CREATED):
            yield line
        after = last_sort_values(raw, newest_first=False)
        if after is None or len(raw["hits"]["hits"]) < page_size:
            return


async def follow_logs(es: AsyncElasticsearch, query: LogQuery, *,
                      layout: EsLayout = DEFAULT_LAYOUT, clock: Clock = utc_now,
                      sleep: Sleep = asyncio.sleep, poll_interval: float = 1.0,
                      lookback: timedelta = timedelta(seconds=10),
                      page_size: int = 1000,
                      max_poll_failures: int = 10) -> AsyncIterator[LogLine]:
    """The lines of `query` (all pages, or the tail), then new lines as they arrive.

    Runs until the caller stops iterating (or `limit_bytes` is used up). Errors before the
    first line propagate (`Unavailable`, `InvalidParameter`); while following, up to
    `max_poll_failures` consecutive failed polls are retried with backoff, then the last
    `Unavailable` propagates and the caller ends the stream.
    """
    if query.previous:
        raise InvalidParameter("previous", "cannot be combined with follow")
    now = clock()  # since_seconds stays anchored at the start, as in kubectl
    lookback_ns = int(lookback.total_seconds() * 1e9)
    budget = query.limit_bytes
    seen: dict[str, int] = {}

    # 1. Mark what already arrived near the newest arrival, before the first read, so a
    #    line arriving between the two reads is delivered once, by one of them.
    head_raw = await search(es, layout.logs_pattern, build_latest_created(query, now=now))
    head_sort = last_sort_values(head_raw, newest_first=False)
    cursor: int | None = int(head_sort[0]) if head_sort else None
    if cursor is not None:
        async for line in _drain_arrivals(es, query, layout, now=now,
                                          created_from_ns=cursor - lookback_ns,
                                          page_size=page_size):
            seen[line.id] = line.created_ns or 0

    # 2. What `fetch_logs` would answer (every page when not tailing).
    page_query = replace(query, limit_bytes=None)
    while True:
        page = await fetch_logs(es, page_query, layout=layout, clock=lambda: now)
        for line in page.lines:
            seen[line.id] = line.created_ns or 0
            out, budget = _spend(line, budget, query.timestamps)
            if out is not None:
                yield out
            if budget == 0:
                return
        if not page.has_more or page.next_token is None:
            break
        page_query = replace(page_query, page_token=page.next_token, tail_lines=None)

    # 3. Poll for arrivals. A failed poll is retried with capped backoff: a live tail
    #    should ride out a short Elasticsearch outage (lines delivered before the failure
    #    are in `seen`, so the retry re-reads its window without repeating them).
    failures = 0
    while True:
        await sleep(poll_backoff(poll_interval, failures))
        start = cursor - lookback_ns if cursor is not None else 0
        try:
            async for line in _drain_arrivals(es, query, layout, now=now,
                                              created_from_ns=start, page_size=page_size):
                created = line.created_ns or 0
                cursor = created if cursor is None else max(cursor, created)
                if line.id in seen:
                    continue
                seen[line.id] = created
                out, budget = _spend(line, budget, query.timestamps)
                if out is not None:
                    yield out
                if budget == 0:
                    return
        except Unavailable as exc:
            failures += 1
            if failures > max_poll_failures:
                raise
            log.warning("follow %s: poll failed, attempt %d of %d: %s", query.instance_id,
                        failures, max_poll_failures, exc)
            continue
        failures = 0
        if cursor is not None:
            horizon = cursor - lookback_ns
            for line_id in [k for k, v in seen.items() if v < horizon]:
                del seen[line_id]


MAX_POLL_BACKOFF = 10.0


def poll_backoff(interval: float, failures: int) -> float:
    """Seconds before the next poll: the interval, doubled per consecutive failure, capped."""
    if failures == 0:
        return interval
    return float(min(interval * 2 ** failures, MAX_POLL_BACKOFF))


def _spend(line: LogLine, budget: int | None,
           timestamps: bool) -> tuple[LogLine | None, int | None]:
    """Apply the remaining byte budget to one line: (line to emit or None, budget left)."""
    if budget is None:
        return line, None
    kept, left, _ = cut_to_bytes([line], budget, timestamps=timestamps)
    return (kept[0] if kept else None), left
