"""Price table loading, validation, versioning and the money rounding rule."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.errors import NoPrice, NotFound, PriceConfigError
from billing.events import Region
from billing.prices import (
    default_prices,
    epoch_seconds,
    load_prices,
    parse_prices,
    round_line,
    round_total,
)
from billing.testing import TEST_PRICES, prices, t

EFF = "regions.r1[0].effective_from"


def _with(path: str, value: Any) -> dict[str, Any]:
    """TEST_PRICES with one field replaced; `path` like `regions.r1.0.vcpu_second`."""
    doc = copy.deepcopy(TEST_PRICES)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("doc", "field", "message"),
    [
        (_with("regions.r1.0.vcpu_second", 0.00001), "regions.r1[0].vcpu_second", "quoted string"),
        (_with("regions.r1.0.vcpu_second", "-1"), "regions.r1[0].vcpu_second", "non-negative"),
        (_with("regions.r1.0.gib_second", "abc"), "regions.r1[0].gib_second", "not a decimal"),
        (_with("regions.r1.0.gib_second", KeyError), "regions.r1[0]", "missing gib_second$"),
        (_with("regions.r1.0.extra", "1"), "regions.r1[0]", "unknown key extra$"),
        (_with("regions.r1.0.effective_from", "2026-13-01"), EFF, "RFC 3339"),
        (_with("regions.r1.0.effective_from", "2026-01-01T00:00:00"), EFF, "timezone"),
        (_with("regions.r1.0.effective_from", "2026-01-01T00:00:00.5Z"), EFF, "whole second"),
        (_with("regions.r1", []), "regions.r1", "non-empty list"),
        (_with("regions", {}), "regions", "non-empty mapping"),
        (_with("currency", "usd"), "currency", "ISO 4217"),
        (_with("colour", "blue"), "<root>", "unknown keys"),
        (
            _with("regions.r2.1.effective_from", "2026-01-01T00:00:00Z"),
            "regions.r2",
            "two versions take effect",
        ),
    ],
    ids=[
        "float-price", "negative", "not-decimal", "missing-key", "unknown-key", "bad-date",
        "naive-date", "fractional-second", "no-versions", "no-regions", "bad-currency",
        "unknown-top-key", "duplicate-effective-date",
    ],
)  # fmt: skip
def test_invalid_price_config_names_the_field(doc: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(PriceConfigError, match=message) as err:
        parse_prices(doc)
    assert err.value.field == field


def test_default_prices_load_with_both_regions() -> None:
    table = default_prices()
    assert table.regions() == ("region-a", "region-b")
    assert table.currency == "USD"
    # region-b changes its price on 2026-07-01
    assert table.price_at(Region("region-b"), t("06-30 23:59:59")).vcpu_second == Decimal("0.0000125")
    assert table.price_at(Region("region-b"), t("07-01 00:00:00")).vcpu_second == Decimal("0.0000118")


def test_load_prices_from_json_and_yaml_files(tmp_path: Path) -> None:
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps(TEST_PRICES))
    as_yaml = tmp_path / "prices.yaml"
    as_yaml.write_text(
        "currency: EUR\nregions:\n  x:\n    - effective_from: 2026-01-01T00:00:00Z\n"
        "      vcpu_second: '0.1'\n      gib_second: 0\n"
    )
    assert load_prices(as_json).regions() == ("r1", "r2")
    loaded = load_prices(as_yaml)
    assert (loaded.currency, loaded.versions(Region("x"))[0].gib_second) == ("EUR", Decimal(0))


def test_load_prices_reports_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("currency: USD\nregions: [\n")
    with pytest.raises(PriceConfigError, match=r"broken\.yaml"):
        load_prices(broken)
    with pytest.raises(PriceConfigError, match="cannot read"):
        load_prices(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("region", "start", "end", "pieces"),
    [
        (
            "r1",
            "11-21 11:00:00",
            "11-21 13:00:00",
            [("11-21 11:00:00", "11-21 13:00:00", "0.00001")],
        ),
        (
            "r2",
            "11-21 11:00:00",
            "11-21 13:00:00",
            [
                ("11-21 11:00:00", "11-21 12:00:00", "0.00001"),
                ("11-21 12:00:00", "11-21 13:00:00", "0.00002"),
            ],
        ),
        (
            "r2",
            "11-21 12:00:00",
            "11-21 13:00:00",
            [("11-21 12:00:00", "11-21 13:00:00", "0.00002")],
        ),
        (
            "r2",
            "11-21 11:00:00",
            "11-21 12:00:00",
            [("11-21 11:00:00", "11-21 12:00:00", "0.00001")],
        ),
        ("r1", "11-21 11:00:00", "11-21 11:00:00", []),
    ],
    ids=["one-version", "change-inside", "starts-at-change", "ends-at-change", "empty"],
)
def test_segments_split_at_price_changes(region: str, start: str, end: str, pieces: list[tuple[str, str, str]]) -> None:
    segments = prices().segments(Region(region), epoch_seconds(t(start)), epoch_seconds(t(end)))
    assert [(s.start, s.end, s.version.vcpu_second) for s in segments] == [
        (epoch_seconds(t(a)), epoch_seconds(t(b)), Decimal(p)) for a, b, p in pieces
    ]


def test_no_price_before_the_first_version_or_for_unknown_regions() -> None:
    table = prices()
    with pytest.raises(NoPrice):
        table.segments(
            Region("r1"),
            epoch_seconds(t("01-01 00:00:00")) - 10,
            epoch_seconds(t("01-01 00:00:10")),
        )
    with pytest.raises(NoPrice):
        table.segments(Region("nowhere"), 0, 10)
    with pytest.raises(NotFound):
        table.price_at(Region("nowhere"), t("11-21 00:00:00"))


@pytest.mark.parametrize(
    ("exact", "line", "total"),
    [
        ("0.0000005", "0.000001", "0.00"),
        ("0.00000049", "0.000000", "0.00"),
        ("0.005", "0.005000", "0.01"),
        ("0.00499999", "0.005000", "0.00"),
        ("12.344999", "12.344999", "12.34"),
        ("12.345", "12.345000", "12.35"),
    ],
    ids=["half-up-6", "below-half-6", "half-cent", "below-half-cent", "down", "up"],
)
def test_rounding_rule(exact: str, line: str, total: str) -> None:
    assert str(round_line(Decimal(exact))) == line
    assert str(round_total(Decimal(exact))) == total


def test_quote_uses_the_version_in_force() -> None:
    table = prices()
    before = table.quote(Region("r2"), Decimal("0.5"), Decimal(1), 3600, t("11-21 11:59:59"))
    after = table.quote(Region("r2"), Decimal("0.5"), Decimal(1), 3600, t("11-21 12:00:00"))
    assert (before.per_second, before.amount) == (Decimal("0.0000060"), Decimal("0.021600"))
    assert (after.per_second, after.amount) == (Decimal("0.0000120"), Decimal("0.043200"))
    assert after.to_json()["perHour"] == "0.043200"
