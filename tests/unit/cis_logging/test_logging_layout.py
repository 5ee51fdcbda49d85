"""Index names, templates and retention arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from cis_logging.es_setup import planned_policies, planned_templates
from cis_logging.layout import EsLayout, expired_indices, index_day

LAYOUT = EsLayout()


def _prop(mappings: dict[str, Any], dotted: str) -> dict[str, Any]:
    node: dict[str, Any] = mappings
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("@timestamp", "date_nanos"),
        ("message", "text"),
        ("stream", "keyword"),
        ("instance.id", "keyword"),
        ("tenant.id", "keyword"),
        ("container.name", "keyword"),
        ("container.restart_count", "long"),
        ("kubernetes.pod.uid", "keyword"),
        ("kubernetes.namespace", "keyword"),
        ("log.offset", "long"),
        ("event.id", "keyword"),
        ("event.created", "date_nanos"),
    ],
    ids=lambda v: str(v),
)
def test_logs_mapping(field: str, kind: str) -> None:
    body = planned_templates(LAYOUT, ilm=False)["cis-logs"]
    assert _prop(body["template"]["mappings"], field)["type"] == kind


@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("@timestamp", "date"),
        ("event.id", "keyword"),
        ("event.kind", "keyword"),
        ("event.seq", "long"),
        ("instance.id", "keyword"),
        ("instance.tenant", "keyword"),
        ("instance.cpu", "keyword"),
        ("instance.started_at", "date"),
        ("instance.stopped_at", "date"),
    ],
    ids=lambda v: str(v),
)
def test_events_mapping(field: str, kind: str) -> None:
    body = planned_templates(LAYOUT, ilm=False)["cis-events"]
    assert _prop(body["template"]["mappings"], field)["type"] == kind


@pytest.mark.parametrize("ilm", [False, True], ids=["no-ilm", "ilm"])
def test_templates(ilm: bool) -> None:
    templates = planned_templates(LAYOUT, ilm=ilm)
    assert templates["cis-logs"]["index_patterns"] == ["cis-logs-*"]
    assert templates["cis-events"]["index_patterns"] == ["cis-events-*"]
    for body in templates.values():
        settings = body["template"]["settings"]
        assert body["template"]["mappings"]["dynamic"] is False
        assert settings["index.number_of_replicas"] == 0
        assert ("index.lifecycle.name" in settings) is ilm
        # Only core field types: the minimal distribution has no mapper-extras.
        text = repr(body)
        for missing in ("match_only_text", "wildcard", "constant_keyword", "flattened"):
            assert missing not in text
    policies = planned_policies(LAYOUT, ilm=ilm)
    assert bool(policies) is ilm
    for policy in policies.values():
        assert "rollover" not in repr(policy)
        assert policy["policy"]["phases"]["delete"]["actions"] == {"delete": {}}


def test_index_names_use_event_time_in_utc() -> None:
    late = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert LAYOUT.logs_index(late) == "cis-logs-2026.12.01"
    assert LAYOUT.events_index(late) == "cis-events-2026.12"
    assert LAYOUT.logs_index(datetime(2026, 1, 2, tzinfo=UTC)) == "cis-logs-2026.01.02"


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("cis-logs-2026.11.21", date(2026, 11, 21)),
        ("cis-logs-2026.02", date(2026, 2, 28)),
        ("cis-logs-2024.02", date(2024, 2, 29)),
        ("cis-logs-2026.12", date(2026, 12, 31)),
        ("cis-logs-2026.13.01", None),
        ("cis-logs-x", None),
        ("other-2026.11.21", None),
    ],
    ids=lambda v: str(v),
)
def test_index_day(name: str, day: date | None) -> None:
    assert index_day("cis-logs", name) == day


def test_expired_indices() -> None:
    names = [
        "cis-logs-2026.10.01",
        "cis-logs-2026.10.22",
        "cis-logs-2026.10.21",
        "cis-logs-2026.11.21",
        "cis-logs-junk",
    ]
    assert expired_indices("cis-logs", names, today=date(2026, 11, 21), retention_days=30) == [
        "cis-logs-2026.10.01",
        "cis-logs-2026.10.21",
    ]
