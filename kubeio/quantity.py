"""Kubernetes resource quantities ("250m", "1.5Gi", "1e3", 2) as exact decimals, and the
plain decimal strings CIS writes ("0.25", "1.5").

One parser for everything that reads a quantity from Kubernetes: the virtual kubelet
(pod requests, downward-API divisors), CIS's capacity view of backing nodes and its
domain sizes. Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exponent>[+-]?[0-9]+))?"
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
GIB = Decimal(2**30)


def parse_quantity(quantity: object) -> Decimal:
    """A quantity as an exact decimal in base units (cores, bytes).

    Accepts the string forms of `resource.Quantity` and JSON numbers; raises
    `ValueError` for anything else (booleans, None, "1Gb", "1 Gi").
    """
    if isinstance(quantity, bool):
        raise ValueError("a boolean is not a quantity")
    if isinstance(quantity, int):
        return Decimal(quantity)
    if isinstance(quantity, float):
        if not math.isfinite(quantity):
            raise ValueError("quantity must be finite")
        return Decimal(repr(quantity))
    if not isinstance(quantity, str):
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    match = _QUANTITY.fullmatch(quantity.strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    try:
        number = Decimal(match.group("number"))
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity") from exc
    suffix, exponent = match.group("suffix"), match.group("exponent")
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix is not None:
        return number.scaleb(_DECIMAL_EXP[suffix])
    if exponent is not None:
        return number.scaleb(int(exponent))
    return number


def format_decimal(value: Decimal) -> str:
    """A plain decimal string without exponent or trailing zeros: 0.50 -> "0.5", 2E+1 -> "20"."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def cores(quantity: object) -> str:
    """A cpu quantity as plain vCPU: "1500m" -> "1.5"."""
    return format_decimal(parse_quantity(quantity))


def gib(quantity: object) -> str:
    """A memory quantity as plain GiB: "512Mi" -> "0.5"."""
    return format_decimal(parse_quantity(quantity) / GIB)
