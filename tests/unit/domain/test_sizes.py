from __future__ import annotations

from decimal import Decimal

import pytest

from cis.domain.errors import InvalidInput
from cis.domain.sizes import (
    SIZE_TABLE,
    Size,
    format_cpu,
    format_memory,
    parse_cpu,
    parse_memory,
    round_up,
    size_table_json,
)


def test_table_rows_match_the_published_table() -> None:
    rows = {r["cpu"]: r["memoryGiB"] for r in size_table_json()}
    assert rows["0.25"] == ["0.5", "1", "2"]
    assert rows["0.5"] == ["1", "2", "3", "4"]
    assert rows["1"] == [str(m) for m in range(2, 9)]
    assert rows["2"] == [str(m) for m in range(4, 17)]
    assert rows["4"] == [str(m) for m in range(8, 31)]
    assert rows["8"] == [str(m) for m in range(16, 61, 4)]
    assert rows["16"] == [str(m) for m in range(32, 121, 8)]
    assert list(SIZE_TABLE) == sorted(SIZE_TABLE)


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        ("0.25", "0.5", ("0.25", "0.5")),
        ("0.1", "0.1", ("0.25", "0.5")),
        ("0.25", "0.6", ("0.25", "1")),
        ("0.25", "2", ("0.25", "2")),
        ("0.25", "2.5", ("0.5", "3")),
        ("0.26", "0.5", ("0.5", "1")),
        ("0.5", "4", ("0.5", "4")),
        ("0.5", "4.1", ("1", "5")),
        ("1", "0.5", ("1", "2")),
        ("1", "8", ("1", "8")),
        ("1", "9", ("2", "9")),
        ("2", "16", ("2", "16")),
        ("3", "1", ("4", "8")),
        ("4", "30", ("4", "30")),
        ("4", "31", ("8", "32")),
        ("7", "13", ("8", "16")),
        ("8", "17", ("8", "20")),
        ("8", "61", ("16", "64")),
        ("9", "1", ("16", "32")),
        ("16", "120", ("16", "120")),
        ("0.25", "119", ("16", "120")),
        ("0.001", "0.0001", ("0.25", "0.5")),
    ],
    ids=lambda v: "x".join(v) if isinstance(v, tuple) else v,
)
def test_round_up(cpu: str, memory: str, expected: tuple[str, str]) -> None:
    size = round_up(cpu, memory)
    assert (size.cpu_text, size.memory_gib_text) == expected
    assert size in SIZE_TABLE


def test_round_up_is_the_smallest_covering_entry() -> None:
    for cpu in ("0.1", "0.3", "0.75", "1.5", "3", "6", "12"):
        for memory in ("0.25", "1.5", "5", "17", "33", "70"):
            size = round_up(cpu, memory)
            covering = [s for s in SIZE_TABLE if s.cpu >= Decimal(cpu) and s.memory_gib >= Decimal(memory)]
            assert size == min(covering)


@pytest.mark.parametrize(
    ("cpu", "memory", "field"),
    [
        ("0", "1", "c"),
        ("-1", "1", "c"),
        ("1", "0", "m"),
        ("16.001", "1", "c"),
        ("1", "120.001", "m"),
        ("nan", "1", "c"),
        ("1", "Infinity", "m"),
    ],
    ids=["zero-cpu", "negative-cpu", "zero-memory", "cpu-too-big", "memory-too-big", "nan", "inf"],
)
def test_round_up_errors_name_the_field(cpu: str, memory: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        round_up(cpu, memory, cpu_field="c", memory_field="m")
    assert err.value.field == field


def test_size_json_round_trip_and_quantities() -> None:
    size = Size(cpu_millis=250, memory_mib=512)
    assert size.to_json() == {"cpu": "0.25", "memoryGiB": "0.5"}
    assert Size.from_json(size.to_json()) == size
    assert (size.cpu_quantity, size.memory_quantity) == ("250m", "512Mi")
    assert str(Size(16000, 122880)) == "16 vCPU / 120 GiB"


@pytest.mark.parametrize(
    ("text", "millis"),
    [("500m", 500), ("0.5", 500), ("1", 1000), ("0.0001", 1), ("2500m", 2500)],
    ids=lambda v: str(v),
)
def test_parse_cpu_rounds_up_to_millicores(text: str, millis: int) -> None:
    assert parse_cpu(text) == millis


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [(2**30, "1Gi"), (512 * 2**20, "512Mi"), (1536 * 2**10, "1536Ki"), (1000, "1000"), (0, "0")],
    ids=lambda v: str(v),
)
def test_format_memory_round_trips(num_bytes: int, text: str) -> None:
    assert format_memory(num_bytes) == text
    assert parse_memory(text) == num_bytes


@pytest.mark.parametrize(("millis", "text"), [(250, "250m"), (1000, "1"), (1500, "1500m"), (16000, "16")])
def test_format_cpu_round_trips(millis: int, text: str) -> None:
    assert format_cpu(millis) == text
    assert parse_cpu(text) == millis
