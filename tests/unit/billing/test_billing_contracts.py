"""Wire contracts: event parsing, usage documents, API input parsing and negotiation."""

from __future__ import annotations

import copy
import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from billing.errors import InvalidEvent, InvalidInput, NotFound
from billing.events import parse_event
from billing.metering import Window, meter_events
from billing.service import ReportFormat, negotiate_format, parse_quote_request, quote_price
from billing.testing import parsed, prices, raw_event, run_events, t
from billing.usage import UsageRecord, split_record_id

GOOD = raw_event("instance.started", 3, t("11-21 10:00:00.123"), started_at=t("11-21 10:00:00.123"))


def _broken(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    outer, inner = path.split(".") if "." in path else (path, None)
    if inner is None:
        doc[outer] = value
    else:
        doc[outer][inner] = value
    return doc


def test_parse_event_reads_the_design_shape() -> None:
    ev = parse_event(GOOD)
    assert (ev.kind, ev.seq, ev.uid, ev.tenant, ev.cpu, ev.memory_gib) == (
        "instance.started", 3, "uid-1", "acme", Decimal("0.5"), Decimal(1)
    )  # fmt: skip
    assert ev.started_at == t("11-21 10:00:00.123") and ev.stopped_at is None


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (_broken("event.seq", "3"), "event.seq"),
        (_broken("event.seq", -1), "event.seq"),
        (_broken("event.id", ""), "event.id"),
        (_broken("instance.uid", None), "instance.uid"),
        (_broken("instance.cpu", 0.5), "instance.cpu"),
        (_broken("instance.cpu", "0"), "instance.cpu"),
        (_broken("instance.memory_gib", "lots"), "instance.memory_gib"),
        (_broken("instance.started_at", "yesterday"), "instance.started_at"),
        (_broken("@timestamp", None), "@timestamp"),
        (_broken("instance", "x"), "instance"),
    ],
    ids=[
        "seq-string", "seq-negative", "id-empty", "uid-missing", "cpu-float", "cpu-zero",
        "memory-text", "started-at-text", "timestamp-missing", "instance-not-object",
    ],
)  # fmt: skip
def test_parse_event_names_the_bad_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(doc)
    assert err.value.field == field


def test_usage_document_round_trips() -> None:
    window = Window(t("11-21 00:00:00"), t("11-22 00:00:00"))
    events = run_events(t("11-21 11:30:00"), t("11-21 12:30:00.5"), region="r2")
    (record,) = meter_events(parsed(events), prices(), window).records
    doc = record.to_doc()
    assert doc["record_id"] == "uid-1-2026-11-21"
    # 1800 s at 0.000006 + 1801 s at 0.000012 = 0.0108 + 0.021612
    assert (doc["amount"], doc["amount_micros"], doc["seconds"]) == ("0.032412", 32412, 3601)
    assert UsageRecord.from_doc(doc) == record


def _records() -> list[Any]:
    """Records of every shape: flags, several lines, non-ASCII and quoted names, odd decimals."""
    window = Window(t("11-21 00:00:00"), t("11-23 00:00:00"))
    events = {
        "price-change": run_events(t("11-21 11:30:00"), t("11-21 12:30:00.5"), region="r2"),
        "two-days": run_events(t("11-21 23:00:00"), t("11-22 01:30:00")),
        "flagged": run_events(t("11-21 10:00:00"), None, heartbeats=(t("11-21 10:05:00"),)),
        "odd-names": run_events(t("11-21 10:00:00"), t("11-21 10:00:07"), tenant='ac"me\\é', cluster="ä ☃"),
        "odd-decimals": run_events(t("11-21 10:00:00"), t("11-21 11:00:00"), cpu="1E+1", memory_gib="0.50"),
    }
    return [
        pytest.param(record, id=f"{name}-{record.day}")
        for name, raws in events.items()
        for record in meter_events(parsed(raws), prices(), window).records
    ]


@pytest.mark.parametrize("record", _records())
def test_encoded_record_is_the_standard_json_of_its_document(record: UsageRecord) -> None:
    encoded, doc = record.encode(), record.to_doc()
    assert encoded.source == json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    assert (encoded.record_id, encoded.digest) == (doc["record_id"], doc["digest"])
    assert json.loads(encoded.source) == doc and UsageRecord.from_doc(doc) == record


def test_record_ids_split_back() -> None:
    assert split_record_id("0b6c-uid-with-dashes-2026-11-21") == (
        "0b6c-uid-with-dashes",
        date(2026, 11, 21),
    )
    with pytest.raises(InvalidInput):
        split_record_id("short")


@pytest.mark.parametrize(
    ("accept", "query", "expected"),
    [
        (None, None, ReportFormat.JSON),
        ("text/html,application/xhtml+xml;q=0.9,*/*;q=0.8", None, ReportFormat.HTML),
        ("text/csv;q=0.5, application/json;q=0.4", None, ReportFormat.CSV),
        ("application/json", "csv", ReportFormat.CSV),
        ("image/png", None, ReportFormat.JSON),
        ("text/html;q=0", None, ReportFormat.JSON),
    ],
    ids=["default", "browser", "weights", "query-wins", "unknown", "refused"],
)
def test_negotiate_format(accept: str | None, query: str | None, expected: ReportFormat) -> None:
    assert negotiate_format(accept, query) is expected


def test_negotiate_format_rejects_unknown_query_value() -> None:
    with pytest.raises(InvalidInput) as err:
        negotiate_format(None, "pdf")
    assert err.value.field == "format"


def test_quote_price() -> None:
    request = parse_quote_request({"region": "r2", "cpu": "0.5", "memoryGiB": 1, "seconds": 60})
    body = quote_price(prices(), request, now=t("11-21 12:00:00"))
    # 60 s * (0.5 * 0.00002 + 1 * 0.000002) = 60 * 0.000012 = 0.00072
    assert (body["amount"], body["currency"]) == ("0.000720", "USD")
    assert Decimal(body["perSecond"]) == Decimal("0.000012")
    with pytest.raises(NotFound):
        quote_price(
            prices(),
            parse_quote_request({"region": "mars", "cpu": 1, "memoryGiB": 1}),
            now=t("11-21 12:00:00"),
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cpu": 1, "memoryGiB": 1}, "region"),
        ({"region": "r1", "cpu": "-1", "memoryGiB": 1}, "cpu"),
        ({"region": "r1", "cpu": True, "memoryGiB": 1}, "cpu"),
        ({"region": "r1", "cpu": 1, "memoryGiB": "NaN"}, "memoryGiB"),
        ({"region": "r1", "cpu": 1, "memoryGiB": 1, "seconds": 1.5}, "seconds"),
        ({"region": "r1", "cpu": 1, "memoryGiB": 1, "seconds": 10**9}, "seconds"),
        ({"region": "r1", "cpu": 1, "memoryGiB": 1, "at": "soon"}, "at"),
    ],
    ids=[
        "no-region",
        "negative-cpu",
        "bool-cpu",
        "nan-memory",
        "float-seconds",
        "huge-seconds",
        "bad-at",
    ],
)
def test_parse_quote_request_names_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_quote_request(body)
    assert err.value.field == field


def test_the_events_template_is_what_billing_reads() -> None:
    """cis_logging owns the events template; billing relies on its field types and sort."""
    from billing.queries import EVENTS_INDEX_SORT, EVENTS_MAPPING
    from cis_logging.layout import EsLayout, events_template

    template = events_template(EsLayout(), ilm=False)["template"]
    assert EVENTS_INDEX_SORT.items() <= template["settings"].items()

    def types(props: dict[str, Any], prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for name, field in props.items():
            if "properties" in field:
                out |= types(field["properties"], f"{prefix}{name}.")
            else:
                out[prefix + name] = field["type"]
        return out

    required, offered = types(EVENTS_MAPPING["properties"]), types(template["mappings"]["properties"])
    assert {name: offered.get(name) for name in required} == required


def test_epoch_conversions_are_exact() -> None:
    """The fast conversions agree with exact timedelta arithmetic to the microsecond."""
    import random
    from datetime import UTC, datetime, timedelta

    from billing.prices import from_epoch
    from billing.queries import _millis

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(7)
    edges = [0, -1, 1, 999, -86_400_001, 2**33 * 1000 - 1, 2**33 * 1000, 253_402_300_799_999]
    for ms in [*edges, *(rng.randrange(-(10**12), 10**13) for _ in range(20_000))]:
        assert _millis(ms, "f") == epoch + timedelta(milliseconds=ms), ms
        assert _millis(float(ms), "f") == epoch + timedelta(milliseconds=ms), ms
        assert from_epoch(ms // 1000) == epoch + timedelta(seconds=ms // 1000), ms
    with pytest.raises(InvalidEvent):
        _millis(10**20, "instance.started_at")
