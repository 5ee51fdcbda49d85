"""Kubernetes resource quantities ("250m", "1.5Gi", "1e3") as exact decimals.

Only what the provider needs: parse a quantity, and write cores and GiB as the plain
decimal strings CIS accepts.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX = {
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)")
GIB = Decimal(2) ** 30


def parse_quantity(raw: object) -> Decimal:
    """A quantity as a Decimal in base units (cores, bytes). Raises ValueError."""
    if isinstance(raw, bool):
        raise ValueError(f"not a quantity: {raw!r}")
    if isinstance(raw, int | float):
        return Decimal(str(raw))
    if not isinstance(raw, str):
        raise ValueError(f"not a quantity: {raw!r}")
    match = _QUANTITY.fullmatch(raw.strip())
    if match is None:
        raise ValueError(f"not a quantity: {raw!r}")
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as exc:
        raise ValueError(f"not a quantity: {raw!r}") from exc
    if exponent:
        return value.scaleb(int(exponent[1:]))
    return value * _SUFFIX[suffix or ""]


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 0.250 -> "0.25", 2E+1 -> "20"."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def cores(raw: object) -> str:
    return plain(parse_quantity(raw))


def gib(raw: object) -> str:
    return plain(parse_quantity(raw) / GIB)
