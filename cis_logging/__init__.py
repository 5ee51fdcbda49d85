"""The log pipeline: Filebeat configuration, Elasticsearch layout and log queries.

Filebeat ships container logs (from every backing-cluster node) and the controller's
lifecycle events into Elasticsearch; this package renders its configuration, creates the
index templates, and answers log queries for the REST API and the virtual kubelet.
It never imports `cis`.

Public API:
- queries: `LogQuery`, `query_from_params`, `fetch_logs`, `follow_logs`, `instance_seen`,
  `LogLine`, `LogPage`;
- Elasticsearch: `EsLayout`, `ensure_layout`, `prune_expired_indices`;
- rendering: `render_node_config`, `render_events_config`, `render_manifests` and their
  parameter classes; `add_logging_commands` for the `cis` CLI;
- errors: `InvalidParameter`, `NotFound`, `Unavailable`, `LoggingError`.
"""

from cis_logging.errors import InvalidParameter, LoggingError, NotFound, RenderError, Unavailable
from cis_logging.es_setup import ensure_layout, prune_expired_indices
from cis_logging.layout import EsLayout
from cis_logging.lines import LogLine, LogPage
from cis_logging.params import (
    EventsConfigParams,
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
)
from cis_logging.query import LogQuery, query_from_params
from cis_logging.reading import fetch_logs, follow_logs, instance_seen
from cis_logging.rendering import render_events_config, render_manifests, render_node_config

__all__ = [
    "EsLayout",
    "EventsConfigParams",
    "EventsParams",
    "InvalidParameter",
    "LogLine",
    "LogPage",
    "LogQuery",
    "LoggingError",
    "ManifestParams",
    "NodeConfigParams",
    "NotFound",
    "OutputParams",
    "PodLogsParams",
    "RenderError",
    "Unavailable",
    "ensure_layout",
    "fetch_logs",
    "follow_logs",
    "instance_seen",
    "prune_expired_indices",
    "query_from_params",
    "render_events_config",
    "render_manifests",
    "render_node_config",
]
