"""The store's run scan over a fake Elasticsearch: bucket parsing and paging.

The fake answers `open_point_in_time`, `search` and `close_point_in_time` with canned
composite pages shaped exactly like Elasticsearch 8 answers (keyword keys as strings,
dates as epoch milliseconds, `max` values as floats).
"""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing.errors import InvalidEvent
from billing.events import InstanceId, InstanceUid, Region, TenantId
from billing.metering import RunObservation, Window, meter_events
from billing.queries import observation_from_bucket
from billing.store import RunScan, ScanSettings, bulk_body
from billing.testing import parsed, prices, run_events, t


def _ms(text: str) -> int:
    return int(t(text).timestamp() * 1000)


def bucket(
    uid: str,
    started: str,
    *,
    stopped: str | None = None,
    last: str | None = None,
    starts: int = 1,
    cpu: str = "0.5",
) -> dict[str, Any]:
    return {
        "key": {
            "uid": uid,
            "started_at": _ms(started),
            "cpu": cpu,
            "memory_gib": "1",
            "tenant": "acme",
            "region": "r1",
            "id": f"ci-{uid}",
            "cluster": "kind-a",
        },
        "doc_count": 3,
        "stopped": {"value": None if stopped is None else float(_ms(stopped))},
        "starts": {"doc_count": starts},
        "live": {"doc_count": 1 if last else 0, "last": {"value": None if last is None else float(_ms(last))}},
    }


def test_bucket_becomes_an_observation() -> None:
    obs = observation_from_bucket(
        bucket("u1", "11-21 10:00:00.250", stopped="11-21 10:30:00.2", last="11-21 10:20:00", starts=0)
    )
    assert obs == RunObservation(
        uid=InstanceUid("u1"),
        instance_id=InstanceId("ci-u1"),
        tenant=TenantId("acme"),
        region=Region("r1"),
        cluster="kind-a",
        cpu=Decimal("0.5"),
        memory_gib=Decimal(1),
        started_at=t("11-21 10:00:00.250"),
        has_start=False,
        stopped_at=t("11-21 10:30:00.2"),
        last_seen=t("11-21 10:20:00"),
    )


def test_bucket_with_a_bad_size_is_rejected() -> None:
    with pytest.raises(InvalidEvent) as err:
        observation_from_bucket(bucket("u1", "11-21 10:00:00", cpu="lots"))
    assert err.value.field == "instance.cpu"


class FakeElasticsearch:
    """Serves composite pages in order and records what the scan asked for."""

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.afters: list[Any] = []
        self.pits: list[str] = []
        self.closed: list[str] = []

    async def open_point_in_time(self, **_: Any) -> dict[str, Any]:
        return {"id": "pit-0"}

    async def close_point_in_time(self, *, id: str) -> None:
        self.closed.append(id)

    async def search(self, *, pit: dict[str, str], aggs: dict[str, Any], **_: Any) -> dict[str, Any]:
        composite = aggs["runs"]["composite"]
        self.afters.append(composite.get("after"))
        self.pits.append(pit["id"])
        buckets = self.pages[len(self.afters) - 1]
        after = {k: v for k, v in buckets[-1]["key"].items()} if buckets else None
        runs = {"buckets": buckets, **({"after_key": after} if after else {})}
        return {"pit_id": f"pit-{len(self.afters)}", "aggregations": {"runs": runs}}


async def _collect(fake: FakeElasticsearch, run_page: int) -> list[dict[str, list[RunObservation]]]:
    scan = RunScan(
        fake,  # type: ignore[arg-type]
        t("11-21 00:00:00"),
        t("11-22 00:00:00"),
        settings=ScanSettings(run_page=run_page, horizon=timedelta(hours=1)),
    )
    pages = []
    async with scan, contextlib.aclosing(scan.pages()) as stream:
        async for page in stream:
            pages.append(page.runs)
    return pages


async def test_an_instance_split_across_pages_is_yielded_once_and_whole() -> None:
    fake = FakeElasticsearch(
        [
            [bucket("a", "11-21 10:00:00"), bucket("b", "11-21 10:00:00")],
            [bucket("b", "11-21 12:00:00"), bucket("c", "11-21 10:00:00")],
            [bucket("c", "11-21 13:00:00")],
        ]
    )
    pages = await _collect(fake, run_page=2)
    assert [{uid: len(runs) for uid, runs in page.items()} for page in pages] == [
        {"a": 1},
        {"b": 2},
        {"c": 2},
    ]
    # each request continues after the previous page and uses the newest PIT id
    assert fake.afters[0] is None and fake.afters[1]["uid"] == "b" and fake.afters[2]["uid"] == "c"
    assert fake.pits == ["pit-0", "pit-1", "pit-2"] and fake.closed == ["pit-3"]


async def test_malformed_buckets_are_counted_not_fatal() -> None:
    fake = FakeElasticsearch([[bucket("a", "11-21 10:00:00", cpu="0"), bucket("b", "11-21 10:00:00")]])
    scan = RunScan(fake, t("11-21 00:00:00"), t("11-22 00:00:00"))  # type: ignore[arg-type]
    async with scan, contextlib.aclosing(scan.pages()) as stream:
        (page,) = [page async for page in stream]
    assert list(page.runs) == ["b"] and page.events == 6
    assert len(page.invalid) == 1 and "instance.cpu" in page.invalid[0]


def test_bulk_body_indexes_each_encoded_record_under_its_id() -> None:
    window = Window(t("11-21 00:00:00"), t("11-22 00:00:00"))
    records = [
        r.encode()
        for uid in ("a", 'b"\\é')
        for r in meter_events(
            parsed(run_events(t("11-21 10:00:00"), t("11-21 10:10:00"), uid=uid)), prices(), window
        ).records
    ]
    lines = bulk_body(records).decode("ascii").split("\n")
    assert lines[-1] == "" and len(lines) == 2 * len(records) + 1
    for action, source, record in zip(lines[0:-1:2], lines[1:-1:2], records, strict=True):
        assert json.loads(action) == {"index": {"_id": record.record_id}}
        assert source == record.source and json.loads(source)["digest"] == record.digest
    assert json.loads(lines[2])["index"]["_id"] == 'b"\\é-2026-11-21'
