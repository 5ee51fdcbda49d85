"""Stored ContainerInstances decoded once per resourceVersion.

Decoding a stored object (spec, size, status, timestamps) costs more than anything the
list endpoint or a reconcile then does with it, and between two lists, or two reconciles
of one instance, little has changed. Most new versions are status writes, which leave the
spec alone (same uid and generation), so only the rest is decoded again. The REST view is
kept already encoded as JSON, so a list page is a join of strings, not an encoding of
every item on every poll. Owned by whoever reads the informer cache (the list endpoint,
the controller); nothing here is shared process-wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cis.domain import errors
from cis.domain.model import Instance, instance_from_resource, instance_to_public_json


@dataclass(slots=True)
class _Entry:
    rv: str
    uid: str
    generation: object
    instance: Instance
    encoded: str | None = None  # the REST view as JSON text, made on first use


class DecodedInstances:
    def __init__(self) -> None:
        self._memo: dict[str, _Entry] = {}

    def instance(self, raw: dict[str, Any]) -> Instance | None:
        """None for a malformed object (lists leave it out)."""
        entry = self._entry(raw)
        return entry.instance if entry is not None else None

    def of(self, raw: dict[str, Any]) -> tuple[Instance, str] | None:
        """The instance and its REST view encoded as JSON."""
        entry = self._entry(raw)
        if entry is None:
            return None
        if entry.encoded is None:
            entry.encoded = orjson.dumps(instance_to_public_json(entry.instance)).decode()
        return entry.instance, entry.encoded

    def _entry(self, raw: dict[str, Any]) -> _Entry | None:
        meta = raw.get("metadata") or {}
        key, rv = f"{meta.get('namespace')}/{meta.get('name')}", str(meta.get("resourceVersion", ""))
        hit = self._memo.get(key)
        if hit is not None and hit.rv == rv:
            return hit
        uid, generation = str(meta.get("uid", "")), meta.get("generation")
        # Same object, same generation: only metadata or status changed, not the spec.
        known = hit.instance if hit and uid and hit.uid == uid and generation is not None \
            and hit.generation == generation else None
        try:
            inst = instance_from_resource(raw, same_spec_as=known)
        except (ValueError, errors.InvalidInput):
            return None
        entry = self._memo[key] = _Entry(rv, uid, generation, inst)
        return entry

    def prune(self, live: Mapping[str, Any]) -> None:
        """Forget deleted instances, once they are a good share of the memo."""
        if len(self._memo) > 2 * len(live) + 1024:
            self._memo = {k: v for k, v in self._memo.items() if k in live}
