"""Typed readers for untrusted JSON, raising ``InvalidInput`` with the exact field path.

Every parser in the domain (instance specs, tenants, stored resources) reads ``raw_*``
values through these, so error messages and paths are uniform: ``containers[0].env[2].name``.
Booleans are never accepted where numbers are expected (``True`` is an ``int`` in Python,
never in our API).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from cis.domain.errors import InvalidInput


def join(path: str, key: str | int) -> str:
    """``join("containers", 0)`` -> ``containers[0]``; ``join("a", "b")`` -> ``a.b``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def read_object(raw: Any, path: str, allowed: Collection[str]) -> Mapping[str, Any]:
    """``raw`` as a JSON object whose keys are all in ``allowed``.

    An unknown key is reported at its own path (``containers[0].imagee: unknown field``),
    which catches typos that would otherwise be silently ignored.
    """
    if not isinstance(raw, dict):
        raise InvalidInput(path, "must be an object")
    for key in raw:
        if not isinstance(key, str) or key not in allowed:
            raise InvalidInput(join(path, str(key)), "unknown field")
    return raw


def read_str(raw: Any, path: str, *, max_length: int, min_length: int = 0) -> str:
    if not isinstance(raw, str):
        raise InvalidInput(path, "must be a string")
    if len(raw) < min_length:
        raise InvalidInput(
            path,
            "must not be empty" if min_length == 1 else f"must be at least {min_length} characters",
        )
    if len(raw) > max_length:
        raise InvalidInput(path, f"must be at most {max_length} characters")
    return raw


def read_int(raw: Any, path: str, *, minimum: int, maximum: int) -> int:
    """An integer in [minimum, maximum]; ``80.0`` and ``True`` are rejected."""
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidInput(path, "must be an integer")
    if not minimum <= raw <= maximum:
        raise InvalidInput(path, f"must be between {minimum} and {maximum}")
    return raw


def read_decimal(raw: Any, path: str, *, allow_millis: bool = False) -> Decimal:
    """A finite number given as JSON number or numeric string.

    With ``allow_millis`` a Kubernetes-style "500m" is accepted too (cpu fields).
    """
    if isinstance(raw, bool):
        raise InvalidInput(path, "must be a number")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        if not math.isfinite(raw):
            raise InvalidInput(path, "must be a finite number")
        return Decimal(repr(raw))
    if isinstance(raw, str):
        text = raw.strip()
        scale = 0
        if allow_millis and text.endswith("m"):
            text, scale = text[:-1], -3
        try:
            value = Decimal(text).scaleb(scale)
        except InvalidOperation:
            raise InvalidInput(path, "must be a number") from None
        if not value.is_finite() or not text or text[0] not in "0123456789.+-":
            raise InvalidInput(path, "must be a number")
        return value
    raise InvalidInput(path, "must be a number")


def read_list(raw: Any, path: str, *, max_items: int, min_items: int = 0) -> list[Any]:
    if not isinstance(raw, list):
        raise InvalidInput(path, "must be an array")
    if len(raw) < min_items:
        raise InvalidInput(path, f"must have at least {min_items} item(s)")
    if len(raw) > max_items:
        raise InvalidInput(path, f"must have at most {max_items} items")
    return raw


def read_str_list(raw: Any, path: str, *, max_items: int, max_length: int) -> tuple[str, ...]:
    items = read_list(raw, path, max_items=max_items)
    return tuple(read_str(v, join(path, i), max_length=max_length) for i, v in enumerate(items))


def decimal_to_json(value: Decimal) -> int | float:
    """A decimal as a JSON number: integral values stay ints (``2``, not ``2.0``)."""
    if value == value.to_integral_value():
        return int(value)
    return float(value)
