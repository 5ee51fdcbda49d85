"""Pages of ContainerInstances chosen from a cache of raw objects, the way an apiserver
pages a list: ordered by `namespace/name`, at most `limit` per page, and an opaque
`continue` token naming where the next page starts.

Serving lists from the process's informer cache keeps them cheap with tens of thousands of
instances (no apiserver round trip, no JSON decoding); the caller first waits until the
cache reflects its own writes. Cache tokens carry a prefix, so a token from elsewhere is a
clear `InvalidInput` on `continue`, never a wrong page.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cis.domain import errors
from cis.domain.selectors import LabelSelector

_TOKEN_PREFIX = "c1:"
JSON = dict[str, Any]


@dataclass(frozen=True)
class ListQuery:
    namespace: str | None = None  # a tenant's namespace; None lists every tenant (admin)
    selector: LabelSelector = field(default_factory=LabelSelector)
    phase: str | None = None
    region: str | None = None
    limit: int = 100
    after: str | None = None  # the last key of the previous page


def encode_continue(key: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_PREFIX + key).encode()).decode().rstrip("=")


def decode_continue(token: str) -> str:
    """The key a page starts after; `InvalidInput("continue")` for anything else."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    if not text.startswith(_TOKEN_PREFIX) or len(text) == len(_TOKEN_PREFIX):
        raise errors.InvalidInput("continue", "invalid continue token; start the list again without it")
    return text.removeprefix(_TOKEN_PREFIX)


def matches(query: ListQuery, raw: JSON) -> bool:
    status = raw.get("status") or {}
    if query.phase is not None and status.get("phase") != query.phase:
        return False
    if query.region is not None and status.get("region") != query.region:
        return False
    return query.selector.matches((raw.get("metadata") or {}).get("labels") or {})


def select_page(objects: Mapping[str, JSON], query: ListQuery) -> tuple[list[JSON], str | None]:
    """The page of `objects` (keyed `namespace/name`) that `query` asks for, and the token
    of the next page (None on the last one; never a token to an empty page)."""
    prefix = f"{query.namespace}/" if query.namespace is not None else ""
    keys = sorted(k for k in objects if k.startswith(prefix) and (query.after is None or k > query.after))
    page: list[JSON] = []
    last = ""
    for key in keys:
        raw = objects.get(key)
        if raw is None or not matches(query, raw):
            continue
        if len(page) == query.limit:
            return page, encode_continue(last)
        page.append(raw)
        last = key
    return page, None
