"""The Elasticsearch layout of logs and lifecycle events: index names, templates, mappings.

Pure values only; `es_setup` applies them. Indices are dated by the *event's* timestamp
(`cis-logs-YYYY.MM.DD`, `cis-events-YYYY.MM`), never by arrival time, so a re-sent document
always lands in the index that already holds it and its deterministic `_id` deduplicates
it. That is also why there is no rollover alias: rollover would send a re-sent document to
a new backing index, where the same `_id` is a second copy.

Mappings are `dynamic: false`: fields Filebeat adds that we did not plan for stay in
`_source` but are not indexed, and a new field never makes Elasticsearch reject a document
(a rejected log line would be lost for good). Only core field types are used because the
minimal Elasticsearch distribution has no mapper-extras (no match_only_text, wildcard or
constant_keyword).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from cis_logging.errors import InvalidParameter
from cis_logging.params import check_index_prefix, check_int

# Log document fields (the query module and the Filebeat template agree on these names).
F_TIMESTAMP = "@timestamp"
F_MESSAGE = "message"
F_STREAM = "stream"
F_INSTANCE = "instance.id"
F_TENANT = "tenant.id"
F_CONTAINER = "container.name"
F_RUN = "container.restart_count"
F_POD_UID = "kubernetes.pod.uid"
F_NAMESPACE = "kubernetes.namespace"
F_OFFSET = "log.offset"
F_ID = "event.id"
F_CREATED = "event.created"

_KEYWORD = {"type": "keyword", "ignore_above": 1024}
_LONG = {"type": "long"}
_DATE = {"type": "date"}
_DATE_NANOS = {"type": "date_nanos"}


def _nest(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Turn {"a.b": mapping} into nested `properties`, the form ES echoes back."""
    root: dict[str, Any] = {}
    for path, mapping in flat.items():
        node = root
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[leaf] = mapping
    return root


LOG_FIELDS: dict[str, dict[str, Any]] = {
    F_TIMESTAMP: _DATE_NANOS,  # CRI timestamps have nanoseconds; Filebeat is told to keep them
    F_MESSAGE: {"type": "text"},
    F_STREAM: _KEYWORD,
    F_INSTANCE: _KEYWORD,
    F_TENANT: _KEYWORD,
    F_CONTAINER: _KEYWORD,
    F_RUN: _LONG,
    F_POD_UID: _KEYWORD,
    "kubernetes.pod.name": _KEYWORD,
    F_NAMESPACE: _KEYWORD,
    "kubernetes.node.name": _KEYWORD,
    F_OFFSET: _LONG,
    "log.file.path": _KEYWORD,
    F_ID: _KEYWORD,
    F_CREATED: _DATE_NANOS,  # Filebeat's read time: the order `follow` delivers lines in
    "host.name": _KEYWORD,
}

EVENT_FIELDS: dict[str, dict[str, Any]] = {
    F_TIMESTAMP: _DATE,
    "event.id": _KEYWORD,
    "event.kind": _KEYWORD,
    "event.seq": _LONG,
    "event.created": _DATE_NANOS,
    "instance.id": _KEYWORD,
    "instance.uid": _KEYWORD,
    "instance.tenant": _KEYWORD,
    "instance.region": _KEYWORD,
    "instance.cluster": _KEYWORD,
    # Decimal strings ("0.5"); billing parses them exactly, a float mapping would not.
    "instance.cpu": _KEYWORD,
    "instance.memory_gib": _KEYWORD,
    "instance.started_at": _DATE,
    "instance.stopped_at": _DATE,
    "instance.reason": _KEYWORD,
}

# Events are stored sorted by run (instance uid, then start), the order billing's runs
# aggregation pages in: Elasticsearch can then end each page early instead of visiting
# every event of the billing window per page.
EVENTS_SORT: dict[str, Any] = {
    "index.sort.field": ["instance.uid", "instance.started_at"],
    "index.sort.order": ["asc", "asc"],
}


@dataclass(frozen=True)
class EsLayout:
    """Index naming and template settings; one per deployment, passed to setup and queries."""

    logs_prefix: str = "cis-logs"
    events_prefix: str = "cis-events"
    # One shard: a day of one cluster's logs is small, and `follow` relies on one shard's
    # refresh order. Replicas 0 on a single node, or the cluster stays yellow.
    shards: int = 1
    replicas: int = 0
    # Used only where ILM exists (it does not on the minimal distribution).
    logs_retention_days: int = 30
    # Lifecycle events are the billing record: keep them for years, not weeks.
    events_retention_days: int = 1825
    template_priority: int = 200

    def __post_init__(self) -> None:
        check_index_prefix("logs_prefix", self.logs_prefix)
        check_index_prefix("events_prefix", self.events_prefix)
        if self.logs_prefix == self.events_prefix:
            raise InvalidParameter("events_prefix", "must differ from logs_prefix")
        check_int("shards", self.shards, 1, 64)
        check_int("replicas", self.replicas, 0, 8)
        check_int("logs_retention_days", self.logs_retention_days, 1, 36500)
        check_int("events_retention_days", self.events_retention_days, 1, 36500)
        check_int("template_priority", self.template_priority, 1, 10_000)

    @property
    def logs_pattern(self) -> str:
        return f"{self.logs_prefix}-*"

    @property
    def events_pattern(self) -> str:
        return f"{self.events_prefix}-*"

    @property
    def logs_template_name(self) -> str:
        return self.logs_prefix

    @property
    def events_template_name(self) -> str:
        return self.events_prefix

    @property
    def logs_policy_name(self) -> str:
        return f"{self.logs_prefix}-retention"

    @property
    def events_policy_name(self) -> str:
        return f"{self.events_prefix}-retention"

    def logs_index(self, when: datetime) -> str:
        return f"{self.logs_prefix}-{when.astimezone(UTC):%Y.%m.%d}"

    def events_index(self, when: datetime) -> str:
        return f"{self.events_prefix}-{when.astimezone(UTC):%Y.%m}"


def _settings(layout: EsLayout, policy: str | None) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "index.number_of_shards": layout.shards,
        "index.number_of_replicas": layout.replicas,
        "index.refresh_interval": "1s",
    }
    if policy is not None:
        settings["index.lifecycle.name"] = policy
    return settings


def logs_template(layout: EsLayout, *, ilm: bool) -> dict[str, Any]:
    """Body of `PUT _index_template/<logs>`."""
    return {
        "index_patterns": [layout.logs_pattern],
        "priority": layout.template_priority,
        "template": {
            "settings": _settings(layout, layout.logs_policy_name if ilm else None),
            "mappings": {"dynamic": False, "properties": _nest(LOG_FIELDS)},
        },
        "_meta": {"managed_by": "cis_logging"},
    }


def events_template(layout: EsLayout, *, ilm: bool) -> dict[str, Any]:
    """Body of `PUT _index_template/<events>`."""
    return {
        "index_patterns": [layout.events_pattern],
        "priority": layout.template_priority,
        "template": {
            "settings": {**_settings(layout, layout.events_policy_name if ilm else None), **EVENTS_SORT},
            "mappings": {"dynamic": False, "properties": _nest(EVENT_FIELDS)},
        },
        "_meta": {"managed_by": "cis_logging"},
    }


def retention_policy(days: int) -> dict[str, Any]:
    """An ILM policy deleting an index `days` after creation.

    No rollover action: our indices are dated by event time (see module docstring), and
    rollover on an index without a rollover alias is an ILM error.
    """
    return {
        "policy": {
            "phases": {
                "hot": {"min_age": "0ms", "actions": {}},
                "delete": {"min_age": f"{days}d", "actions": {"delete": {}}},
            },
            "_meta": {"managed_by": "cis_logging"},
        }
    }


_DAILY = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})")
_MONTHLY = re.compile(r"(\d{4})\.(\d{2})")


def index_day(prefix: str, index: str) -> date | None:
    """The last day an index named `<prefix>-YYYY.MM[.DD]` covers, or None if not ours."""
    if not index.startswith(prefix + "-"):
        return None
    suffix = index[len(prefix) + 1:]
    try:
        if m := _DAILY.fullmatch(suffix):
            return date(int(m[1]), int(m[2]), int(m[3]))
        if m := _MONTHLY.fullmatch(suffix):
            year, month = int(m[1]), int(m[2])
            first_next = date(year + month // 12, month % 12 + 1, 1)
            return date.fromordinal(first_next.toordinal() - 1)
    except ValueError:
        return None
    return None


def expired_indices(prefix: str, indices: list[str], *, today: date,
                    retention_days: int) -> list[str]:
    """Dated indices entirely older than the retention period (for clusters without ILM)."""
    expired = []
    for name in indices:
        last = index_day(prefix, name)
        if last is not None and (today - last).days > retention_days:
            expired.append(name)
    return sorted(expired)
