"""The Filebeat configuration of the local stack (`cis dev up`, integration tests).

One Filebeat process ships both the lifecycle events the CIS controller writes and the CRI
log files tests write in place of a kubelet. It is the production templates with local
values: no API server metadata (KWOK pods have no containers and no log files of their
own), and a 1s scan interval so tests see new files quickly.

The minimal Elasticsearch distribution answers `GET /` with 405 (no rest-root module), and
Filebeat's output refuses a cluster whose version it cannot read, so `es_url` must be an
address that answers it: see `cis_logging.root_shim`.
"""

from __future__ import annotations

from pathlib import Path

from cis_logging.params import EventsParams, OutputParams, PodLogsParams
from cis_logging.rendering import ConfigParts, render_filebeat


def render_stack_filebeat(*, es_url: str, events_dir: Path, pod_logs_dir: Path,
                          logs_prefix: str = "cis-logs",
                          events_prefix: str = "cis-events") -> str:
    """filebeat.yml shipping `pod_logs_dir` (kubelet layout) and `events_dir/*.ndjson`."""
    parts = ConfigParts(
        output=OutputParams(es_hosts=(es_url,), scan_interval_seconds=1, backoff_max_seconds=5),
        pod_logs=PodLogsParams(logs_root=str(pod_logs_dir), index_prefix=logs_prefix),
        events=EventsParams(events_dir=str(events_dir), index_prefix=events_prefix),
    )
    return render_filebeat(parts, kind="stack")
