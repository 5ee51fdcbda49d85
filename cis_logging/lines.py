"""Log lines as the API returns them: parsed from search hits, rendered like `kubectl logs`.

Pure functions only: `reading` fetches, these turn raw hits into `LogLine`s and apply the
output rules (timestamp prefix, byte limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cis_logging.layout import F_CONTAINER, F_CREATED, F_ID, F_OFFSET, F_RUN, F_TIMESTAMP
from cis_logging.query import format_rfc3339_nano, parse_rfc3339_ns


class LogLine(NamedTuple):
    """One line. A NamedTuple rather than a frozen dataclass: pages of up to 10,000 are
    built per request and tuple construction is several times cheaper."""

    timestamp_ns: int  # the runtime's (CRI) timestamp
    message: str  # without the line terminator
    stream: str
    container: str
    run: int  # the container's restart count: which `<n>.log` the line came from
    offset: int
    id: str
    created_ns: int | None = None  # when Filebeat read it (follow order)
    partial: bool = False  # cut by limit_bytes: no line terminator follows

    @property
    def timestamp(self) -> str:
        return format_rfc3339_nano(self.timestamp_ns)

    def render(self, *, timestamps: bool) -> str:
        """The line as `kubectl logs` prints it, terminator included unless cut."""
        prefix = f"{self.timestamp} " if timestamps else ""
        return prefix + self.message + ("" if self.partial else "\n")

    def to_json(self, *, timestamps: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"container": self.container, "stream": self.stream,
                               "run": self.run, "message": self.message}
        if timestamps:
            out["timestamp"] = self.timestamp
        if self.partial:
            out["partial"] = True
        return out


@dataclass(frozen=True)
class LogPage:
    """One answer: lines in chronological order and where to continue."""

    lines: tuple[LogLine, ...]
    # Resume after the last line (pass as `page_token`); None when nothing was returned
    # or `limit_bytes` ended the output.
    next_token: str | None
    # The page was full: more lines may follow right now.
    has_more: bool
    truncated: bool = False  # limit_bytes cut the output

    def text(self, *, timestamps: bool) -> str:
        return "".join(line.render(timestamps=timestamps) for line in self.lines)


def _split(dotted: str) -> tuple[str, str]:
    parent, leaf = dotted.split(".", 1)
    return parent, leaf


_CREATED, _CONTAINER, _RUN, _OFFSET, _ID = map(_split, (F_CREATED, F_CONTAINER, F_RUN, F_OFFSET,
                                                        F_ID))


def _get(source: Mapping[str, Any], parent: str, leaf: str) -> Any:
    """`parent.leaf` from `_source`, nested (as Filebeat sends it) or as a dotted key.

    Plain dict lookups: this runs for every field of every returned line.
    """
    node = source.get(parent)
    if type(node) is dict:
        return node.get(leaf)
    return source.get(f"{parent}.{leaf}")


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _ns(value: Any) -> int | None:
    return parse_rfc3339_ns(value) if isinstance(value, str) else None


def parse_hit(hit: Mapping[str, Any], *, sorted_by: str | None = None) -> LogLine:
    """A line from a hit. `sorted_by`: the field of the hit's first sort value, which ES
    already gives as integer nanoseconds (cheaper than parsing the string)."""
    source = hit.get("_source") or {}
    sort = hit.get("sort") or ()
    if sorted_by == F_TIMESTAMP and sort:
        timestamp_ns = int(sort[0])
    else:
        timestamp_ns = _ns(source.get(F_TIMESTAMP)) or 0
    if sorted_by == F_CREATED and sort:
        created: int | None = int(sort[0])
    else:
        created = _ns(_get(source, *_CREATED))
    message = str(source.get("message", ""))
    # Some runtimes' lines keep their terminator; kubectl shows one line either way.
    if message.endswith("\n"):
        message = message[:-1]
    return LogLine(
        timestamp_ns=timestamp_ns,
        message=message,
        stream=str(source.get("stream", "")),
        container=str(_get(source, *_CONTAINER) or ""),
        run=_int(_get(source, *_RUN)),
        offset=_int(_get(source, *_OFFSET)),
        id=str(_get(source, *_ID) or hit.get("_id", "")),
        created_ns=created,
    )


def parse_hits(raw_response: Mapping[str, Any], *, newest_first: bool,
               sorted_by: str | None = None) -> list[LogLine]:
    """Lines of a search response in chronological order."""
    hits = raw_response.get("hits", {}).get("hits", [])
    lines = [parse_hit(h, sorted_by=sorted_by) for h in hits]
    if newest_first:
        lines.reverse()
    return lines


def last_sort_values(raw_response: Mapping[str, Any], *, newest_first: bool) -> list[Any] | None:
    """`sort` of the chronologically last hit (the first one when sorted newest first)."""
    hits: Sequence[Mapping[str, Any]] = raw_response.get("hits", {}).get("hits", [])
    if not hits:
        return None
    hit = hits[0] if newest_first else hits[-1]
    sort = hit.get("sort")
    return list(sort) if sort is not None else None


def cut_to_bytes(lines: Iterable[LogLine], budget: int, *,
                 timestamps: bool) -> tuple[list[LogLine], int, bool]:
    """Keep lines while their rendering fits `budget` bytes; the first line that does not
    fit is cut (at a character boundary, so the text stays valid UTF-8) and ends the output.

    Returns (kept lines, bytes left, cut happened).
    """
    kept: list[LogLine] = []
    for line in lines:
        size = len(line.render(timestamps=timestamps).encode())
        if size <= budget:
            kept.append(line)
            budget -= size
            continue
        prefix = f"{line.timestamp} " if timestamps else ""
        room = budget - len(prefix.encode())
        if room > 0:
            message = line.message.encode()[:room].decode(errors="ignore")
            kept.append(line._replace(message=message, partial=True))
        elif budget > 0 and prefix:
            # Even the timestamp does not fit: kubectl would print part of it; we drop it.
            pass
        return kept, 0, True
    return kept, budget, False

