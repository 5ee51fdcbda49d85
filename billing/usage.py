"""Usage records: one instance's billed seconds and amount for one UTC day.

Metering produces them, the store writes them to `cis-usage` under
`_id = <instance uid>-<YYYY-MM-DD>` (so a re-run of a period replaces instead of adding)
and reads them back for reports. This module holds the value types and their exact
document form; it is pure.

Why strings for quantities: amounts and vCPU/GiB-seconds are exact decimals. The document
keeps them as strings (the truth) plus `amount_micros`, an exact integer copy Elasticsearch
can sum, so no float ever touches money.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any

from billing.errors import InvalidInput
from billing.events import InstanceId, InstanceUid, Region, TenantId, format_time, parse_time
from billing.prices import LINE_QUANTUM

_MICROS = Decimal(1_000_000)


# Compact, ASCII-only JSON: the exact text a usage document is sent to Elasticsearch as
# (`UsageRecord.encode` writes the same text directly). Key order is the order `to_doc`
# builds, so the text, and the digest over it, are deterministic.
_ENCODER = json.JSONEncoder(ensure_ascii=True, check_circular=False, separators=(",", ":"))
_json_string = encode_basestring_ascii  # a str as a quoted JSON string, as _ENCODER writes it


# Price versions and day ends repeat across a run's 100k+ records; the other times do not.
_format_repeated = functools.lru_cache(maxsize=256)(format_time)


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("ascii"), digest_size=16).hexdigest()


def content_digest(doc: Mapping[str, Any]) -> str:
    """Hash of a usage document's content (without its digest): equal digests, equal records.

    Lets a rerun skip rewriting the records that did not change, which is most of them.
    It hashes the document's compact JSON text: the text `UsageRecord.encode` writes.
    """
    return _digest(_ENCODER.encode({k: v for k, v in doc.items() if k != "digest"}))


def record_id(uid: InstanceUid, day: date) -> str:
    return f"{uid}-{day.isoformat()}"


def split_record_id(value: str) -> tuple[InstanceUid, date]:
    """Inverse of `record_id` (the day is always the last 10 characters)."""
    if len(value) < 12 or value[-11] != "-":
        raise InvalidInput(f"not a usage record id: {value!r:.80}", field="_id")
    try:
        return InstanceUid(value[:-11]), date.fromisoformat(value[-10:])
    except ValueError:
        raise InvalidInput(f"not a usage record id: {value!r:.80}", field="_id") from None


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A usage document ready for a bulk request: its id, digest and JSON source text."""

    record_id: str
    digest: str
    source: str


# Not frozen, on purpose: one run creates 100k+ of these and a frozen dataclass's __init__
# is about six times slower. Nothing mutates them after creation.
@dataclass(slots=True)
class LineItem:
    """Seconds of one run on one day at one size and one price version."""

    start: datetime
    end: datetime
    seconds: int
    cpu: Decimal
    memory_gib: Decimal
    price_from: datetime
    vcpu_second: Decimal
    gib_second: Decimal
    amount: Decimal

    def json_text(self) -> str:
        """`to_doc()` as compact ASCII JSON, written directly (see `UsageRecord.encode`)."""
        return (
            f'{{"start":"{format_time(self.start)}","end":"{format_time(self.end)}",'
            f'"seconds":{self.seconds:d},"cpu":"{self.cpu!s}","memory_gib":"{self.memory_gib!s}",'
            f'"price_from":"{_format_repeated(self.price_from)}","vcpu_second":"{self.vcpu_second!s}",'
            f'"gib_second":"{self.gib_second!s}","amount":"{self.amount!s}"}}'
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "start": format_time(self.start),
            "end": format_time(self.end),
            "seconds": self.seconds,
            "cpu": str(self.cpu),
            "memory_gib": str(self.memory_gib),
            "price_from": _format_repeated(self.price_from),
            "vcpu_second": str(self.vcpu_second),
            "gib_second": str(self.gib_second),
            "amount": str(self.amount),
        }

    @classmethod
    def from_doc(cls, raw: Mapping[str, Any]) -> LineItem:
        return cls(
            start=parse_time(raw["start"], field="lines.start"),
            end=parse_time(raw["end"], field="lines.end"),
            seconds=int(raw["seconds"]),
            cpu=Decimal(raw["cpu"]),
            memory_gib=Decimal(raw["memory_gib"]),
            price_from=parse_time(raw["price_from"], field="lines.price_from"),
            vcpu_second=Decimal(raw["vcpu_second"]),
            gib_second=Decimal(raw["gib_second"]),
            amount=Decimal(raw["amount"]),
        )


@dataclass(slots=True)
class UsageRecord:
    uid: InstanceUid
    instance_id: InstanceId
    tenant: TenantId
    region: Region
    cluster: str
    day: date
    seconds: int
    vcpu_seconds: Decimal
    gib_seconds: Decimal
    amount: Decimal  # exact sum of line amounts, 6 decimals
    currency: str
    flags: tuple[str, ...]
    lines: tuple[LineItem, ...]
    covered_until: datetime  # usage is complete up to here (the run's window end)

    @property
    def record_id(self) -> str:
        return record_id(self.uid, self.day)

    def to_doc(self) -> dict[str, Any]:
        """The `cis-usage` document, with a digest of its content (see `content_digest`)."""
        doc = self._content()
        doc["digest"] = content_digest(doc)
        return doc

    def encode(self) -> EncodedRecord:
        """`to_doc()` as the JSON text written to Elasticsearch, its id and its digest.

        The hot path of a run (100k+ records): the text is written directly instead of
        building `to_doc()` and serializing it, which costs twice as much. It is exactly
        what the standard encoder makes of `to_doc()` (compact, ASCII, keys in order),
        the digest last; the unit tests hold the two forms byte-equal.
        """
        rid = self.record_id
        q = _json_string
        text = (
            f'{{"record_id":{q(rid)},"instance":{{"uid":{q(self.uid)},"id":{q(self.instance_id)},'
            f'"tenant":{q(self.tenant)},"region":{q(self.region)},"cluster":{q(self.cluster)}}},'
            f'"day":"{self.day.isoformat()}","seconds":{self.seconds:d},'
            f'"vcpu_seconds":"{self.vcpu_seconds!s}","gib_seconds":"{self.gib_seconds!s}",'
            f'"amount":"{self.amount!s}","amount_micros":{int(self.amount * _MICROS):d},'
            f'"currency":{q(self.currency)},"flags":[{",".join([q(f) for f in self.flags])}],'
            f'"lines":[{",".join([line.json_text() for line in self.lines])}],'
            f'"covered_until":"{_format_repeated(self.covered_until)}"}}'
        )
        digest = _digest(text)
        return EncodedRecord(rid, digest, f'{text[:-1]},"digest":"{digest}"}}')

    def _content(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "instance": {
                "uid": self.uid,
                "id": self.instance_id,
                "tenant": self.tenant,
                "region": self.region,
                "cluster": self.cluster,
            },
            "day": self.day.isoformat(),
            "seconds": self.seconds,
            "vcpu_seconds": str(self.vcpu_seconds),
            "gib_seconds": str(self.gib_seconds),
            "amount": str(self.amount),
            "amount_micros": int(self.amount * _MICROS),
            "currency": self.currency,
            "flags": list(self.flags),
            "lines": [line.to_doc() for line in self.lines],
            "covered_until": _format_repeated(self.covered_until),
        }

    @classmethod
    def from_doc(cls, raw: Mapping[str, Any]) -> UsageRecord:
        """Parse a `cis-usage` document; raises `InvalidInput` naming what is wrong."""
        try:
            inst = raw["instance"]
            return cls(
                uid=InstanceUid(inst["uid"]),
                instance_id=InstanceId(inst["id"]),
                tenant=TenantId(inst["tenant"]),
                region=Region(inst["region"]),
                cluster=inst.get("cluster", ""),
                day=date.fromisoformat(raw["day"]),
                seconds=int(raw["seconds"]),
                vcpu_seconds=Decimal(raw["vcpu_seconds"]),
                gib_seconds=Decimal(raw["gib_seconds"]),
                amount=Decimal(raw["amount"]).quantize(LINE_QUANTUM),
                currency=raw["currency"],
                flags=tuple(raw.get("flags", ())),
                lines=tuple(LineItem.from_doc(line) for line in raw.get("lines", ())),
                covered_until=parse_time(raw["covered_until"], field="covered_until"),
            )
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise InvalidInput(f"malformed usage record: {exc!r:.120}", field="_source") from exc


# Explicit mapping of `cis-usage`. `dynamic: strict` so a bug that writes a new field fails
# loudly instead of silently growing the mapping. Only what is searched is indexed (day,
# tenant, instance ids, flags); what is only read back or aggregated keeps doc values and
# skips the inverted index, and exact decimals are plain `_source`: a run writes 100k+
# records, and each indexed field costs indexing time. `lines` is detail for reports.
_DOC_VALUES_ONLY = {"index": False}
USAGE_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "record_id": {"type": "keyword", **_DOC_VALUES_ONLY},  # sort key; _id holds the same
        "instance": {
            "properties": {
                "uid": {"type": "keyword"},
                "id": {"type": "keyword"},
                "tenant": {"type": "keyword"},
                "region": {"type": "keyword"},
                "cluster": {"type": "keyword"},
            }
        },
        "day": {"type": "date", "format": "strict_date"},
        "seconds": {"type": "long", **_DOC_VALUES_ONLY},
        "vcpu_seconds": {"type": "keyword", "index": False, "doc_values": False},
        "gib_seconds": {"type": "keyword", "index": False, "doc_values": False},
        "amount": {"type": "keyword", "index": False, "doc_values": False},
        "amount_micros": {"type": "long", **_DOC_VALUES_ONLY},
        "currency": {"type": "keyword"},
        "flags": {"type": "keyword"},
        "lines": {"type": "object", "enabled": False},
        "covered_until": {"type": "date", **_DOC_VALUES_ONLY},
        "digest": {"type": "keyword", **_DOC_VALUES_ONLY},
    },
}
