"""Recognise the watch events of the controller's own writes.

After a status write the controller already holds the new version (it merges what it wrote
into its cache), so the MODIFIED event the watch then brings back for that version tells
it nothing new; reconciling it would only find nothing to do. Any other event, or one of
another version, is news.
"""

from __future__ import annotations


class OwnWrites:
    def __init__(self) -> None:
        # key -> resourceVersion of the last write here whose event has not come back yet
        self._pending: dict[str, str] = {}

    def wrote(self, key: str, resource_version: str | None) -> None:
        if resource_version:
            self._pending[key] = resource_version

    def is_echo(self, kind: str, key: str, resource_version: str | None) -> bool:
        """Whether this event only reports our own last write; every event for `key`
        settles what was pending for it, so nothing waits forever."""
        pending = self._pending.pop(key, None)
        return kind == "MODIFIED" and pending is not None and pending == resource_version

    def __len__(self) -> int:
        return len(self._pending)
