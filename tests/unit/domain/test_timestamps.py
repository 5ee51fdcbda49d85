from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from cis.domain.timestamps import format_timestamp, parse_optional, parse_timestamp


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC), "2026-11-21T10:00:00.000Z"),
        (datetime(2026, 11, 21, 10, 0, 0, 123999, tzinfo=UTC), "2026-11-21T10:00:00.123Z"),
        (datetime(2026, 11, 21, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))), "2026-11-21T10:00:00.000Z"),
        (datetime(2026, 11, 21, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))), "2026-11-22T04:59:59.999Z"),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01T00:00:00.000Z"),
    ],
    ids=["whole-second", "truncates-not-rounds", "converts-to-utc", "crosses-midnight", "four-digit-year"],
)
def test_format(moment: datetime, text: str) -> None:
    assert format_timestamp(moment) == text
    assert parse_timestamp(text) <= moment


def test_naive_is_refused() -> None:
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 11, 21))
    with pytest.raises(ValueError):
        parse_timestamp("2026-11-21T10:00:00")


@pytest.mark.parametrize(
    "text",
    ["2026-11-21T10:00:00Z", "2026-11-21T10:00:00.5Z", "2026-11-21T11:00:00+01:00"],
    ids=["kubernetes", "fraction", "offset"],
)
def test_parse(text: str) -> None:
    assert parse_timestamp(text).replace(microsecond=0) == datetime(2026, 11, 21, 10, tzinfo=UTC)


@pytest.mark.parametrize("raw", [None, "", "yesterday", 5, "2026-11-21"], ids=repr)
def test_parse_optional_is_lenient(raw: object) -> None:
    assert parse_optional(raw) is None
