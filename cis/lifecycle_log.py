"""Appends lifecycle events as JSON lines for Filebeat to ship (DESIGN §4).

One file per UTC day in the events directory. Lines are written and fsynced before the
controller records the new event sequence in the instance's status, so a crash between
the two replays the same events with the same ids, which Elasticsearch stores once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson


class LifecycleLog:
    def __init__(self, directory: Path, prefix: str = "lifecycle") -> None:
        if not directory.is_dir():
            raise ValueError(f"events directory {directory} does not exist")
        self.directory = directory
        self.prefix = prefix

    def path_for(self, timestamp: str) -> Path:
        # The event's own date, not the wall clock: replays land in the same file.
        return self.directory / f"{self.prefix}-{timestamp[:10]}.ndjson"

    def append(self, events: Iterable[dict[str, Any]]) -> int:
        """Write events durably; returns how many were written."""
        by_file: dict[Path, list[str]] = {}
        for event in events:
            # Compact, keys sorted; orjson, as this runs on a thread that holds the GIL meanwhile.
            line = orjson.dumps(event, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE).decode()
            by_file.setdefault(self.path_for(str(event["@timestamp"])), []).append(line)
        count = 0
        for path, lines in by_file.items():
            with path.open("a", encoding="utf-8") as f:
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
            count += len(lines)
        return count
