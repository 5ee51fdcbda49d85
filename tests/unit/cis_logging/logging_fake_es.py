"""An in-memory stand-in for `AsyncElasticsearch.search`: the one seam the reading tests fake.

It evaluates exactly the query DSL subset `cis_logging.query` produces (bool filter/should,
term, range on timestamps, match_phrase as a substring, sort + search_after, size, a
terms → max aggregation), so the tests exercise the real builders end to end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from elasticsearch import AsyncElasticsearch

from cis_logging.query import parse_rfc3339_ns

_DATES = ("@timestamp", "event.created")


@dataclass
class FakeResponse:
    body: dict[str, Any]


def _value(doc: Mapping[str, Any], name: str) -> Any:
    value = doc.get(name)
    if name in _DATES and isinstance(value, str):
        return parse_rfc3339_ns(value)
    return value


def _matches(doc: Mapping[str, Any], clause: Mapping[str, Any]) -> bool:
    ((kind, spec),) = clause.items()
    if kind == "bool":
        if not all(_matches(doc, c) for c in spec.get("filter", [])):
            return False
        should = spec.get("should", [])
        needed = spec.get("minimum_should_match", 1 if should else 0)
        return bool(sum(_matches(doc, c) for c in should) >= needed)
    if kind == "term":
        ((name, wanted),) = spec.items()
        return bool(_value(doc, name) == wanted)
    if kind == "range":
        ((name, bounds),) = spec.items()
        value = _value(doc, name)
        if value is None:
            return False
        for op, raw in bounds.items():
            bound = parse_rfc3339_ns(raw) if name in _DATES else raw
            if op == "gte" and not value >= bound:
                return False
            if op == "lt" and not value < bound:
                return False
        return True
    if kind == "match_phrase":
        ((name, text),) = spec.items()
        return str(text).lower() in str(doc.get(name, "")).lower()
    raise AssertionError(f"fake ES does not know {kind}")


@dataclass
class FakeEs:
    docs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    fail_with: Exception | None = None

    def client(self) -> AsyncElasticsearch:
        return cast(AsyncElasticsearch, self)

    async def search(self, *, index: str, **kwargs: Any) -> FakeResponse:
        self.calls.append({"index": index, **kwargs})
        if self.fail_with is not None:
            raise self.fail_with
        hits = [d for d in self.docs if _matches(d, kwargs.get("query", {"bool": {}}))]
        if "aggs" in kwargs:
            buckets: dict[str, int] = {}
            for d in hits:
                name = d["container.name"]
                buckets[name] = max(buckets.get(name, -1), d["container.restart_count"])
            return FakeResponse(
                {
                    "hits": {"hits": []},
                    "aggregations": {
                        "containers": {
                            "buckets": [{"key": k, "latest": {"value": float(v)}} for k, v in sorted(buckets.items())]
                        }
                    },
                }
            )
        sort_spec = [next(iter(s.items())) for s in kwargs.get("sort", [])]

        def key(d: Mapping[str, Any]) -> list[Any]:
            return [_value(d, name) for name, _ in sort_spec]

        descending = bool(sort_spec) and sort_spec[0][1]["order"] == "desc"
        hits.sort(key=key, reverse=descending)
        after = kwargs.get("search_after")
        if after is not None:
            hits = [d for d in hits if (key(d) < after if descending else key(d) > after)]
        total = len(hits)
        hits = hits[: kwargs.get("size", 10)]
        return FakeResponse(
            {
                "hits": {
                    "total": {"value": min(total, 1) if kwargs.get("terminate_after") else total},
                    "hits": [{"_id": d["event.id"], "_source": dict(d), "sort": key(d)} for d in hits],
                }
            }
        )


def log_doc(
    *,
    tenant: str = "acme",
    instance: str = "ci-a",
    container: str = "app",
    ts: str,
    message: str,
    offset: int,
    run: int = 0,
    stream: str = "stdout",
    created: str | None = None,
    doc_id: str | None = None,
) -> dict[str, Any]:
    """A log document as Filebeat would index it (flattened keys; `_get` reads both)."""
    return {
        "@timestamp": ts,
        "message": message,
        "stream": stream,
        "tenant.id": tenant,
        "instance.id": instance,
        "container.name": container,
        "container.restart_count": run,
        "log.offset": offset,
        "event.id": doc_id or f"{instance}/{container}/{run}/{offset}",
        "event.created": created or ts,
    }
