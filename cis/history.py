"""An instance's lifecycle events, read back from Elasticsearch (where Filebeat ships the
controller's event lines), plus the Kubernetes events of its pod while it exists.

History outlives the instance: the events index keeps them after the CR and pod are gone.
"""

from __future__ import annotations

import logging
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch import ApiError, TransportError

from cis.domain import errors
from cis.domain.model import Instance

log = logging.getLogger(__name__)

EVENTS_INDEX = "cis-events-*"


def events_query(instance: Instance, size: int = 1000) -> dict[str, Any]:
    """Every lifecycle event of one instance, oldest first; duplicates collapse on the id."""
    return {
        "query": {"bool": {"filter": [
            {"term": {"instance.id": instance.id}},
            {"term": {"instance.tenant": instance.tenant}},
        ]}},
        "sort": [{"event.seq": "asc"}, {"@timestamp": "asc"}],
        "collapse": {"field": "event.id"},
        "size": size,
    }


class EventHistory:
    def __init__(self, es: AsyncElasticsearch) -> None:
        self.es = es

    async def __call__(self, instance: Instance) -> list[dict[str, Any]]:
        try:
            resp = await self.es.search(index=EVENTS_INDEX, ignore_unavailable=True,
                                        allow_no_indices=True, **events_query(instance))
        except (ApiError, TransportError) as exc:
            raise errors.Temporary(f"event store unavailable: {exc}", retry_after=5) from exc
        return [hit["_source"] for hit in resp["hits"]["hits"]]
