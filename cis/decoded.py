"""Stored ContainerInstances decoded once per resourceVersion.

Decoding a stored object (spec, size, status, timestamps) costs more than anything the
list endpoint or a reconcile then does with it, and between two lists, or two reconciles
of one instance, little has changed. Owned by whoever reads the informer cache (the list
endpoint, the controller); nothing here is shared process-wide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cis.domain import errors
from cis.domain.model import Instance, instance_from_resource, instance_to_public_json


class DecodedInstances:
    """Cached objects as `Instance`s (and their REST views), decoded once per
    resourceVersion: decoding costs far more than listing or deciding, and between two
    lists or two reconciles of an instance little has changed."""

    def __init__(self) -> None:
        self._memo: dict[str, tuple[str, Instance, dict[str, Any] | None]] = {}

    def instance(self, raw: dict[str, Any]) -> Instance | None:
        """None for a malformed object (lists leave it out)."""
        entry = self._entry(raw)
        return entry[2] if entry is not None else None

    def of(self, raw: dict[str, Any]) -> tuple[Instance, dict[str, Any]] | None:
        entry = self._entry(raw)
        if entry is None:
            return None
        key, rv, inst, view = entry
        if view is None:
            view = instance_to_public_json(inst)
            self._memo[key] = (rv, inst, view)
        return inst, view

    def _entry(self, raw: dict[str, Any]) -> tuple[str, str, Instance, dict[str, Any] | None] | None:
        meta = raw.get("metadata") or {}
        key, rv = f"{meta.get('namespace')}/{meta.get('name')}", str(meta.get("resourceVersion", ""))
        hit = self._memo.get(key)
        if hit is not None and hit[0] == rv:
            return key, *hit
        try:
            inst = instance_from_resource(raw)
        except (ValueError, errors.InvalidInput):
            return None
        self._memo[key] = (rv, inst, None)
        return key, rv, inst, None

    def prune(self, live: Mapping[str, Any]) -> None:
        """Forget deleted instances, once they are a good share of the memo."""
        if len(self._memo) > 2 * len(live) + 1024:
            self._memo = {k: v for k, v in self._memo.items() if k in live}
