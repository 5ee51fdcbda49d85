"""RFC 3339 timestamps as CIS writes and reads them.

Everything CIS emits (status, REST, lifecycle events) uses UTC with millisecond precision
and a ``Z`` suffix: ``2026-11-21T10:00:00.123Z``. Milliseconds are truncated, never rounded,
so a formatted time never lies in the future of the instant it describes (billing rounds
seconds up itself). Parsing accepts what Kubernetes writes (``2026-11-21T10:00:00Z``) and
any offset. Naive datetimes are refused: a time without a zone is a bug, not a value.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime


# Memoised (both are pure): an instance's few timestamps are formatted for its stored
# status, its REST view and its events again and again, and parsed back from each version.
@functools.lru_cache(maxsize=8192)
def format_timestamp(moment: datetime) -> str:
    """``2026-11-21T10:00:00.123Z``. Raises ``ValueError`` for a naive datetime."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    # isoformat truncates to milliseconds, and is several times cheaper than strftime.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def format_optional(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment)


@functools.lru_cache(maxsize=8192)
def parse_timestamp(text: str) -> datetime:
    """An aware UTC datetime from RFC 3339 text. Raises ``ValueError`` otherwise."""
    if not isinstance(text, str) or "T" not in text.upper():
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without zone: {text!r}")
    return moment.astimezone(UTC)


def parse_optional(text: object) -> datetime | None:
    """Lenient variant for stored and foreign status: None or garbage -> None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return parse_timestamp(text)
    except ValueError:
        return None
