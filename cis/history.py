"""An instance's lifecycle events, read back from Elasticsearch (where Filebeat ships the
controller's event lines), plus the Kubernetes events of its pod while it exists.

History outlives the instance: the events index keeps them after the CR and pod are gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, TransportError

from cis.domain import errors
from cis.domain.model import Instance
from kubeio.client import KubeClient, KubeError

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


def pod_event_to_json(raw: dict[str, Any]) -> dict[str, Any]:
    """A Kubernetes Event of the instance's pod, in the shape `kubectl describe` shows."""
    return {
        "source": "kubernetes",
        "type": raw.get("type"),
        "reason": raw.get("reason"),
        "message": raw.get("message"),
        "count": raw.get("count") or (raw.get("series") or {}).get("count") or 1,
        "firstTimestamp": raw.get("firstTimestamp") or raw.get("eventTime"),
        "lastTimestamp": raw.get("lastTimestamp") or raw.get("eventTime"),
    }


class EventHistory:
    """Lifecycle events from Elasticsearch, then the pod's Kubernetes events when the
    instance's backing cluster is known to this process."""

    def __init__(self, es: AsyncElasticsearch, cluster: Callable[[str], KubeClient | None]) -> None:
        self.es = es
        self.cluster = cluster

    async def __call__(self, instance: Instance) -> list[dict[str, Any]]:
        try:
            resp = await self.es.search(index=EVENTS_INDEX, ignore_unavailable=True,
                                        allow_no_indices=True, **events_query(instance))
        except (ApiError, TransportError) as exc:
            raise errors.Temporary(f"event store unavailable: {exc}", retry_after=5) from exc
        events = [{"source": "lifecycle", **hit["_source"]} for hit in resp["hits"]["hits"]]
        client = self.cluster(instance.status.cluster or "")
        if client is not None:
            path = f"/api/v1/namespaces/{instance.namespace}/events"
            try:
                raw = await client.get(path, {"fieldSelector": f"involvedObject.name={instance.id}"})
                events += [pod_event_to_json(e) for e in raw.get("items", [])]
            except KubeError as exc:
                log.info("pod events of %s unavailable: %s", instance.id, exc)
        return events
