"""Parameters of the Filebeat configurations and Kubernetes manifests, validated on construction.

Every value that ends up in a rendered file passes through one of the checks below before
any template runs, so a bad value is an `InvalidParameter` naming the field, never a broken
or subtly different YAML file. The checks are deliberately narrower than what YAML could
carry: Filebeat expands `${...}` in every string and treats `%{...}` as a format string in
some settings, and the pod-log path is spliced into a dissect tokenizer and a glob, so those
characters are refused outright instead of escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from cis_logging.errors import InvalidParameter

# Characters allowed in filesystem paths we render: no glob, format-string, env-expansion,
# quoting or whitespace characters.
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._@+=,-]+(?:/[A-Za-z0-9._@+=,-]+)*")
# Elasticsearch index names are lowercase and may not contain \ / * ? " < > | space , #
# or :, nor start with - _ +. The prefix also must leave room for "-YYYY.MM.DD".
_INDEX_PREFIX = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}")
_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_NAMESPACE_PREFIX = re.compile(r"(?:[a-z0-9][-a-z0-9]{0,40})?")
_INPUT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_FILE_PATTERN = re.compile(r"[A-Za-z0-9._*-]{1,100}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,62}")
_IMAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}")
_QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:m|k|M|G|Ki|Mi|Gi)?")
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})")
# Regex constructs Go's RE2 (Filebeat) does not share with Python's `re`.
_NON_RE2 = re.compile(r"\(\?[=!<]|\(\?P=|\\[1-9]")

INSTANCE_POD_PATTERN = r"^ci-[a-z2-7]{20}$"
"""CIS instance ids (`ci-` + 20 base32 characters) double as pod names on backing clusters."""


def check_url(name: str, value: str) -> str:
    """An http(s) Elasticsearch URL without credentials, query or fragment."""
    if not isinstance(value, str) or not value:
        raise InvalidParameter(name, "must be a non-empty URL string")
    if any(c.isspace() or c in "\"'$%{}\\`" for c in value):
        raise InvalidParameter(name, f"{value!r} contains characters not allowed in a URL")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise InvalidParameter(name, f"{value!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidParameter(name, f"{value!r} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise InvalidParameter(
            name, "credentials do not belong in the URL (it lands in a ConfigMap)")
    host = parts.hostname or ""
    if not _HOST.fullmatch(host) and not _is_ipv6(host):
        raise InvalidParameter(name, f"{value!r} has no valid host name")
    if port == 0:
        raise InvalidParameter(name, f"{value!r} has port 0")
    if parts.query or parts.fragment:
        raise InvalidParameter(name, f"{value!r} must not carry a query or fragment")
    if parts.path not in ("", "/") and not _SAFE_PATH.fullmatch(parts.path.rstrip("/")):
        raise InvalidParameter(name, f"{value!r} has an unsupported path")
    return value


def _is_ipv6(host: str) -> bool:
    return bool(host) and ":" in host and all(c in "0123456789abcdefABCDEF:." for c in host)


def check_urls(name: str, value: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not value:
        raise InvalidParameter(name, "must list at least one URL")
    for i, url in enumerate(value):
        check_url(f"{name}[{i}]", url)
    return value


def check_abs_path(name: str, value: str) -> str:
    """An absolute, normalised path of plain characters (it is spliced into globs and dissect)."""
    if not isinstance(value, str) or not _SAFE_PATH.fullmatch(value):
        raise InvalidParameter(
            name, f"{value!r} must be an absolute path of letters, digits and ._@+=,- "
            "without a trailing slash")
    if any(part in (".", "..") for part in value.split("/")):
        raise InvalidParameter(name, f"{value!r} must not contain . or .. segments")
    return value


def check_index_prefix(name: str, value: str) -> str:
    if not isinstance(value, str) or not _INDEX_PREFIX.fullmatch(value):
        raise InvalidParameter(
            name, f"{value!r} must be 1-200 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit")
    return value


def check_regex(name: str, value: str, matching: tuple[str, ...] = ()) -> str:
    """A regular expression both Python and Filebeat (Go RE2) read the same way."""
    if not isinstance(value, str) or not value or "${" in value or "\n" in value:
        raise InvalidParameter(name, "must be a single-line regular expression without '${'")
    if _NON_RE2.search(value):
        raise InvalidParameter(name, "lookarounds and backreferences are not supported by Filebeat")
    try:
        compiled = re.compile(value)
    except re.error as exc:
        raise InvalidParameter(name, f"{value!r} is not a valid regular expression: {exc}") from exc
    for sample in matching:
        if not compiled.search(sample):
            raise InvalidParameter(name, f"{value!r} does not match {sample!r}")
    return value


def check_pattern(name: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidParameter(name, f"{value!r} must be {what}")
    return value


def check_int(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidParameter(name, f"{value!r} must be an integer in [{low}, {high}]")
    return value


def check_bool(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise InvalidParameter(name, f"{value!r} must be true or false")
    return value


@dataclass(frozen=True)
class OutputParams:
    """Where and how Filebeat ships: shared by the node and the events configuration."""

    es_hosts: tuple[str, ...] = ("http://127.0.0.1:9200",)
    # 1s rather than Filebeat's 10s: `follow` and `kubectl logs -f` show lines only after
    # a flush, and small batches cost little at node log rates.
    flush_timeout_seconds: int = 1
    # Filebeat's default is 60s; 30s bounds how long shipping lags after an ES outage ends.
    backoff_max_seconds: int = 30
    # 10s is Filebeat's default scan interval; tests lower it to see new files quickly.
    scan_interval_seconds: int = 10

    def __post_init__(self) -> None:
        check_urls("es_hosts", self.es_hosts)
        check_int("flush_timeout_seconds", self.flush_timeout_seconds, 0, 60)
        check_int("backoff_max_seconds", self.backoff_max_seconds, 1, 600)
        check_int("scan_interval_seconds", self.scan_interval_seconds, 1, 300)


@dataclass(frozen=True)
class PodLogsParams:
    """The container-log input of a backing-cluster node (kubelet CRI files)."""

    # The kubelet's layout: <root>/<namespace>_<pod>_<uid>/<container>/<restart>.log
    logs_root: str = "/var/log/pods"
    index_prefix: str = "cis-logs"
    # CIS puts tenant <t> in namespace "tenant-<t>" (cis.domain.ids); "" means the
    # namespace *is* the tenant id.
    tenant_namespace_prefix: str = "tenant-"
    instance_pod_pattern: str = INSTANCE_POD_PATTERN
    # Pod labels from the API server. Off where there is no cluster (tests); the path
    # alone carries everything the documents need, so metadata is enrichment only.
    kubernetes_metadata: bool = False
    # Empty: in-cluster service account. Otherwise a kubeconfig path on the node.
    kube_config: str = ""
    node_name_env: str = "NODE_NAME"
    input_id: str = "cis-pod-logs"

    def __post_init__(self) -> None:
        check_abs_path("logs_root", self.logs_root)
        check_index_prefix("index_prefix", self.index_prefix)
        check_pattern("tenant_namespace_prefix", self.tenant_namespace_prefix, _NAMESPACE_PREFIX,
                      "empty or a DNS-label prefix such as 'tenant-'")
        check_regex("instance_pod_pattern", self.instance_pod_pattern)
        check_bool("kubernetes_metadata", self.kubernetes_metadata)
        if self.kube_config:
            check_abs_path("kube_config", self.kube_config)
        check_pattern("node_name_env", self.node_name_env, _ENV_NAME,
                      "an environment variable name (A-Z, 0-9, _)")
        check_pattern("input_id", self.input_id, _INPUT_ID, "a Filebeat input id ([A-Za-z0-9._-])")


@dataclass(frozen=True)
class EventsParams:
    """The lifecycle-event input: NDJSON files written by the CIS controller."""

    events_dir: str = "/var/lib/cis/events"
    file_pattern: str = "*.ndjson"
    index_prefix: str = "cis-events"
    input_id: str = "cis-lifecycle-events"

    def __post_init__(self) -> None:
        check_abs_path("events_dir", self.events_dir)
        check_pattern("file_pattern", self.file_pattern, _FILE_PATTERN,
                      "a file name glob of letters, digits and ._*- (no '/')")
        check_index_prefix("index_prefix", self.index_prefix)
        check_pattern("input_id", self.input_id, _INPUT_ID, "a Filebeat input id ([A-Za-z0-9._-])")


@dataclass(frozen=True)
class NodeConfigParams:
    """Filebeat on a backing-cluster node: pod logs only."""

    output: OutputParams = field(default_factory=OutputParams)
    pod_logs: PodLogsParams = field(default_factory=PodLogsParams)

    def __post_init__(self) -> None:
        if not isinstance(self.output, OutputParams):
            raise InvalidParameter("output", "must be OutputParams")
        if not isinstance(self.pod_logs, PodLogsParams):
            raise InvalidParameter("pod_logs", "must be PodLogsParams")


@dataclass(frozen=True)
class EventsConfigParams:
    """Filebeat next to the CIS controller: lifecycle events only."""

    output: OutputParams = field(default_factory=OutputParams)
    events: EventsParams = field(default_factory=EventsParams)

    def __post_init__(self) -> None:
        if not isinstance(self.output, OutputParams):
            raise InvalidParameter("output", "must be OutputParams")
        if not isinstance(self.events, EventsParams):
            raise InvalidParameter("events", "must be EventsParams")


@dataclass(frozen=True)
class ManifestParams:
    """The Kubernetes objects that run the node configuration as a DaemonSet."""

    image: str
    node: NodeConfigParams = field(default_factory=lambda: NodeConfigParams(
        pod_logs=PodLogsParams(kubernetes_metadata=True)))
    namespace: str = "cis-logging"
    name: str = "cis-filebeat"
    # The registry must survive pod restarts or every restart re-reads (and re-sends) all logs.
    data_host_path: str = "/var/lib/cis-filebeat"
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    memory_limit: str = "512Mi"
    image_pull_policy: str = "IfNotPresent"

    def __post_init__(self) -> None:
        check_pattern("image", self.image, _IMAGE, "a container image reference")
        if not isinstance(self.node, NodeConfigParams):
            raise InvalidParameter("node", "must be NodeConfigParams")
        if not self.node.pod_logs.kubernetes_metadata:
            raise InvalidParameter("kubernetes_metadata", "must be true in a DaemonSet")
        check_pattern("namespace", self.namespace, _DNS_LABEL, "a DNS label")
        check_pattern("name", self.name, _DNS_LABEL, "a DNS label")
        check_abs_path("data_host_path", self.data_host_path)
        for name in ("cpu_request", "memory_request", "memory_limit"):
            check_pattern(name, getattr(self, name), _QUANTITY, "a Kubernetes quantity")
        if self.image_pull_policy not in ("Always", "IfNotPresent", "Never"):
            raise InvalidParameter("image_pull_policy", "must be Always, IfNotPresent or Never")
