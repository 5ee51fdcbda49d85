"""Billing against a real Elasticsearch: events in, usage records out, reruns change nothing.

Uses the stack's Elasticsearch (`stack.es_url`), or the one at `$CIS_TEST_ES_URL` when set
(so the test can run beside a hand-started Elasticsearch without the whole stack). Every
test works in its own uniquely named indices and deletes them afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from billing import store
from billing.events import TenantId
from billing.queries import EVENTS_INDEX_SORT, EVENTS_MAPPING
from billing.reconcile import DifferenceKind, reconcile
from billing.reports import parse_period
from billing.runner import run_billing
from billing.service import get_usage
from billing.testing import prices, raw_event, run_events, t

pytestmark = pytest.mark.integration

# Hand-computed: at 0.5 vCPU + 1 GiB one second costs 0.000006 (r1); r2 doubles at 12:00.
EXPECTED = {
    "simple-2026-11-21": (1801, "0.010806"),  # 10:00:00 → 10:30:00.2
    "midnight-2026-11-21": (3600, "0.021600"),  # 23:00 → 01:30
    "midnight-2026-11-22": (5400, "0.032400"),
    "restart-2026-11-21": (3600, "0.021600"),  # a container restart does not split
    "nostop-2026-11-21": (300, "0.001800"),  # closed at the last heartbeat, flagged
    "resized-2026-11-21": (1800, "0.032400"),  # 600 s small + 1200 s at 2 vCPU / 4 GiB
    "repriced-2026-11-21": (3600, "0.032400"),  # 1800 s * 0.000006 + 1800 s * 0.000012
    "early-2026-11-21": (3600, "0.021600"),  # started the day before the window
}


def _events() -> list[dict[str, Any]]:
    return [
        *run_events(t("11-21 10:00:00"), t("11-21 10:30:00.2"), uid="simple"),
        *run_events(t("11-21 23:00:00"), t("11-22 01:30:00"), uid="midnight"),
        *run_events(
            t("11-21 10:00:00"),
            t("11-21 11:00:00"),
            uid="restart",
            heartbeats=(t("11-21 10:05:00"),),
            restarts=(t("11-21 10:10:00"),),
        ),
        *run_events(t("11-21 10:00:00"), None, uid="nostop", heartbeats=(t("11-21 10:01:00"), t("11-21 10:05:00"))),
        *run_events(t("11-21 10:00:00"), t("11-21 10:10:00"), uid="resized"),
        *run_events(t("11-21 12:00:00"), t("11-21 12:20:00"), uid="resized", seq=10, cpu="2", memory_gib="4"),
        *run_events(t("11-21 11:30:00"), t("11-21 12:30:00"), uid="repriced", region="r2"),
        *run_events(t("11-20 12:00:00"), t("11-21 01:00:00"), uid="early", tenant="other"),
        # ran and ended before the window: must not appear
        *run_events(t("11-19 10:00:00"), t("11-19 11:00:00"), uid="old"),
        # only queued, never started
        raw_event("instance.created", 1, t("11-21 09:00:00"), uid="queued"),
        raw_event("instance.queued", 2, t("11-21 09:00:01"), uid="queued"),
    ]


@dataclass
class Env:
    es: AsyncElasticsearch
    indices: store.Indices
    prefix: str


@pytest.fixture
def es_url(request: pytest.FixtureRequest) -> str:
    override = os.environ.get("CIS_TEST_ES_URL")
    if override:
        return override
    return str(request.getfixturevalue("stack").es_url)


@pytest.fixture
async def env(es_url: str) -> AsyncIterator[Env]:
    prefix = f"billing-test-{uuid.uuid4().hex[:8]}"
    es = store.connect(es_url)
    try:
        yield Env(es, store.Indices(events=f"{prefix}-events-*", usage=f"{prefix}-usage"), prefix)
    finally:
        try:  # deleting by wildcard is refused (action.destructive_requires_name)
            names = list(await es.indices.get(index=f"{prefix}-*", expand_wildcards="all"))
            if names:
                await es.indices.delete(index=",".join(names))
        finally:
            await es.close()


async def _index_events(env: Env, events: list[dict[str, Any]], index_suffix: str) -> None:
    index = f"{env.prefix}-events-{index_suffix}"
    await env.es.options(ignore_status=400).indices.create(
        index=index, mappings=EVENTS_MAPPING, settings={"number_of_replicas": 0, **EVENTS_INDEX_SORT}
    )
    ops: list[dict[str, Any]] = []
    for ev in events:
        ops += [{"index": {"_index": index, "_id": ev["event"]["id"]}}, ev]
    resp = await env.es.bulk(operations=ops, refresh=True)
    assert not resp["errors"], resp


async def _stored(env: Env, first: str = "11-21", last: str = "11-22") -> dict[str, tuple[int, str]]:
    """`record_id → (seconds, amount)` of the usage records of the given days."""
    days = t(f"{first} 00:00:00").date(), t(f"{last} 00:00:00").date()
    stored = await store.stored_usage(env.es, *days, index=env.indices.usage)
    return {rid: (u.seconds, str(u.amount)) for rid, u in stored.items()}


async def test_billing_run_is_exact_and_idempotent(env: Env) -> None:
    events = _events()
    await _index_events(env, events, "2026.11.21")
    # Filebeat resending everything (same _id, same index) and a copy after a rollover
    # (same _id, another index): neither may add a second.
    await _index_events(env, events, "2026.11.21")
    await _index_events(env, events[:12], "2026.11.22")
    window = (t("11-21 00:00:00"), t("11-23 00:00:00"))
    tiny_pages = store.ScanSettings(run_page=2)  # instances straddle composite pages

    first = await run_billing(env.es, prices(), *window, indices=env.indices, settings=tiny_pages)

    assert first.ok, first.errors
    assert await _stored(env) == EXPECTED
    assert first.records_written == len(EXPECTED)
    assert first.seconds == sum(s for s, _ in EXPECTED.values())
    assert first.amount == sum(Decimal(a) for _, a in EXPECTED.values())
    assert [(f.uid, f.flags) for f in first.flagged] == [("nostop", ("missing_stop",))]

    # A rerun (default paging this time) changes nothing and rewrites nothing.
    again = await run_billing(env.es, prices(), *window, indices=env.indices)
    assert (again.records_written, again.records_deleted) == (0, 0)
    assert again.records_unchanged == len(EXPECTED)
    assert (again.seconds, again.amount) == (first.seconds, first.amount)
    assert await _stored(env) == EXPECTED
    count = await env.es.count(index=env.indices.usage)
    assert count["count"] == len(EXPECTED)


async def test_reconcile_finds_orphans_and_a_rerun_removes_them(env: Env) -> None:
    await _index_events(env, _events(), "2026.11.21")
    window = (t("11-21 00:00:00"), t("11-23 00:00:00"))
    await run_billing(env.es, prices(), *window, indices=env.indices)
    assert (await reconcile(env.es, prices(), *window, indices=env.indices)).ok

    # A record no event supports, and a stale copy of a real one.
    ghost = {**_any_record_doc(), "record_id": "ghost-2026-11-21"}
    ghost["instance"] = {**ghost["instance"], "uid": "ghost"}
    stale = {**_any_record_doc(), "seconds": 1, "amount": "0.000001", "amount_micros": 1}
    await env.es.index(index=env.indices.usage, id="ghost-2026-11-21", document=ghost)
    await env.es.index(index=env.indices.usage, id="simple-2026-11-21", document=stale, refresh=True)

    found = await reconcile(env.es, prices(), *window, indices=env.indices)
    assert [(d.kind, d.record_id) for d in found.differences] == [
        (DifferenceKind.ORPHAN_USAGE, "ghost-2026-11-21"),
        (DifferenceKind.MISMATCH, "simple-2026-11-21"),
    ]

    rerun = await run_billing(env.es, prices(), *window, indices=env.indices)
    assert (rerun.records_deleted, rerun.records_written) == (1, 1)  # ghost gone, simple fixed
    assert (await reconcile(env.es, prices(), *window, indices=env.indices)).ok
    assert await _stored(env) == EXPECTED


async def test_usage_api_is_tenant_scoped(env: Env) -> None:
    await _index_events(env, _events(), "2026.11.21")
    await run_billing(env.es, prices(), t("11-21 00:00:00"), t("11-23 00:00:00"), indices=env.indices)
    period = parse_period("2026-11")

    acme = await get_usage(env.es, prices(), tenant=TenantId("acme"), period=period, index=env.indices.usage)
    everyone = await get_usage(env.es, prices(), tenant=None, period=period, index=env.indices.usage)

    acme_ids = {i["instanceUid"] for i in acme["instances"]}
    assert acme_ids == {"simple", "midnight", "restart", "nostop", "resized", "repriced"}
    # every amount but "early" (tenant "other"): 0.153006 exact, 0.15 owed; with it 0.174606
    assert (acme["amount"], acme["total"]) == ("0.153006", "0.15")
    assert (everyone["amount"], everyone["total"]) == ("0.174606", "0.17")
    assert len(everyone["instances"]) == 7
    by_day = await get_usage(
        env.es, prices(), tenant=None, period=parse_period("2026-11-22"), group_by="day", index=env.indices.usage
    )
    assert by_day["days"] == [
        {"day": "2026-11-22", "seconds": 5400, "vcpuSeconds": "2700.0", "gibSeconds": "5400", "amount": "0.032400"}
    ]


def _any_record_doc() -> dict[str, Any]:
    return {
        "record_id": "simple-2026-11-21",
        "instance": {"uid": "simple", "id": "ci-one", "tenant": "acme", "region": "r1", "cluster": "kind-a"},
        "day": "2026-11-21",
        "seconds": 1801,
        "vcpu_seconds": "900.5",
        "gib_seconds": "1801",
        "amount": "0.010806",
        "amount_micros": 10806,
        "currency": "USD",
        "flags": [],
        "lines": [],
        "covered_until": "2026-11-23T00:00:00.000Z",
    }


async def test_a_window_end_inside_a_run_bills_up_to_it(env: Env) -> None:
    """The loop bills up to `now - lateness`; a later run completes the same day record."""
    events = run_events(
        t("11-21 10:00:00"),
        t("11-21 12:00:00"),
        uid="long",
        heartbeats=tuple(t("11-21 10:00:00") + timedelta(minutes=m) for m in range(1, 120)),
    )
    await _index_events(env, events, "2026.11.21")
    day = (t("11-21 00:00:00"), t("11-22 00:00:00"))
    half_past_eleven = t("11-21 11:30:00")
    partial = await run_billing(env.es, prices(), t("11-21 11:00:00"), half_past_eleven, indices=env.indices)
    # widened to midnight; heartbeats after 11:30 prove it still runs, so nothing is flagged
    assert (partial.window.start, partial.seconds, partial.flagged) == (day[0], 5400, [])
    assert await _stored(env, "11-21", "11-21") == {"long-2026-11-21": (5400, "0.032400")}

    full = await run_billing(env.es, prices(), *day, indices=env.indices)
    assert full.seconds == 7200
    assert await _stored(env, "11-21", "11-21") == {"long-2026-11-21": (7200, "0.043200")}
