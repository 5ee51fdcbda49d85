"""Price table per region, versioned by effective date, and the one money rounding rule.

Prices are per vCPU-second and per GiB-second, as exact `Decimal`s, loaded from YAML or
JSON (`billing/prices.yaml` is the shipped default). A region has a list of versions; a
version applies from its `effective_from` until the next one, so metering asks for the
price *segments* covering an interval and a price change inside a window splits it.

Money rule (the only place rounding happens):
  * a line item (one interval at one size and one price version) costs
    `seconds * (cpu * vcpu_second + memory_gib * gib_second)`, computed exactly and then
    rounded ROUND_HALF_UP to 6 decimals (`round_line`);
  * usage records and report subtotals are exact sums of line items (still 6 decimals);
  * a total presented as money owed is rounded ROUND_HALF_UP to 2 decimals once, at the
    end (`round_total`), never by summing rounded subtotals.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from billing.errors import NoPrice, NotFound, PriceConfigError
from billing.events import Region, format_time

# Files shipped next to the code (read by path: works for wheels and editable installs).
_PACKAGE_DIR = Path(__file__).parent
LINE_QUANTUM = Decimal("0.000001")
TOTAL_QUANTUM = Decimal("0.01")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_VERSION_KEYS = frozenset({"effective_from", "vcpu_second", "gib_second"})


def round_line(amount: Decimal) -> Decimal:
    """Round one line item's exact amount: half-up to 6 decimals."""
    return amount.quantize(LINE_QUANTUM, rounding=ROUND_HALF_UP)


def round_total(amount: Decimal) -> Decimal:
    """Round a total owed: half-up to 2 decimals (0.005 → 0.01, 0.00499… → 0.00)."""
    return amount.quantize(TOTAL_QUANTUM, rounding=ROUND_HALF_UP)


def epoch_seconds(value: datetime) -> int:
    """Whole seconds since the epoch, rounded down (value must be timezone-aware)."""
    return (value - _EPOCH) // _SECOND


def from_epoch(seconds: int) -> datetime:
    # Exact for whole seconds, and about twice as fast as `_EPOCH + timedelta(...)`.
    return datetime.fromtimestamp(seconds, UTC)


# Products of a size and a per-second price are exact at this precision for any
# realistic values; the only rounding is `round_line`. A shared context object avoids
# entering `localcontext()` on the hot path.
_EXACT = Context(prec=60)


@functools.lru_cache(maxsize=4096)
def _rate(vcpu_second: Decimal, gib_second: Decimal, cpu: Decimal, memory_gib: Decimal) -> Decimal:
    return _EXACT.add(_EXACT.multiply(cpu, vcpu_second), _EXACT.multiply(memory_gib, gib_second))


@dataclass(frozen=True, slots=True)
class PriceVersion:
    region: Region
    effective_from: datetime
    vcpu_second: Decimal
    gib_second: Decimal

    def per_second(self, cpu: Decimal, memory_gib: Decimal) -> Decimal:
        """Exact price of one second of an instance of this size."""
        return _rate(self.vcpu_second, self.gib_second, cpu, memory_gib)

    def line_amount(self, seconds: int, cpu: Decimal, memory_gib: Decimal) -> Decimal:
        """Amount of one line item, rounded by the line rule."""
        return round_line(_EXACT.multiply(Decimal(seconds), self.per_second(cpu, memory_gib)))


@dataclass(frozen=True, slots=True)
class PriceSegment:
    """`[start, end)` in epoch seconds during which `version` applies."""

    start: int
    end: int
    version: PriceVersion


@dataclass(frozen=True, slots=True)
class Quote:
    region: Region
    cpu: Decimal
    memory_gib: Decimal
    seconds: int
    at: datetime
    currency: str
    per_second: Decimal
    amount: Decimal

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "cpu": str(self.cpu),
            "memoryGiB": str(self.memory_gib),
            "seconds": self.seconds,
            "at": format_time(self.at),
            "currency": self.currency,
            "perSecond": str(self.per_second),
            "perHour": str(round_line(self.per_second * 3600)),
            "amount": str(self.amount),
        }


class PriceTable:
    """Immutable price versions per region. The constructor validates; nothing does I/O."""

    def __init__(self, versions: Mapping[Region, Sequence[PriceVersion]], *, currency: str) -> None:
        if not versions:
            raise PriceConfigError("at least one region is required", field="regions")
        table: dict[Region, tuple[PriceVersion, ...]] = {}
        for region, region_versions in versions.items():
            ordered = tuple(sorted(region_versions, key=lambda v: v.effective_from))
            if not ordered:
                raise PriceConfigError("needs at least one price version", field=f"regions.{region}")
            for earlier, later in itertools.pairwise(ordered):
                if earlier.effective_from == later.effective_from:
                    raise PriceConfigError(
                        f"two versions take effect at {format_time(later.effective_from)}",
                        field=f"regions.{region}",
                    )
            table[region] = ordered
        self.currency = currency
        self._versions = table
        self._starts = {region: [epoch_seconds(v.effective_from) for v in vs] for region, vs in table.items()}

    def regions(self) -> tuple[Region, ...]:
        return tuple(sorted(self._versions))

    def versions(self, region: Region) -> tuple[PriceVersion, ...]:
        try:
            return self._versions[region]
        except KeyError:
            raise NotFound(f"no prices for region {region!r}") from None

    def price_at(self, region: Region, at: datetime) -> PriceVersion:
        current: PriceVersion | None = None
        for version in self.versions(region):
            if version.effective_from > at:
                break
            current = version
        if current is None:
            raise NoPrice(f"no price for region {region!r} at {format_time(at)}", field="at")
        return current

    def segments(self, region: Region, start: int, end: int) -> list[PriceSegment]:
        """Split `[start, end)` (epoch seconds) at every price change inside it."""
        try:
            versions, starts = self._versions[region], self._starts[region]
        except KeyError:
            raise NoPrice(f"no prices for region {region!r}", field="region") from None
        index = bisect.bisect_right(starts, start) - 1  # the version in force at `start`
        if index < 0 and start < end:
            raise NoPrice(f"no price for region {region!r} at {format_time(from_epoch(start))}", field="region")
        result: list[PriceSegment] = []
        cursor = start
        while cursor < end:
            until = end if index + 1 == len(versions) else min(end, starts[index + 1])
            result.append(PriceSegment(cursor, until, versions[index]))
            cursor, index = until, index + 1
        return result

    def quote(self, region: Region, cpu: Decimal, memory_gib: Decimal, seconds: int, at: datetime) -> Quote:
        """Price of `seconds` at one size, at the version in force at `at` (POST /v1/price).

        The size must already be rounded up to the size table, as CIS bills the rounded size.
        """
        if seconds < 0:
            raise PriceConfigError("must not be negative", field="seconds")
        version = self.price_at(region, at)
        return Quote(
            region=region,
            cpu=cpu,
            memory_gib=memory_gib,
            seconds=seconds,
            at=at,
            currency=self.currency,
            per_second=version.per_second(cpu, memory_gib),
            amount=version.line_amount(seconds, cpu, memory_gib),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "regions": {
                region: [
                    {
                        "effective_from": format_time(v.effective_from),
                        "vcpu_second": str(v.vcpu_second),
                        "gib_second": str(v.gib_second),
                    }
                    for v in versions
                ]
                for region, versions in sorted(self._versions.items())
            },
        }


# --- loading -------------------------------------------------------------------------------


def _price(raw: object, field: str) -> Decimal:
    if isinstance(raw, float):
        raise PriceConfigError(f'write the price as a quoted string ("{raw}") so it stays exact', field=field)
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise PriceConfigError(f"expected a decimal string, got {raw!r:.40}", field=field)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PriceConfigError(f"not a decimal number: {raw!r:.40}", field=field) from None
    if not value.is_finite() or value < 0:
        raise PriceConfigError(f"must be a non-negative number, got {raw!r:.40}", field=field)
    return value


def _effective_from(raw: object, field: str) -> datetime:
    if isinstance(raw, datetime):  # YAML resolves unquoted timestamps itself
        value = raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day, tzinfo=UTC)
    elif isinstance(raw, str):
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise PriceConfigError(f"not an RFC 3339 time: {raw!r:.40}", field=field) from None
        if value.tzinfo is None:
            raise PriceConfigError("needs a timezone, e.g. 'Z'", field=field)
    else:
        raise PriceConfigError(f"expected a timestamp, got {raw!r:.40}", field=field)
    value = value.astimezone(UTC)
    if value.microsecond:
        # Segments are whole seconds; a fractional boundary would bill one second twice.
        raise PriceConfigError("must be a whole second", field=field)
    return value


def parse_prices(raw: object) -> PriceTable:
    """Validate a decoded price document and build the table; errors name the field."""
    if not isinstance(raw, dict):
        raise PriceConfigError("the price file must be a mapping with 'currency' and 'regions'")
    unknown = set(raw) - {"currency", "regions"}
    if unknown:
        raise PriceConfigError(f"unknown keys {sorted(unknown)}", field="<root>")
    currency = raw.get("currency")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isupper():
        raise PriceConfigError(f"expected an ISO 4217 code like 'USD', got {currency!r:.20}", field="currency")
    regions = raw.get("regions")
    if not isinstance(regions, dict) or not regions:
        raise PriceConfigError("expected a non-empty mapping of region to versions", field="regions")
    table: dict[Region, list[PriceVersion]] = {}
    for name, raw_versions in regions.items():
        where = f"regions.{name}"
        if not isinstance(name, str) or not name:
            raise PriceConfigError("region names must be non-empty strings", field=where)
        if not isinstance(raw_versions, list) or not raw_versions:
            raise PriceConfigError("expected a non-empty list of price versions", field=where)
        versions: list[PriceVersion] = []
        for index, entry in enumerate(raw_versions):
            at = f"{where}[{index}]"
            if not isinstance(entry, dict):
                raise PriceConfigError("expected a mapping", field=at)
            if set(entry) != _VERSION_KEYS:
                problems = [
                    f"{what} {', '.join(sorted(keys))}"
                    for what, keys in (
                        ("missing", _VERSION_KEYS - set(entry)),
                        ("unknown key", set(entry) - _VERSION_KEYS),
                    )
                    if keys
                ]
                raise PriceConfigError("; ".join(problems), field=at)
            versions.append(
                PriceVersion(
                    region=Region(name),
                    effective_from=_effective_from(entry["effective_from"], f"{at}.effective_from"),
                    vcpu_second=_price(entry["vcpu_second"], f"{at}.vcpu_second"),
                    gib_second=_price(entry["gib_second"], f"{at}.gib_second"),
                )
            )
        table[Region(name)] = versions
    return PriceTable(table, currency=currency)


def load_prices(path: str | Path) -> PriceTable:
    """Load a price file (`.json` as JSON, anything else as YAML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PriceConfigError(f"cannot read price file {path}: {exc.strerror}") from exc
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PriceConfigError(f"{path} is not valid {path.suffix or 'YAML'}: {exc}") from exc
    try:
        return parse_prices(raw)
    except PriceConfigError as exc:
        raise PriceConfigError(f"{path}: {exc.message}", field=exc.field) from None


def default_prices() -> PriceTable:
    """The price table shipped with the package (`billing/prices.yaml`)."""
    text = _PACKAGE_DIR.joinpath("prices.yaml").read_text(encoding="utf-8")
    return parse_prices(yaml.safe_load(text))
