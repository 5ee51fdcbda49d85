"""ensure_layout / prune_expired_indices against a recording fake client."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import pytest
from elastic_transport import ApiResponseMeta, ConnectionError, HttpHeaders, NodeConfig
from elasticsearch import ApiError, AsyncElasticsearch

from cis_logging.errors import Unavailable
from cis_logging.es_setup import ensure_layout, prune_expired_indices
from cis_logging.layout import EsLayout


def api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(
        status=status,
        http_version="1.1",
        headers=HttpHeaders(),
        duration=0.0,
        node=NodeConfig("http", "localhost", 9200),
    )
    return ApiError("error", meta, {})


@dataclass
class Body:
    body: dict[str, Any]


@dataclass
class FakeIlm:
    calls: list[tuple[str, dict[str, Any]]]
    status_error: Exception | None

    async def get_status(self) -> Body:
        if self.status_error is not None:
            raise self.status_error
        return Body({"operation_mode": "RUNNING"})

    async def put_lifecycle(self, **kwargs: Any) -> Body:
        self.calls.append(("put_lifecycle", kwargs))
        return Body({"acknowledged": True})


@dataclass
class FakeIndices:
    calls: list[tuple[str, dict[str, Any]]]
    existing: list[str]

    async def put_index_template(self, **kwargs: Any) -> Body:
        self.calls.append(("put_index_template", kwargs))
        return Body({"acknowledged": True})

    async def put_mapping(self, **kwargs: Any) -> Body:
        self.calls.append(("put_mapping", kwargs))
        return Body({"acknowledged": True})

    async def get(self, **kwargs: Any) -> Body:
        prefix = kwargs["index"].rstrip("*")
        return Body({n: {} for n in self.existing if n.startswith(prefix)})

    async def delete(self, **kwargs: Any) -> Body:
        self.calls.append(("delete", kwargs))
        return Body({"acknowledged": True})


@dataclass
class FakeClient:
    status_error: Exception | None = None
    existing: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ilm = FakeIlm(self.calls, self.status_error)
        self.indices = FakeIndices(self.calls, self.existing)

    def es(self) -> AsyncElasticsearch:
        return cast(AsyncElasticsearch, self)


@pytest.mark.parametrize("status", [400, 404, 405, 410], ids=lambda s: f"http-{s}")
async def test_without_ilm_only_templates(status: int) -> None:
    client = FakeClient(status_error=api_error(status))
    result = await ensure_layout(client.es(), EsLayout())
    assert not result.ilm and result.policies == ()
    assert [c[0] for c in client.calls] == ["put_index_template", "put_mapping"] * 2
    templates = [c[1] for c in client.calls if c[0] == "put_index_template"]
    assert {t["name"] for t in templates} == {"cis-logs", "cis-events"}
    for t in templates:
        assert "index.lifecycle.name" not in t["template"]["settings"]
        assert t["meta"] == {"managed_by": "cis_logging"}
    mappings = [c[1] for c in client.calls if c[0] == "put_mapping"]
    assert {m["index"] for m in mappings} == {"cis-logs-*", "cis-events-*"}
    assert all(m["allow_no_indices"] and m["dynamic"] is False for m in mappings)


async def test_with_ilm_policies_first() -> None:
    client = FakeClient()
    result = await ensure_layout(client.es(), EsLayout(logs_retention_days=7))
    assert result.ilm and result.policies == ("cis-events-retention", "cis-logs-retention")
    assert [c[0] for c in client.calls][:2] == ["put_lifecycle", "put_lifecycle"]
    policies = {c[1]["name"]: c[1]["policy"] for c in client.calls if c[0] == "put_lifecycle"}
    assert policies["cis-logs-retention"]["phases"]["delete"]["min_age"] == "7d"
    templates = {c[1]["name"]: c[1] for c in client.calls if c[0] == "put_index_template"}
    assert templates["cis-logs"]["template"]["settings"]["index.lifecycle.name"] == "cis-logs-retention"


@pytest.mark.parametrize(
    "error", [api_error(503), api_error(429), ConnectionError("refused")], ids=["503", "429", "connection"]
)
async def test_unreachable_is_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable):
        await ensure_layout(FakeClient(status_error=error).es(), EsLayout())


async def test_prune_expired_indices() -> None:
    client = FakeClient(
        existing=[
            "cis-logs-2026.10.01",
            "cis-logs-2026.11.20",
            "cis-events-2021.09",
            "cis-events-2026.11",
            "cis-logs-x",
        ]
    )
    deleted = await prune_expired_indices(client.es(), EsLayout(), today=date(2026, 11, 21))
    assert deleted == ["cis-logs-2026.10.01", "cis-events-2021.09"]
    assert [c[1]["index"] for c in client.calls if c[0] == "delete"] == deleted
