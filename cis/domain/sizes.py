"""The published size table, rounding up to it, and Kubernetes quantities.

An instance's size is the sum of its containers' requests rounded **up** to the smallest
table entry that covers both cpu and memory; the rounded size is what placement reserves,
what the pod requests (as limits too) and what is billed (DESIGN §3).

The table is Fargate's (see reference/serverless-anchors.md §2), tiny sizes included:

    vCPU   memory GiB
    0.25   0.5, 1, 2
    0.5    1 .. 4    (1 GiB steps)
    1      2 .. 8    (1 GiB steps)
    2      4 .. 16   (1 GiB steps)
    4      8 .. 30   (1 GiB steps)
    8      16 .. 60  (4 GiB steps)
    16     32 .. 120 (8 GiB steps)

"Smallest" means the least vCPU, then the least memory: since every row's memory range
starts and ends higher than the previous row's, this is also the cheapest entry for any
price that grows with both dimensions.

Internally sizes are integers (millicores, MiB) so comparisons and sums are exact; the
public form is decimal strings (``{"cpu": "0.25", "memoryGiB": "0.5"}``), as in lifecycle
events. The quantity helpers turn what Kubernetes returns ("500m", "1", "32827688Ki",
"1e3"; parsed by `kubeio.quantity`) into these units and format what we send ("250m",
"512Mi").
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

from cis.domain.errors import InvalidInput
from kubeio.quantity import format_decimal, parse_quantity

MIB = 1024 * 1024
GIB_IN_MIB = 1024


def cpu_to_millis(cpu: Decimal) -> int:
    """vCPU -> millicores, rounded up (Kubernetes' own cpu granularity is 1m)."""
    return int((cpu * 1000).to_integral_value(rounding=ROUND_CEILING))


def gib_to_mib(gib: Decimal) -> int:
    """GiB -> MiB, rounded up."""
    return int((gib * GIB_IN_MIB).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True, order=True)
class Size:
    """An instance size in exact integer units. Order: cpu, then memory."""

    cpu_millis: int
    memory_mib: int

    @property
    def cpu(self) -> Decimal:
        """vCPU as a decimal (250 millicores -> 0.25)."""
        return Decimal(self.cpu_millis) / 1000

    @property
    def memory_gib(self) -> Decimal:
        return Decimal(self.memory_mib) / GIB_IN_MIB

    @property
    def memory_bytes(self) -> int:
        return self.memory_mib * MIB

    @property
    def cpu_text(self) -> str:
        """ "0.25", "1", "16": the form used in JSON and lifecycle events."""
        return format_decimal(self.cpu)

    @property
    def memory_gib_text(self) -> str:
        return format_decimal(self.memory_gib)

    @property
    def cpu_quantity(self) -> str:
        """The Kubernetes quantity ("250m", "2")."""
        return format_cpu(self.cpu_millis)

    @property
    def memory_quantity(self) -> str:
        """The Kubernetes quantity ("512Mi", "2Gi")."""
        return format_memory(self.memory_bytes)

    def to_json(self) -> dict[str, str]:
        return {"cpu": self.cpu_text, "memoryGiB": self.memory_gib_text}

    @classmethod
    def from_json(cls, raw: Any) -> Size:
        """Inverse of ``to_json``; raises ``ValueError`` on anything else."""
        if not isinstance(raw, dict) or "cpu" not in raw or "memoryGiB" not in raw:
            raise ValueError("size must be an object with cpu and memoryGiB")
        try:
            cpu, memory = Decimal(str(raw["cpu"])), Decimal(str(raw["memoryGiB"]))
        except InvalidOperation as exc:
            raise ValueError(f"not a size: {raw!r}") from exc
        if not (cpu.is_finite() and memory.is_finite()):
            raise ValueError(f"not a size: {raw!r}")
        return cls(cpu_to_millis(cpu), gib_to_mib(memory))

    def __str__(self) -> str:
        return f"{self.cpu_text} vCPU / {self.memory_gib_text} GiB"


def _row(cpu: str, memories_gib: list[Decimal]) -> list[Size]:
    return [Size(cpu_to_millis(Decimal(cpu)), gib_to_mib(m)) for m in memories_gib]


def _steps(first: int, last: int, step: int) -> list[Decimal]:
    return [Decimal(m) for m in range(first, last + 1, step)]


SIZE_TABLE: tuple[Size, ...] = tuple(
    sorted(
        _row("0.25", [Decimal("0.5"), Decimal(1), Decimal(2)])
        + _row("0.5", _steps(1, 4, 1))
        + _row("1", _steps(2, 8, 1))
        + _row("2", _steps(4, 16, 1))
        + _row("4", _steps(8, 30, 1))
        + _row("8", _steps(16, 60, 4))
        + _row("16", _steps(32, 120, 8))
    )
)
"""Every supported size, sorted smallest first."""

SMALLEST_SIZE = SIZE_TABLE[0]
LARGEST_CPU_MILLIS = max(s.cpu_millis for s in SIZE_TABLE)
LARGEST_MEMORY_MIB = max(s.memory_mib for s in SIZE_TABLE)


def size_table_json() -> list[dict[str, Any]]:
    """The table grouped by vCPU for ``GET /v1/sizes``:
    ``[{"cpu": "0.25", "memoryGiB": ["0.5", "1", "2"]}, ...]``."""
    rows: dict[int, list[str]] = {}
    for size in SIZE_TABLE:
        rows.setdefault(size.cpu_millis, []).append(size.memory_gib_text)
    return [{"cpu": format_cpu_decimal(c), "memoryGiB": m} for c, m in rows.items()]


def format_cpu_decimal(millis: int) -> str:
    return format_decimal(Decimal(millis) / 1000)


_TABLE_SET = frozenset(SIZE_TABLE)


def is_table_size(size: Size) -> bool:
    return size in _TABLE_SET


def round_up_units(
    cpu_millis: int,
    memory_mib: int,
    *,
    cpu_field: str = "resources.cpu",
    memory_field: str = "resources.memoryGiB",
) -> Size:
    """The smallest table size covering ``cpu_millis`` and ``memory_mib``.

    Raises ``InvalidInput`` naming ``cpu_field`` or ``memory_field`` when a request is not
    positive or exceeds the largest size (16 vCPU / 120 GiB).
    """
    if cpu_millis <= 0:
        raise InvalidInput(cpu_field, "must be greater than 0")
    if memory_mib <= 0:
        raise InvalidInput(memory_field, "must be greater than 0")
    if cpu_millis > LARGEST_CPU_MILLIS:
        raise InvalidInput(
            cpu_field,
            f"{format_cpu_decimal(cpu_millis)} vCPU exceeds the largest size "
            f"({format_cpu_decimal(LARGEST_CPU_MILLIS)} vCPU)",
        )
    if memory_mib > LARGEST_MEMORY_MIB:
        raise InvalidInput(
            memory_field,
            f"{format_decimal(Decimal(memory_mib) / GIB_IN_MIB)} GiB exceeds the largest size "
            f"({LARGEST_MEMORY_MIB // GIB_IN_MIB} GiB)",
        )
    for size in SIZE_TABLE:
        if size.cpu_millis >= cpu_millis and size.memory_mib >= memory_mib:
            return size
    raise AssertionError("unreachable: the largest size covers every in-range request")


def round_up(
    cpu: Decimal | int | str,
    memory_gib: Decimal | int | str,
    *,
    cpu_field: str = "resources.cpu",
    memory_field: str = "resources.memoryGiB",
) -> Size:
    """The smallest table size >= (``cpu`` vCPU, ``memory_gib`` GiB) in both dimensions.

    >>> round_up("0.3", "0.5")
    Size(cpu_millis=500, memory_mib=1024)
    """
    try:
        cpu_d, mem_d = Decimal(str(cpu)), Decimal(str(memory_gib))
    except InvalidOperation as exc:
        raise InvalidInput(cpu_field, "must be a number") from exc
    if not cpu_d.is_finite():
        raise InvalidInput(cpu_field, "must be a finite number")
    if not mem_d.is_finite():
        raise InvalidInput(memory_field, "must be a finite number")
    return round_up_units(cpu_to_millis(cpu_d), gib_to_mib(mem_d), cpu_field=cpu_field, memory_field=memory_field)


# --- Kubernetes quantities ------------------------------------------------------------------


# Memoised: every pod watch event re-reads its requests, and a cluster's pods share a
# handful of distinct quantities. Both functions are pure.
@functools.lru_cache(maxsize=1024)
def parse_cpu(quantity: str | int | float) -> int:
    """A cpu quantity ("500m", "0.5", 2) in millicores, rounded up."""
    return cpu_to_millis(parse_quantity(quantity))


@functools.lru_cache(maxsize=1024)
def parse_memory(quantity: str | int | float) -> int:
    """A memory quantity ("1Gi", "512Mi", "1e9") in bytes, rounded up."""
    return int(parse_quantity(quantity).to_integral_value(rounding=ROUND_CEILING))


def format_cpu(millis: int) -> str:
    """Millicores as a canonical quantity: 250 -> "250m", 2000 -> "2"."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"


def format_memory(num_bytes: int) -> str:
    """Bytes as the largest exact binary quantity: "1Gi", "512Mi", "1536Ki", "1000"."""
    for suffix, factor in (
        ("Ei", 2**60),
        ("Pi", 2**50),
        ("Ti", 2**40),
        ("Gi", 2**30),
        ("Mi", 2**20),
        ("Ki", 2**10),
    ):
        if num_bytes != 0 and num_bytes % factor == 0:
            return f"{num_bytes // factor}{suffix}"
    return str(num_bytes)


def bytes_to_mib_floor(num_bytes: int) -> int:
    """For capacity (allocatable): never overstate what is there."""
    return num_bytes // MIB


def bytes_to_mib_ceil(num_bytes: int) -> int:
    """For usage (requests): never understate what is taken."""
    return -(-num_bytes // MIB)
