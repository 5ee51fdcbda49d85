"""Lifecycle events as JSON lines: compact, keys sorted, one file per event date."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cis.lifecycle_log import LifecycleLog


def test_events_are_compact_sorted_lines_in_the_file_of_their_date(tmp_path: Path) -> None:
    log = LifecycleLog(tmp_path)
    events = [
        {"@timestamp": "2026-11-21T23:59:59.999Z", "event": {"id": "a"}, "instance": {"id": "ci-1", "name": "ü"}},
        {"@timestamp": "2026-11-22T00:00:00.000Z", "event": {"id": "b"}, "cpu": 0.25},
    ]
    assert log.append(events) == 2
    first = (tmp_path / "lifecycle-2026-11-21.ndjson").read_text(encoding="utf-8")
    second = (tmp_path / "lifecycle-2026-11-22.ndjson").read_text(encoding="utf-8")
    assert first == '{"@timestamp":"2026-11-21T23:59:59.999Z","event":{"id":"a"},"instance":{"id":"ci-1","name":"ü"}}\n'
    assert json.loads(second) == events[1] and second.endswith("}\n") and second.count("\n") == 1
    assert list(json.loads(second)) == sorted(events[1])


def test_appends_never_rewrite(tmp_path: Path) -> None:
    log = LifecycleLog(tmp_path)
    log.append([{"@timestamp": "2026-11-21T10:00:00.000Z", "n": 1}])
    log.append([{"@timestamp": "2026-11-21T11:00:00.000Z", "n": 2}])
    lines = (tmp_path / "lifecycle-2026-11-21.ndjson").read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == [1, 2]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        LifecycleLog(tmp_path / "absent")
