"""Renders the Filebeat configurations and the DaemonSet manifests from jinja2 templates.

Parameters arrive validated (see `params`); this module computes the plain values the
templates need (`template_data`, pure) and renders them with every interpolated value passed
through the `y` filter, which writes a YAML flow scalar (JSON is a subset of YAML), so no
value can change the document's structure. The result is parsed back as a last check: a
template bug raises `RenderError` instead of handing out a broken file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from cis_logging.errors import RenderError
from cis_logging.layout import (
    F_CONTAINER,
    F_OFFSET,
    F_POD_UID,
    F_RUN,
    F_STREAM,
    F_TENANT,
    F_TIMESTAMP,
)
from cis_logging.params import (
    EventsConfigParams,
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
)

CONFIG_MOUNT_DIR = "/etc/filebeat"
DATA_MOUNT_DIR = "/usr/share/filebeat/data"

# What makes a log line unique without its file path (which changes on rotation). The
# restart count separates runs whose files both start at offset 0.
FINGERPRINT_FIELDS = (F_POD_UID, F_CONTAINER, F_RUN, F_TIMESTAMP, F_STREAM, F_OFFSET)
REQUIRED_LOG_FIELDS = (F_TENANT, F_POD_UID, F_CONTAINER, F_RUN, "kubernetes.pod.name")


def _yaml_scalar(value: Any) -> str:
    """A YAML flow value for a string, number, bool, None or list of them."""
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, ensure_ascii=True)


_ENV = jinja2.Environment(
    # Next to this file, not looked up by package name: robust to how tests import us.
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined,
    autoescape=False,  # YAML, not HTML; escaping is the `y` filter's job
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_ENV.filters["y"] = _yaml_scalar


@dataclass(frozen=True)
class ConfigParts:
    """What one Filebeat process does: its output and any of the two inputs."""

    output: OutputParams
    pod_logs: PodLogsParams | None = None
    events: EventsParams | None = None


def template_data(parts: ConfigParts) -> dict[str, Any]:
    """Derived plain values for the Filebeat template (pure, unit-tested)."""
    d: dict[str, Any] = {}
    if parts.pod_logs is not None:
        p = parts.pod_logs
        d["pod_logs_glob"] = f"{p.logs_root}/*/*/*.log"
        d["pod_logs_index"] = p.index_prefix + "-%{+yyyy.MM.dd}"
        d["path_tokenizer"] = (
            f"{p.logs_root}/%{{kubernetes.namespace}}_%{{kubernetes.pod.name}}"
            f"_%{{kubernetes.pod.uid}}/%{{container.name}}/%{{container.restart_count|long}}.log")
        d["tenant_tokenizer"] = f"{p.tenant_namespace_prefix}%{{tenant.id}}"
        d["node_name_ref"] = "${" + p.node_name_env + "}"
        d["required_fields"] = list(REQUIRED_LOG_FIELDS)
        d["fingerprint_fields"] = list(FINGERPRINT_FIELDS)
    if parts.events is not None:
        e = parts.events
        d["events_glob"] = f"{e.events_dir}/{e.file_pattern}"
        d["events_index"] = e.index_prefix + "-%{+yyyy.MM}"
    return d


def _parse_check(kind: str, text: str) -> list[Any]:
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise RenderError(f"rendered {kind} is not valid YAML: {exc}") from exc
    if not docs:
        raise RenderError(f"rendered {kind} is empty")
    return docs


def render_filebeat(parts: ConfigParts, *, kind: str = "filebeat") -> str:
    """A complete filebeat.yml for the given inputs."""
    if parts.pod_logs is None and parts.events is None:
        raise RenderError("a Filebeat configuration needs at least one input")
    text = _ENV.get_template("filebeat.yml.j2").render(
        kind=kind, output=parts.output, pod_logs=parts.pod_logs, events=parts.events,
        d=template_data(parts))
    _parse_check(kind, text)
    return text


def render_node_config(params: NodeConfigParams) -> str:
    """Filebeat for a backing-cluster node: CIS instance pods' logs only."""
    return render_filebeat(ConfigParts(params.output, pod_logs=params.pod_logs), kind="node")


def render_events_config(params: EventsConfigParams) -> str:
    """Filebeat next to the controller: lifecycle events NDJSON only."""
    return render_filebeat(ConfigParts(params.output, events=params.events), kind="events")


def render_manifests(params: ManifestParams) -> str:
    """Namespace, ServiceAccount, RBAC, ConfigMap and DaemonSet as one multi-document YAML."""
    config = render_node_config(params.node)
    text = _ENV.get_template("manifests.yaml.j2").render(
        p=params, config=config,
        config_hash=hashlib.sha256(config.encode()).hexdigest()[:16],
        config_dir=CONFIG_MOUNT_DIR, data_dir=DATA_MOUNT_DIR)
    docs = _parse_check("manifests", text)
    config_maps = [d for d in docs if d.get("kind") == "ConfigMap"]
    # A block scalar can lose or gain trailing whitespace; the node must run exactly `config`.
    if len(config_maps) != 1 or config_maps[0]["data"]["filebeat.yml"] != config:
        raise RenderError("the ConfigMap does not carry the rendered configuration verbatim")
    return text
