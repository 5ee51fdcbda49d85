"""Log queries: a validated `LogQuery` and the pure builders of Elasticsearch query DSL.

The REST handler (`GET /v1/instances/{id}/logs`) and the virtual kubelet's `kubectl logs`
both describe what they want as a `LogQuery`; `reading` executes it. Everything here is
a plain function over plain values (the current time is an argument), so every option is
unit-tested as data.

Semantics follow `kubectl logs` where it has an opinion:
- lines come in chronological order: `@timestamp` (nanoseconds), then file offset;
- `tail_lines` is the last N lines (after the time filters), still in order;
- `since_*` is inclusive, `until_time` exclusive;
- `limit_bytes` cuts the output, timestamps prefixes included, possibly mid-line;
- `previous` is the run before the latest one of each container (`<n>.log` is the
  kubelet's restart count). Without `previous` or `run`, all runs are returned in time
  order: logs outlive containers here.
Every query filters on the tenant first: another tenant's instance simply has no lines.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cis_logging.errors import InvalidParameter
from cis_logging.layout import (
    F_CONTAINER,
    F_CREATED,
    F_ID,
    F_INSTANCE,
    F_MESSAGE,
    F_OFFSET,
    F_RUN,
    F_STREAM,
    F_TENANT,
    F_TIMESTAMP,
)

MAX_TAIL_LINES = 10_000  # index.max_result_window: one request must be able to answer it
MAX_PAGE_LINES = 10_000
DEFAULT_PAGE_LINES = 1_000
MAX_TEXT_QUERY = 1_024
MAX_SINCE_SECONDS = 10 * 366 * 24 * 3600
STREAMS = ("stdout", "stderr")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")
_TOKEN_PREFIX = "v1."
_SOURCE = [F_TIMESTAMP, F_MESSAGE, F_STREAM, F_CONTAINER, F_RUN, F_OFFSET, F_ID, F_CREATED]
# Log order. The id makes every sort key unique, which `search_after` requires.
LOG_SORT_FIELDS = (F_TIMESTAMP, F_OFFSET, F_ID)
FOLLOW_SORT_FIELDS = (F_CREATED, F_ID)


# ----------------------------------------------------------------------------- time


def to_ns(when: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact, no float)."""
    return (when - _EPOCH) // timedelta(microseconds=1) * 1000


def format_rfc3339_nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC, as the kubelet prints: trailing zeros trimmed."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def _format_fixed_nano(ns: int) -> str:
    """RFC 3339 with all nine fraction digits: what date_nanos range queries accept."""
    seconds, frac = divmod(ns, 1_000_000_000)
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))")


_EPOCH_NAIVE = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def _utc_ns_fast(text: str) -> int | None:
    """The common `YYYY-MM-DDTHH:MM:SS[.fraction]Z` form, without the regex (hot path:
    every returned line's timestamp goes through here)."""
    n = len(text)
    if n < 20 or text[-1] != "Z" or text[10] != "T":
        return None
    if n == 20:
        frac = ""
    elif text[19] == "." and n <= 30:
        frac = text[20:-1]
        if not (frac.isascii() and frac.isdigit()):
            return None
    else:
        return None
    head = text[:19]
    if not (head[:4].isdigit() and head[5:7].isdigit() and head[8:10].isdigit()):
        return None
    try:
        base = datetime.fromisoformat(head)
    except ValueError:
        return None
    return (base - _EPOCH_NAIVE) // _SECOND * 1_000_000_000 + int(frac.ljust(9, "0"))


def parse_rfc3339_ns(text: str, *, field: str = "time") -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp (any fraction up to 9 digits)."""
    if isinstance(text, str) and (fast := _utc_ns_fast(text)) is not None:
        return fast
    m = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise InvalidParameter(field, f"{text!r} is not an RFC 3339 timestamp")
    try:
        base = datetime(int(m[1]), int(m[2]), int(m[3]), int(m[4]), int(m[5]), int(m[6]),
                        tzinfo=UTC)
    except ValueError as exc:
        raise InvalidParameter(field, f"{text!r}: {exc}") from exc
    ns = to_ns(base) + int((m[7] or "").ljust(9, "0"))
    if m[9]:
        offset = (int(m[10]) * 60 + int(m[11])) * 60 * 1_000_000_000
        ns += -offset if m[9] == "+" else offset
    return ns


def parse_rfc3339(text: str, *, field: str = "time") -> datetime:
    """An aware datetime (microsecond precision) from an RFC 3339 timestamp."""
    ns = parse_rfc3339_ns(text, field=field)
    return _EPOCH + timedelta(microseconds=ns // 1000)


# ----------------------------------------------------------------------------- query


@dataclass(frozen=True)
class LogQuery:
    """What to read. Construction validates; field names are the ones errors carry."""

    tenant: str
    instance_id: str
    container: str | None = None
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: datetime | None = None
    until_time: datetime | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False
    run: int | None = None  # one container run (restart count); exclusive with `previous`
    stream: str | None = None
    text: str | None = None
    page_token: str | None = None
    limit: int = DEFAULT_PAGE_LINES  # lines per page when not tailing

    def __post_init__(self) -> None:
        _check_name("tenant", self.tenant)
        _check_name("instance_id", self.instance_id)
        if self.container is not None:
            _check_name("container", self.container)
        _check_opt_int("tail_lines", self.tail_lines, 0, MAX_TAIL_LINES)
        _check_opt_int("since_seconds", self.since_seconds, 1, MAX_SINCE_SECONDS)
        _check_opt_int("limit_bytes", self.limit_bytes, 1, 1 << 40)
        _check_opt_int("run", self.run, 0, 1 << 31)
        _check_opt_int("limit", self.limit, 1, MAX_PAGE_LINES)
        for name in ("since_time", "until_time"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
                raise InvalidParameter(name, "must be a timezone-aware datetime")
        for name in ("timestamps", "previous"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidParameter(name, "must be true or false")
        if self.since_seconds is not None and self.since_time is not None:
            raise InvalidParameter("since_seconds", "cannot be combined with since_time")
        if (self.since_time is not None and self.until_time is not None
                and self.until_time <= self.since_time):
            raise InvalidParameter("until_time", "must be after since_time")
        if self.previous and self.run is not None:
            raise InvalidParameter("previous", "cannot be combined with run")
        if self.stream is not None and self.stream not in STREAMS:
            raise InvalidParameter("stream", f"must be one of {', '.join(STREAMS)}")
        if self.text is not None and (not isinstance(self.text, str)
                                      or not self.text.strip() or len(self.text) > MAX_TEXT_QUERY):
            raise InvalidParameter("text", f"must be 1-{MAX_TEXT_QUERY} characters")
        if self.page_token is not None:
            if self.tail_lines is not None:
                raise InvalidParameter("page_token", "cannot be combined with tail_lines")
            decode_page_token(self.page_token)


def _check_name(name: str, value: object) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidParameter(name, f"{value!r} is not a valid name")


def _check_opt_int(name: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameter(name, f"{value!r} must be an integer in [{low}, {high}]")


# REST / kubelet query-string names → LogQuery fields.
REST_NAMES = {
    "container": "container", "tailLines": "tail_lines", "sinceSeconds": "since_seconds",
    "sinceTime": "since_time", "untilTime": "until_time", "timestamps": "timestamps",
    "limitBytes": "limit_bytes", "previous": "previous", "run": "run", "stream": "stream",
    "q": "text", "pageToken": "page_token", "limit": "limit",
}
_FIELD_TO_REST = {v: k for k, v in REST_NAMES.items()}


def query_from_params(tenant: str, instance_id: str, raw: Mapping[str, str]) -> LogQuery:
    """A `LogQuery` from query-string parameters (`tailLines=10&timestamps=true`...).

    Unknown parameters are ignored (the REST layer owns its own, such as `follow`); errors
    name the parameter as the client spelled it.
    """
    values: dict[str, Any] = {}
    for rest, name in REST_NAMES.items():
        if rest not in raw:
            continue
        text = raw[rest]
        if name in ("tail_lines", "since_seconds", "limit_bytes", "run", "limit"):
            try:
                values[name] = int(text)
            except ValueError:
                raise InvalidParameter(rest, f"{text!r} is not an integer") from None
        elif name in ("timestamps", "previous"):
            if text.lower() not in ("true", "false", "1", "0", ""):
                raise InvalidParameter(rest, f"{text!r} is not a boolean")
            values[name] = text.lower() in ("true", "1", "")
        elif name in ("since_time", "until_time"):
            values[name] = parse_rfc3339(text, field=rest)
        else:
            values[name] = text
    try:
        return LogQuery(tenant=tenant, instance_id=instance_id, **values)
    except InvalidParameter as exc:
        raise InvalidParameter(_FIELD_TO_REST.get(exc.field, exc.field), exc.message) from None


# ----------------------------------------------------------------------------- tokens


def encode_page_token(sort_values: Sequence[Any]) -> str:
    raw = json.dumps(list(sort_values), separators=(",", ":")).encode()
    return _TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> list[Any]:
    """The `search_after` values inside a token; InvalidParameter if it is not ours."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_PREFIX) or len(token) > 1024:
        raise InvalidParameter("page_token", "is not a valid page token")
    body = token[len(_TOKEN_PREFIX):]
    try:
        values = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidParameter("page_token", "is not a valid page token") from None
    if (not isinstance(values, list) or len(values) != len(LOG_SORT_FIELDS)
            or not isinstance(values[0], int) or not isinstance(values[1], int)
            or not isinstance(values[2], str)):
        raise InvalidParameter("page_token", "is not a valid page token")
    return values


# ----------------------------------------------------------------------------- DSL


def _term(field: str, value: Any) -> dict[str, Any]:
    return {"term": {field: value}}


def since_ns(query: LogQuery, now: datetime) -> int | None:
    if query.since_time is not None:
        return to_ns(query.since_time)
    if query.since_seconds is not None:
        return to_ns(now) - query.since_seconds * 1_000_000_000
    return None


def log_filters(query: LogQuery, *, now: datetime,
                runs: Mapping[str, int] | None = None) -> list[dict[str, Any]]:
    """The filter clauses every read of `query` shares. `runs`: container → run to keep."""
    filters = [_term(F_TENANT, query.tenant), _term(F_INSTANCE, query.instance_id)]
    if query.container is not None:
        filters.append(_term(F_CONTAINER, query.container))
    if query.stream is not None:
        filters.append(_term(F_STREAM, query.stream))
    if query.run is not None:
        filters.append(_term(F_RUN, query.run))
    if runs is not None:
        filters.append({"bool": {"minimum_should_match": 1, "should": [
            {"bool": {"filter": [_term(F_CONTAINER, c), _term(F_RUN, r)]}}
            for c, r in sorted(runs.items())]}})
    time_range: dict[str, str] = {}
    start = since_ns(query, now)
    if start is not None:
        time_range["gte"] = _format_fixed_nano(start)
    if query.until_time is not None:
        time_range["lt"] = _format_fixed_nano(to_ns(query.until_time))
    if time_range:
        filters.append({"range": {F_TIMESTAMP: time_range}})
    if query.text is not None:
        filters.append({"match_phrase": {F_MESSAGE: query.text}})
    return filters


def build_search(query: LogQuery, *, now: datetime,
                 runs: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The `_search` body for one page of `query` (tail: newest first, reversed later)."""
    tail = query.tail_lines is not None
    order = "desc" if tail else "asc"
    body: dict[str, Any] = {
        "query": {"bool": {"filter": log_filters(query, now=now, runs=runs)}},
        "sort": [{f: {"order": order}} for f in LOG_SORT_FIELDS],
        "size": query.tail_lines if tail else query.limit,
        "_source": list(_SOURCE),
        "track_total_hits": False,
    }
    if query.page_token is not None:
        body["search_after"] = decode_page_token(query.page_token)
    return body


def build_runs_search(query: LogQuery, *, now: datetime) -> dict[str, Any]:
    """Latest run per container (for `previous`): an aggregation, no hits."""
    filters = [_term(F_TENANT, query.tenant), _term(F_INSTANCE, query.instance_id)]
    if query.container is not None:
        filters.append(_term(F_CONTAINER, query.container))
    return {
        "query": {"bool": {"filter": filters}},
        "size": 0,
        "track_total_hits": False,
        "aggs": {"containers": {"terms": {"field": F_CONTAINER, "size": 100},
                                "aggs": {"latest": {"max": {"field": F_RUN}}}}},
    }


def previous_runs(raw_response: Mapping[str, Any]) -> dict[str, int]:
    """container → previous run, from a `build_runs_search` response (containers that
    never restarted have no previous run and are left out)."""
    runs: dict[str, int] = {}
    buckets = raw_response.get("aggregations", {}).get("containers", {}).get("buckets", [])
    for bucket in buckets:
        latest = (bucket.get("latest") or {}).get("value")
        if latest is not None and latest >= 1:
            runs[str(bucket["key"])] = int(latest) - 1
    return runs


def build_follow_search(query: LogQuery, *, now: datetime, created_from_ns: int,
                        search_after: Sequence[Any] | None, size: int) -> dict[str, Any]:
    """Lines that reached Elasticsearch after `created_from_ns`, in arrival order."""
    filters = log_filters(query, now=now)
    filters.append({"range": {F_CREATED: {"gte": _format_fixed_nano(created_from_ns)}}})
    body: dict[str, Any] = {
        "query": {"bool": {"filter": filters}},
        "sort": [{f: {"order": "asc"}} for f in FOLLOW_SORT_FIELDS],
        "size": size,
        "_source": list(_SOURCE),
        "track_total_hits": False,
    }
    if search_after is not None:
        body["search_after"] = list(search_after)
    return body


def build_latest_created(query: LogQuery, *, now: datetime) -> dict[str, Any]:
    """The newest arrival among the query's lines: where `follow` starts watching."""
    return {
        "query": {"bool": {"filter": log_filters(query, now=now)}},
        "sort": [{F_CREATED: {"order": "desc"}}],
        "size": 1,
        "_source": False,
        "track_total_hits": False,
    }
