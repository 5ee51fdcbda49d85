"""The pure query builders: DSL for every LogQuery option, tokens, timestamps, params."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from cis_logging.errors import InvalidParameter
from cis_logging.query import (
    LogQuery,
    build_follow_search,
    build_latest_created,
    build_runs_search,
    build_search,
    decode_page_token,
    encode_page_token,
    format_rfc3339_nano,
    parse_rfc3339,
    parse_rfc3339_ns,
    previous_runs,
    query_from_params,
)

PLUS_ONE = timezone(timedelta(hours=1))
NOW = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
BASE = [{"term": {"tenant.id": "acme"}}, {"term": {"instance.id": "ci-a"}}]
TOKEN = encode_page_token([1795255200123456789, 42, "abc"])


def q(**kwargs: Any) -> LogQuery:
    return LogQuery(tenant="acme", instance_id="ci-a", **kwargs)


# (id, query, extra filters, sort order, size, extra body keys)
DSL_CASES: list[tuple[str, LogQuery, list[dict[str, Any]], str, int, dict[str, Any]]] = [
    ("plain", q(), [], "asc", 1000, {}),
    ("container", q(container="app"), [{"term": {"container.name": "app"}}], "asc", 1000, {}),
    ("tail", q(tail_lines=100), [], "desc", 100, {}),
    ("tail-zero", q(tail_lines=0), [], "desc", 0, {}),
    ("limit", q(limit=50), [], "asc", 50, {}),
    (
        "since-seconds",
        q(since_seconds=60),
        [{"range": {"@timestamp": {"gte": "2026-11-21T09:59:00.000000000Z"}}}],
        "asc",
        1000,
        {},
    ),
    (
        "since-time",
        q(since_time=datetime(2026, 11, 21, 9, 0, 0, 500, tzinfo=UTC)),
        [{"range": {"@timestamp": {"gte": "2026-11-21T09:00:00.000500000Z"}}}],
        "asc",
        1000,
        {},
    ),
    (
        "until-time",
        q(until_time=NOW),
        [{"range": {"@timestamp": {"lt": "2026-11-21T10:00:00.000000000Z"}}}],
        "asc",
        1000,
        {},
    ),
    (
        "since-and-until",
        q(since_seconds=3600, until_time=NOW - timedelta(minutes=1)),
        [{"range": {"@timestamp": {"gte": "2026-11-21T09:00:00.000000000Z", "lt": "2026-11-21T09:59:00.000000000Z"}}}],
        "asc",
        1000,
        {},
    ),
    (
        "since-offset-zone",
        q(since_time=datetime(2026, 11, 21, 11, 0, tzinfo=PLUS_ONE)),
        [{"range": {"@timestamp": {"gte": "2026-11-21T10:00:00.000000000Z"}}}],
        "asc",
        1000,
        {},
    ),
    ("run", q(run=2), [{"term": {"container.restart_count": 2}}], "asc", 1000, {}),
    ("stream", q(stream="stderr"), [{"term": {"stream": "stderr"}}], "asc", 1000, {}),
    ("text", q(text="connection refused"), [{"match_phrase": {"message": "connection refused"}}], "asc", 1000, {}),
    ("page-token", q(page_token=TOKEN), [], "asc", 1000, {"search_after": [1795255200123456789, 42, "abc"]}),
    # Output-only options do not change what is searched.
    ("timestamps", q(timestamps=True), [], "asc", 1000, {}),
    ("limit-bytes", q(limit_bytes=10), [], "asc", 1000, {}),
    ("previous-before-resolution", q(previous=True), [], "asc", 1000, {}),
]


@pytest.mark.parametrize(("case", "query", "extra", "order", "size", "keys"), DSL_CASES, ids=[c[0] for c in DSL_CASES])
def test_build_search(
    case: str, query: LogQuery, extra: list[dict[str, Any]], order: str, size: int, keys: dict[str, Any]
) -> None:
    body = build_search(query, now=NOW)
    assert body["query"] == {"bool": {"filter": BASE + extra}}
    assert body["sort"] == [
        {"@timestamp": {"order": order}},
        {"log.offset": {"order": order}},
        {"event.id": {"order": order}},
    ]
    assert body["size"] == size
    assert body["track_total_hits"] is False
    assert "message" in body["_source"]
    for key, value in keys.items():
        assert body[key] == value
    if "search_after" not in keys:
        assert "search_after" not in body


def test_tenant_filter_is_always_first() -> None:
    for _, query, *_ in DSL_CASES:
        assert build_search(query, now=NOW)["query"]["bool"]["filter"][0] == {"term": {"tenant.id": "acme"}}


def test_runs_filter() -> None:
    body = build_search(q(), now=NOW, runs={"b": 0, "a": 3})
    clause = body["query"]["bool"]["filter"][-1]
    assert clause == {
        "bool": {
            "minimum_should_match": 1,
            "should": [
                {"bool": {"filter": [{"term": {"container.name": "a"}}, {"term": {"container.restart_count": 3}}]}},
                {"bool": {"filter": [{"term": {"container.name": "b"}}, {"term": {"container.restart_count": 0}}]}},
            ],
        }
    }


def test_runs_search_and_previous_runs() -> None:
    body = build_runs_search(q(container="app", since_seconds=5), now=NOW)
    assert body["size"] == 0
    # Time filters must not hide the latest run.
    assert body["query"] == {"bool": {"filter": [*BASE, {"term": {"container.name": "app"}}]}}
    assert body["aggs"]["containers"]["aggs"]["latest"] == {"max": {"field": "container.restart_count"}}
    raw = {
        "aggregations": {
            "containers": {
                "buckets": [
                    {"key": "app", "latest": {"value": 2.0}},
                    {"key": "side", "latest": {"value": 0.0}},
                    {"key": "odd", "latest": {"value": None}},
                ]
            }
        }
    }
    assert previous_runs(raw) == {"app": 1}
    assert previous_runs({}) == {}


def test_follow_builders() -> None:
    body = build_follow_search(q(container="app"), now=NOW, created_from_ns=5, search_after=[7, "x"], size=10)
    assert body["query"]["bool"]["filter"][-1] == {
        "range": {"event.created": {"gte": "1970-01-01T00:00:00.000000005Z"}}
    }
    assert body["sort"] == [{"event.created": {"order": "asc"}}, {"event.id": {"order": "asc"}}]
    assert body["search_after"] == [7, "x"]
    assert body["size"] == 10
    head = build_latest_created(q(), now=NOW)
    assert head["sort"] == [{"event.created": {"order": "desc"}}] and head["size"] == 1


BAD_QUERIES: list[tuple[str, dict[str, Any], str]] = [
    ("empty-tenant", {"tenant": ""}, "tenant"),
    ("tenant-wildcard", {"tenant": "a*"}, "tenant"),
    ("instance-space", {"instance_id": "ci a"}, "instance_id"),
    ("container-slash", {"container": "a/b"}, "container"),
    ("tail-negative", {"tail_lines": -1}, "tail_lines"),
    ("tail-too-big", {"tail_lines": 10_001}, "tail_lines"),
    ("tail-bool", {"tail_lines": True}, "tail_lines"),
    ("since-zero", {"since_seconds": 0}, "since_seconds"),
    ("since-both", {"since_seconds": 5, "since_time": NOW}, "since_seconds"),
    ("since-naive", {"since_time": datetime(2026, 1, 1)}, "since_time"),
    ("until-before-since", {"since_time": NOW, "until_time": NOW}, "until_time"),
    ("limit-bytes-zero", {"limit_bytes": 0}, "limit_bytes"),
    ("limit-zero", {"limit": 0}, "limit"),
    ("limit-too-big", {"limit": 10_001}, "limit"),
    ("previous-and-run", {"previous": True, "run": 1}, "previous"),
    ("run-negative", {"run": -1}, "run"),
    ("stream", {"stream": "stdin"}, "stream"),
    ("text-blank", {"text": "  "}, "text"),
    ("text-long", {"text": "x" * 1025}, "text"),
    ("token-garbage", {"page_token": "v1.!!!"}, "page_token"),
    ("token-foreign", {"page_token": "eyJhIjoxfQ"}, "page_token"),
    ("token-shape", {"page_token": encode_page_token(["a", 1, 2])}, "page_token"),
    ("token-with-tail", {"page_token": TOKEN, "tail_lines": 5}, "page_token"),
    ("timestamps-str", {"timestamps": "yes"}, "timestamps"),
]


@pytest.mark.parametrize(("case", "kwargs", "field"), BAD_QUERIES, ids=[c[0] for c in BAD_QUERIES])
def test_bad_query_names_field(case: str, kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"tenant": "acme", "instance_id": "ci-a", **kwargs}
    with pytest.raises(InvalidParameter) as err:
        LogQuery(**args)
    assert err.value.field == field


def test_page_token_round_trip() -> None:
    values = [1795255200123456789, 0, "0f3a"]
    assert decode_page_token(encode_page_token(values)) == values


PARAM_CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    ("none", {}, {}),
    (
        "all",
        {
            "container": "app",
            "tailLines": "10",
            "sinceSeconds": "30",
            "untilTime": "2026-11-21T10:00:00Z",
            "timestamps": "true",
            "limitBytes": "100",
            "stream": "stdout",
            "q": "error",
            "follow": "true",
        },
        {
            "container": "app",
            "tail_lines": 10,
            "since_seconds": 30,
            "until_time": NOW,
            "timestamps": True,
            "limit_bytes": 100,
            "stream": "stdout",
            "text": "error",
        },
    ),
    ("previous", {"previous": "1"}, {"previous": True}),
    ("since-time", {"sinceTime": "2026-11-21T11:00:00+01:00"}, {"since_time": NOW}),
    ("paging", {"pageToken": TOKEN, "limit": "5"}, {"page_token": TOKEN, "limit": 5}),
]


@pytest.mark.parametrize(("case", "raw", "expected"), PARAM_CASES, ids=[c[0] for c in PARAM_CASES])
def test_query_from_params(case: str, raw: dict[str, str], expected: dict[str, Any]) -> None:
    assert query_from_params("acme", "ci-a", raw) == q(**expected)


PARAM_ERRORS = [
    ("tail-text", {"tailLines": "ten"}, "tailLines"),
    ("tail-range", {"tailLines": "100000"}, "tailLines"),
    ("since-time", {"sinceTime": "yesterday"}, "sinceTime"),
    ("until-time", {"untilTime": "2026-13-01T00:00:00Z"}, "untilTime"),
    ("timestamps", {"timestamps": "maybe"}, "timestamps"),
    ("both-since", {"sinceSeconds": "1", "sinceTime": "2026-11-21T10:00:00Z"}, "sinceSeconds"),
    ("token", {"pageToken": "nope"}, "pageToken"),
    ("limit-bytes", {"limitBytes": "-5"}, "limitBytes"),
]


@pytest.mark.parametrize(("case", "raw", "field"), PARAM_ERRORS, ids=[c[0] for c in PARAM_ERRORS])
def test_query_from_params_errors_use_rest_names(case: str, raw: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidParameter) as err:
        query_from_params("acme", "ci-a", raw)
    assert err.value.field == field


TIME_CASES = [
    ("nanos", "2026-11-21T10:00:00.123456789Z", 1795255200123456789),
    ("millis", "2026-11-21T10:00:00.120Z", 1795255200120000000),
    ("whole", "2026-11-21T10:00:00Z", 1795255200000000000),
    ("offset", "2026-11-21T12:30:00.5+02:30", 1795255200500000000),
    ("negative-offset", "2026-11-21T09:00:00-01:00", 1795255200000000000),
]


@pytest.mark.parametrize(("case", "text", "ns"), TIME_CASES, ids=[c[0] for c in TIME_CASES])
def test_parse_rfc3339_ns(case: str, text: str, ns: int) -> None:
    assert parse_rfc3339_ns(text) == ns


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (1795255200123456789, "2026-11-21T10:00:00.123456789Z"),
        (1795255200120000000, "2026-11-21T10:00:00.12Z"),
        (1795255200000000000, "2026-11-21T10:00:00Z"),
        (1795255200000000001, "2026-11-21T10:00:00.000000001Z"),
    ],
    ids=["nanos", "trimmed", "whole", "one-ns"],
)
def test_format_rfc3339_nano_trims_like_go(ns: int, text: str) -> None:
    assert format_rfc3339_nano(ns) == text


def test_parse_rfc3339_datetime() -> None:
    assert parse_rfc3339("2026-11-21T10:00:00.000001999Z") == NOW + timedelta(microseconds=1)
