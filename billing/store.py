"""Elasticsearch adapter of billing: read runs from events, write and read usage records.

Reading never loads a whole window: a point in time (PIT) pins one consistent view of
`cis-events-*` and a composite aggregation pages through the window's runs in instance
uid order (see `billing.queries` for why runs and not raw events: it is the same
reduction metering does, and it keeps heartbeats off the wire). While the caller meters
one page, the next is already being computed, so Elasticsearch and Python work at the
same time (`send_pending` makes sure the request has left before metering starts).
Memory is bounded by one page (`ScanSettings.run_page`).

Writes go to `cis-usage` with `_id = <uid>-<YYYY-MM-DD>` and the `index` op type, so
re-running a period overwrites documents instead of adding any; each record carries a
digest of its content so a rerun can skip records that did not change. Records arrive
already encoded (`UsageRecord.encode`) and the bulk body is joined from them as is.

Library exceptions become `billing.errors.Temporary` / `Permanent` here, at the edge.
Retries of single requests are the client's (`connect` configures them in one place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_string  # str -> quoted JSON
from types import TracebackType
from typing import Any

import elasticsearch
from elasticsearch import AsyncElasticsearch

from billing import queries
from billing.errors import InvalidInput, Permanent, Temporary
from billing.events import TenantId
from billing.metering import RunObservation
from billing.usage import USAGE_MAPPING, EncodedRecord, UsageRecord

log = logging.getLogger(__name__)


EVENTS_INDEX = "cis-events-*"  # written by Filebeat, dated or rolled-over indices
USAGE_INDEX = "cis-usage"  # one document per instance and day


@dataclass(frozen=True, slots=True)
class Indices:
    events: str = EVENTS_INDEX
    usage: str = USAGE_INDEX


@dataclass(frozen=True, slots=True)
class ScanSettings:
    # Runs per composite page: each run is 3 buckets (itself and two sub-filters), so 10k
    # stays well under search.max_buckets (65536) and is a few MB of JSON.
    run_page: int = 10_000
    # How far past the window end liveness is read: one heartbeat there proves "still
    # running". An hour covers any sane heartbeat interval plus Filebeat lag.
    horizon: timedelta = timedelta(hours=1)
    # PIT keep-alive between two requests of one scan (not the scan's total duration).
    keep_alive: str = "5m"

    def __post_init__(self) -> None:
        if not 1 <= self.run_page <= 20_000:
            raise InvalidInput("must be between 1 and 20000", field="run_page")


DEFAULT_INDICES = Indices()
DEFAULT_SCAN = ScanSettings()


def connect(url: str, *, request_timeout: float = 60.0) -> AsyncElasticsearch:
    """The client billing uses: the retry policy for single requests lives here."""
    return AsyncElasticsearch(
        url,
        request_timeout=request_timeout,
        max_retries=5,
        retry_on_timeout=True,
        retry_on_status=(429, 502, 503, 504),
    )


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except elasticsearch.ApiError as exc:
        status = exc.meta.status
        reason = str(exc.message)[:300]
        if status in (429, 502, 503, 504):
            raise Temporary(f"{what}: Elasticsearch answered {status}: {reason}") from exc
        raise Permanent(f"{what}: Elasticsearch answered {status}: {reason}") from exc
    except elasticsearch.TransportError as exc:
        raise Temporary(f"{what}: Elasticsearch unreachable: {exc!s:.300}") from exc


async def send_pending() -> None:
    """Give tasks that were just created a few loop turns to send their requests.

    Metering runs synchronously for a whole page; a request task created just before it
    would otherwise reach Elasticsearch only afterwards, and the two would take turns
    instead of working at the same time.
    """
    for _ in range(_SEND_TURNS):
        await asyncio.sleep(0)


_SEND_TURNS = 3  # aiohttp needs a couple of turns from create_task to the bytes on the socket


# --- runs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class RunPage:
    """Runs of whole instances, in uid order; `invalid` holds why buckets were skipped."""

    runs: dict[str, list[RunObservation]] = field(default_factory=dict)
    events: int = 0
    invalid: list[str] = field(default_factory=list)


class RunScan:
    """A consistent, paged scan of the runs that overlap a billing window.

    Use as `async with RunScan(...) as scan: async for page in scan.pages(): ...`.
    The constructor only validates; `__aenter__` opens the PIT and `__aexit__` closes it.
    """

    def __init__(
        self,
        es: AsyncElasticsearch,
        window_start: datetime,
        window_end: datetime,
        *,
        indices: Indices = DEFAULT_INDICES,
        settings: ScanSettings = DEFAULT_SCAN,
    ) -> None:
        if window_start >= window_end:
            raise InvalidInput("window start must be before its end", field="window")
        self._es = es
        self._query = queries.runs_query(window_start, window_end, settings.horizon)
        self._indices = indices
        self._settings = settings
        self._pit: str | None = None

    async def __aenter__(self) -> RunScan:
        with _translated("opening a point in time on events"):
            resp = await self._es.open_point_in_time(
                index=self._indices.events,
                keep_alive=self._settings.keep_alive,
                ignore_unavailable=True,
            )
        self._pit = resp["id"]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pit is not None:
            try:
                await self._es.close_point_in_time(id=self._pit)
            except elasticsearch.ApiError as err:  # it expires anyway; never mask exc
                log.warning("closing point in time failed: %s", str(err)[:200])
            self._pit = None

    async def _fetch(self, after: dict[str, Any] | None) -> tuple[list[Any], dict[str, Any] | None]:
        if self._pit is None:
            raise RuntimeError("RunScan used outside `async with`")
        with _translated("aggregating lifecycle events"):
            resp = await self._es.search(
                pit={"id": self._pit, "keep_alive": self._settings.keep_alive},
                size=0,
                query=self._query,
                aggs=queries.runs_agg(self._settings.run_page, after),
                track_total_hits=False,
                filter_path=queries.RUNS_FILTER_PATH,
            )
        self._pit = resp.get("pit_id", self._pit)
        agg = resp.get("aggregations", {}).get("runs", {})
        buckets: list[Any] = agg.get("buckets", [])
        # Fewer buckets than asked for means this was the last page.
        more = len(buckets) == self._settings.run_page and "after_key" in agg
        return buckets, agg["after_key"] if more else None

    async def pages(self) -> AsyncGenerator[RunPage, None]:
        """Pages of whole instances; the next page is fetched while this one is used.

        An instance whose runs straddle two composite pages is held back until its last
        run has arrived, so every instance is yielded exactly once, complete.
        """
        pending = asyncio.create_task(self._fetch(None), name="billing-runs-page")
        held: tuple[str, list[RunObservation]] | None = None
        try:
            while True:
                buckets, after = await pending
                if after is not None:
                    pending = asyncio.create_task(self._fetch(after), name="billing-runs-page")
                    await send_pending()  # so Elasticsearch computes it while this page is metered
                page = RunPage()
                if held is not None:
                    page.runs[held[0]] = held[1]
                for bucket in buckets:
                    page.events += int(bucket.get("doc_count", 0))
                    try:
                        obs = queries.observation_from_bucket(bucket)
                    except (InvalidInput, KeyError, TypeError) as exc:
                        page.invalid.append(f"{bucket.get('key')!s:.200}: {exc!s:.200}")
                        continue
                    page.runs.setdefault(obs.uid, []).append(obs)
                del buckets  # not kept alive while the page is metered (less for the GC to scan)
                if after is None:
                    yield page
                    return
                held = page.runs.popitem() if page.runs else None
                yield page
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pending


# --- usage -----------------------------------------------------------------------------------


async def ensure_usage_index(es: AsyncElasticsearch, index: str = USAGE_INDEX) -> None:
    """Create `cis-usage` with its explicit mapping unless it exists (safe to race)."""
    with _translated(f"creating index {index}"):
        if await es.indices.exists(index=index):
            return
        try:
            await es.indices.create(
                index=index,
                mappings=USAGE_MAPPING,
                settings={
                    "index": {
                        "number_of_shards": 1,
                        # One replica when the cluster has a second node, none on a single node.
                        "auto_expand_replicas": "0-1",
                        # A run writes in bursts and refreshes explicitly when done; a 1 s
                        # refresh would only make many tiny segments to merge.
                        "refresh_interval": "30s",
                    }
                },
            )
        except elasticsearch.BadRequestError as exc:
            if exc.error != "resource_already_exists_exception":
                raise


def bulk_body(records: Sequence[EncodedRecord]) -> bytes:
    """The NDJSON body indexing `records` by record id (the index is named in the URL).

    Built from the already encoded sources, so no document is serialized twice.
    """
    lines: list[str] = []
    for record in records:
        lines.append(f'{{"index":{{"_id":{_json_string(record.record_id)}}}}}')
        lines.append(record.source)
    lines.append("")
    return "\n".join(lines).encode("ascii")


async def write_usage(es: AsyncElasticsearch, records: Sequence[EncodedRecord], index: str = USAGE_INDEX) -> None:
    """Index usage documents (`UsageRecord.encode()`) by record id: overwrite, never add."""
    if not records:
        return
    with _translated("writing usage records"):
        # A ready NDJSON body: the client passes bytes through unchanged.
        body: Any = bulk_body(records)
        resp = await es.bulk(index=index, operations=body, filter_path="errors,items.*.error,items.*.status")
    if resp.get("errors"):
        failed = [item for item in resp["items"] if next(iter(item.values())).get("error")]
        first = next(iter(failed[0].values()))
        status = int(first.get("status", 500))
        message = f"{len(failed)} of {len(records)} usage records failed, first: {first['error']!s:.300}"
        raise Temporary(message) if status in (429, 503) else Permanent(message)


async def delete_usage(es: AsyncElasticsearch, ids: Sequence[str], index: str = USAGE_INDEX) -> None:
    if not ids:
        return
    with _translated("deleting stale usage records"):
        resp = await es.bulk(
            operations=[{"delete": {"_index": index, "_id": i}} for i in ids],
            filter_path="errors,items.*.status",
        )
    if resp.get("errors"):
        statuses = {next(iter(i.values()))["status"] for i in resp["items"]}
        if statuses - {200, 404}:
            raise Permanent(f"deleting stale usage records failed with statuses {sorted(statuses)}")


async def refresh_usage(es: AsyncElasticsearch, index: str = USAGE_INDEX) -> None:
    with _translated("refreshing usage"):
        await es.indices.refresh(index=index, ignore_unavailable=True)


@dataclass(frozen=True, slots=True)
class StoredUsage:
    seconds: int
    amount: Decimal
    digest: str


async def stored_usage(
    es: AsyncElasticsearch, first_day: date, last_day: date, index: str = USAGE_INDEX
) -> dict[str, StoredUsage]:
    """`record_id → (seconds, amount, digest)` of the records of these days.

    Read from doc values with a composite aggregation (no `_source` fetch), so checking
    100k records costs about as much as one page of events.
    """
    result: dict[str, StoredUsage] = {}
    after: dict[str, Any] | None = None
    while True:
        with _translated("reading stored usage"):
            resp = await es.search(
                index=index,
                size=0,
                query=queries.usage_days_query(first_day, last_day),
                aggs=queries.stored_usage_agg(10_000, after),
                ignore_unavailable=True,
                track_total_hits=False,
                filter_path="aggregations.records.after_key,aggregations.records.buckets.key",
            )
        agg = resp.get("aggregations", {}).get("records", {})
        buckets = agg.get("buckets", [])
        for bucket in buckets:
            key = bucket["key"]
            amount = Decimal(int(key["micros"] or 0)).scaleb(-6)
            result[key["id"]] = StoredUsage(int(key["seconds"] or 0), amount, key["digest"] or "")
        if len(buckets) < 10_000:
            return result
        after = agg["after_key"]


async def _scroll_usage(
    es: AsyncElasticsearch, index: str, query: dict[str, Any], fields: list[str] | None, size: int
) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of usage hits sorted by record id (unique, so search_after needs no PIT)."""
    search_after: list[Any] | None = None
    while True:
        with _translated("reading usage records"):
            resp = await es.search(
                index=index,
                query=query,
                size=size,
                sort=[{"record_id": "asc"}],
                search_after=search_after,
                source_includes=fields,
                track_total_hits=False,
                ignore_unavailable=True,
                filter_path="hits.hits._id,hits.hits._source,hits.hits.sort",
            )
        hits = resp.get("hits", {}).get("hits", [])
        if hits:
            yield hits
        if len(hits) < size:
            return
        search_after = hits[-1]["sort"]


async def query_usage(
    es: AsyncElasticsearch,
    *,
    tenant: TenantId | None,
    first_day: date,
    last_day: date,
    index: str = USAGE_INDEX,
) -> AsyncIterator[UsageRecord]:
    """Usage records of one tenant (or every tenant when `tenant` is None, for admins)."""
    query = queries.usage_days_query(first_day, last_day, tenant=tenant)
    async for hits in _scroll_usage(es, index, query, None, 2_000):
        for hit in hits:
            yield UsageRecord.from_doc(hit["_source"])
