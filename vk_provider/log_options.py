"""Query parameters of `/containerLogs` -> `LogOptions` (pure), as the kubelet parses them.

`tailLines` >= 0, `limitBytes` >= 1, `sinceSeconds` >= 1, `sinceTime` RFC 3339 (not together
with `sinceSeconds`), `follow`/`previous`/`timestamps` as Go booleans. A bad value is the
client's error (400), never ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from vk_provider.cis_client import LogOptions

_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_FALSE = {"0", "f", "F", "false", "FALSE", "False", ""}


class BadLogOptions(ValueError):
    pass


def _bool(query: Mapping[str, str], key: str) -> bool:
    raw = query.get(key)
    if raw is None:
        return False
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadLogOptions(f"{key}: {raw!r} is not a boolean")


def _int(query: Mapping[str, str], key: str, minimum: int) -> int | None:
    raw = query.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadLogOptions(f"{key}: {raw!r} is not an integer") from None
    if value < minimum:
        raise BadLogOptions(f"{key}: must be at least {minimum}")
    return value


def parse_log_options(container: str, query: Mapping[str, str]) -> LogOptions:
    since_time = query.get("sinceTime") or None
    since_seconds = _int(query, "sinceSeconds", 1)
    if since_time is not None:
        if since_seconds is not None:
            raise BadLogOptions("at most one of sinceTime or sinceSeconds may be specified")
        try:
            datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise BadLogOptions(f"sinceTime: {since_time!r} is not an RFC 3339 time") from None
    return LogOptions(
        container=container,
        tail_lines=_int(query, "tailLines", 0),
        since_seconds=since_seconds,
        since_time=since_time,
        timestamps=_bool(query, "timestamps"),
        limit_bytes=_int(query, "limitBytes", 1),
        previous=_bool(query, "previous"),
        follow=_bool(query, "follow"),
    )
