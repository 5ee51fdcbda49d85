"""fetch_logs / follow_logs over an in-memory search: kubectl-logs semantics end to end."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError

from cis_logging.errors import InvalidParameter, NotFound, Unavailable
from cis_logging.lines import LogLine, cut_to_bytes, parse_hits
from cis_logging.query import LogQuery, format_rfc3339_nano
from cis_logging.reading import fetch_logs, follow_logs, instance_seen, poll_backoff
from tests.unit.cis_logging.logging_fake_es import FakeEs, log_doc

NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)


def ts(second: float) -> str:
    """A CRI timestamp `second` seconds after 10:00:00 (nanosecond resolution)."""
    ns = 1795255200 * 10**9 + round(second * 1e9)
    return format_rfc3339_nano(ns)


def clock() -> datetime:
    return NOW


def q(**kwargs: Any) -> LogQuery:
    return LogQuery(tenant="acme", instance_id="ci-a", **kwargs)


@pytest.fixture
def es() -> FakeEs:
    docs = [log_doc(ts=ts(-50 + i), message=f"line {i}", offset=i * 40) for i in range(10)]
    # Same nanosecond twice: the file offset keeps them in order.
    docs.append(log_doc(ts=ts(-30), message="same-time b", offset=1000))
    docs.append(log_doc(ts=ts(-30), message="same-time a", offset=999))
    docs.append(log_doc(ts=ts(-45.5), message="err 1", offset=0, container="side", stream="stderr"))
    docs.append(log_doc(ts=ts(-100), message="old run", offset=0, run=0, container="job", doc_id="job0"))
    docs.append(log_doc(ts=ts(-20), message="new run", offset=0, run=1, container="job", doc_id="job1"))
    # Another tenant's instance with the same id must never show up.
    docs.append(log_doc(ts=ts(-40), message="secret", offset=0, tenant="other"))
    return FakeEs(docs)


async def messages(es: FakeEs, query: LogQuery) -> list[str]:
    page = await fetch_logs(es.client(), query, clock=clock)
    return [line.message for line in page.lines]


async def test_all_lines_in_order(es: FakeEs) -> None:
    got = await messages(es, q(container="app"))
    assert got == [f"line {i}" for i in range(10)] + ["same-time a", "same-time b"]


async def test_tail_is_last_n_in_order(es: FakeEs) -> None:
    assert (
        await messages(es, q(container="app", tail_lines=3)) == ["line 8", "line 9", "same-time a", "same-time b"][-3:]
    )


async def test_tail_zero(es: FakeEs) -> None:
    assert await messages(es, q(tail_lines=0)) == []


async def test_since_and_until(es: FakeEs) -> None:
    got = await messages(es, q(container="app", since_seconds=48, until_time=NOW - timedelta(seconds=45)))
    assert got == ["line 2", "line 3", "line 4"]


async def test_stream_and_text(es: FakeEs) -> None:
    assert await messages(es, q(stream="stderr")) == ["err 1"]
    assert await messages(es, q(text="SAME-time")) == ["same-time a", "same-time b"]


async def test_tenant_isolation(es: FakeEs) -> None:
    other = LogQuery(tenant="other", instance_id="ci-a")
    assert [line.message for line in (await fetch_logs(es.client(), other, clock=clock)).lines] == ["secret"]
    assert not await instance_seen(es.client(), "nobody", "ci-a")
    assert await instance_seen(es.client(), "acme", "ci-a")


async def test_previous_run(es: FakeEs) -> None:
    assert await messages(es, q(container="job", previous=True)) == ["old run"]
    assert await messages(es, q(container="job")) == ["old run", "new run"]
    assert await messages(es, q(container="job", run=1)) == ["new run"]
    with pytest.raises(NotFound):
        await fetch_logs(es.client(), q(container="app", previous=True), clock=clock)


async def test_limit_bytes_cuts_mid_line(es: FakeEs) -> None:
    page = await fetch_logs(es.client(), q(container="app", limit_bytes=17), clock=clock)
    assert page.text(timestamps=False) == "line 0\nline 1\nlin"
    assert page.truncated and page.next_token is None and not page.has_more


async def test_limit_bytes_counts_timestamps(es: FakeEs) -> None:
    query = q(container="app", tail_lines=1, timestamps=True, limit_bytes=1000)
    page = await fetch_logs(es.client(), query, clock=clock)
    assert page.text(timestamps=True) == f"{ts(-30)} same-time b\n"
    assert not page.truncated


async def test_paging_with_tokens_reads_everything_once(es: FakeEs) -> None:
    seen: list[str] = []
    query = q(limit=4)
    while True:
        page = await fetch_logs(es.client(), query, clock=clock)
        seen += [line.message for line in page.lines]
        if not page.has_more:
            break
        assert page.next_token is not None
        query = q(limit=4, page_token=page.next_token)
    assert seen == [line.message for line in (await fetch_logs(es.client(), q(limit=100), clock=clock)).lines]
    assert len(seen) == len(set(seen)) == 15


async def test_errors_become_unavailable(es: FakeEs) -> None:
    es.fail_with = ConnectionError("refused")
    with pytest.raises(Unavailable):
        await fetch_logs(es.client(), q(), clock=clock)
    meta = ApiResponseMeta(
        status=503, http_version="1.1", headers=HttpHeaders(), duration=0.0, node=NodeConfig("http", "localhost", 9200)
    )
    es.fail_with = ApiError("unavailable", meta, {})
    with pytest.raises(Unavailable):
        await fetch_logs(es.client(), q(), clock=clock)


class Script:
    """An injected `sleep` that plays one action per poll, then ends the follow."""

    def __init__(self, actions: list[Callable[[], None]]) -> None:
        self.actions = actions
        self.polls = 0

    async def sleep(self, _: float) -> None:
        if self.polls >= len(self.actions):
            raise _Done
        self.actions[self.polls]()
        self.polls += 1


class _Done(Exception):
    pass


async def collect(es: FakeEs, query: LogQuery, script: Script) -> list[LogLine]:
    out: list[LogLine] = []
    try:
        async for line in follow_logs(
            es.client(), query, clock=clock, sleep=script.sleep, lookback=timedelta(seconds=10)
        ):
            out.append(line)
    except _Done:
        pass
    return out


async def test_follow_delivers_new_lines_once(es: FakeEs) -> None:
    def add(second: float, message: str, offset: int, created: float | None = None) -> None:
        es.docs.append(
            log_doc(
                ts=ts(second), message=message, offset=offset, created=ts(created if created is not None else second)
            )
        )

    def add_two() -> None:
        add(3, "new 2", 2100)
        add(3.5, "new 3", 2200)

    script = Script(
        [
            lambda: add(1, "new 1", 2000),
            lambda: None,  # nothing new: nothing re-delivered
            # Arrives late with an older timestamp than lines already delivered.
            lambda: add(-5, "late", 1500, created=2),
            add_two,
        ]
    )
    got = [line.message for line in await collect(es, q(container="app", tail_lines=2), script)]
    assert got == ["same-time a", "same-time b", "new 1", "late", "new 2", "new 3"]


async def test_follow_byte_budget_ends_stream(es: FakeEs) -> None:
    script = Script([lambda: es.docs.append(log_doc(ts=ts(1), message="0123456789", offset=5000))] * 3)
    lines = await collect(es, q(container="app", tail_lines=1, limit_bytes=16), script)
    assert [line.render(timestamps=False) for line in lines] == ["same-time b\n", "0123"]


async def test_follow_without_tail_pages_everything_first(es: FakeEs) -> None:
    lines = await collect(es, q(container="app", limit=3), Script([]))
    assert len(lines) == 12


async def test_follow_rejects_previous(es: FakeEs) -> None:
    with pytest.raises(InvalidParameter):
        await collect(es, q(previous=True), Script([]))


def test_cut_to_bytes_keeps_utf8_valid() -> None:
    line = LogLine(timestamp_ns=0, message="héé", stream="stdout", container="c", run=0, offset=0, id="x")
    kept, left, cut = cut_to_bytes([line], 2, timestamps=False)  # "é" is two bytes
    assert cut and left == 0 and kept[0].message == "h" and kept[0].partial
    kept, _, _ = cut_to_bytes([line], 3, timestamps=False)
    assert kept[0].message == "hé"


def test_parse_hits_reads_nested_and_trailing_newline() -> None:
    raw = {
        "hits": {
            "hits": [
                {
                    "_id": "i",
                    "_source": {
                        "@timestamp": "2026-11-21T10:00:00.5Z",
                        "message": "hi\n",
                        "stream": "stdout",
                        "container": {"name": "app", "restart_count": 2},
                        "log": {"offset": 7},
                        "event": {"id": "i", "created": "2026-11-21T10:00:01Z"},
                    },
                }
            ]
        }
    }
    (line,) = parse_hits(raw, newest_first=False)
    assert (line.message, line.container, line.run, line.offset) == ("hi", "app", 2, 7)
    assert line.timestamp == "2026-11-21T10:00:00.5Z"
    assert line.to_json() == {
        "container": "app",
        "stream": "stdout",
        "run": 2,
        "message": "hi",
        "timestamp": "2026-11-21T10:00:00.5Z",
    }


async def test_follow_rides_out_a_short_outage(es: FakeEs) -> None:
    def fail() -> None:
        es.fail_with = ConnectionError("refused")

    def recover() -> None:
        es.fail_with = None
        es.docs.append(log_doc(ts=ts(2), message="after outage", offset=3000))

    script = Script([fail, lambda: None, recover])
    got = [line.message for line in await collect(es, q(container="app", tail_lines=1), script)]
    assert got == ["same-time b", "after outage"]


async def test_follow_gives_up_after_repeated_failures(es: FakeEs) -> None:
    def fail() -> None:
        es.fail_with = ConnectionError("refused")

    lines: list[LogLine] = []
    with pytest.raises(Unavailable):
        async for line in follow_logs(es.client(), q(tail_lines=1), clock=clock,
                                      sleep=Script([fail] * 10).sleep, max_poll_failures=3):
            lines.append(line)
    assert len(lines) == 1


@pytest.mark.parametrize(("failures", "delay"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0),
                                                 (30, 10.0)], ids=lambda v: str(v))
def test_poll_backoff(failures: int, delay: float) -> None:
    assert poll_backoff(1.0, failures) == delay
