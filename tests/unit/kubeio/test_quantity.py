"""Kubernetes quantities: every form `resource.Quantity` writes, parsed exactly; what is not
a quantity is refused; and the plain decimal strings CIS is sent."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubeio.quantity import cores, format_decimal, gib, parse_quantity


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("250m", Decimal("0.25")),
        ("0.5", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("2", Decimal(2)),
        (" 2 ", Decimal(2)),
        (2, Decimal(2)),
        (0.25, Decimal("0.25")),
        ("1Ki", Decimal(1024)),
        ("2Gi", Decimal(2 * 2**30)),
        ("1.5Gi", Decimal(1610612736)),
        ("32827688Ki", Decimal(32827688 * 1024)),
        ("1k", Decimal(1000)),
        ("100M", Decimal(100_000_000)),
        ("10k", Decimal(10_000)),
        ("1e3", Decimal(1000)),
        ("1E-3", Decimal("0.001")),
        ("250u", Decimal("0.00025")),
        ("100n", Decimal("1e-7")),
        (".5", Decimal("0.5")),
        ("+1", Decimal(1)),
        ("-1", Decimal(-1)),
    ],
    ids=lambda v: repr(v),
)
def test_parse_quantity(quantity: object, expected: Decimal) -> None:
    assert parse_quantity(quantity) == expected


@pytest.mark.parametrize(
    "quantity",
    ["", "abc", "1Gb", "1Zi", "1 Gi", "Gi", "--1", "1e", True, None, float("inf"), float("nan"), ["1"]],
    ids=repr,
)
def test_parse_quantity_rejects(quantity: object) -> None:
    with pytest.raises(ValueError):
        parse_quantity(quantity)


@pytest.mark.parametrize(
    ("value", "text"),
    [(Decimal("0.50"), "0.5"), (Decimal("2E+1"), "20"), (Decimal("0.09765625"), "0.09765625"),
     (Decimal(0), "0"), (Decimal("1.000"), "1")],
    ids=str,
)
def test_format_decimal_is_plain(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text


def test_cores_and_gib_are_plain_decimals() -> None:
    assert (cores("1500m"), cores("2"), gib("512Mi"), gib("1Gi"), gib("100Mi")) == (
        "1.5", "2", "0.5", "1", "0.09765625")
