"""Rendered Filebeat configurations and manifests: valid YAML with the expected structure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cis_logging.cli import build_and_render, main
from cis_logging.errors import InvalidParameter, RenderError
from cis_logging.params import (
    EventsConfigParams,
    EventsParams,
    ManifestParams,
    NodeConfigParams,
    OutputParams,
    PodLogsParams,
)
from cis_logging.rendering import (
    ConfigParts,
    render_events_config,
    render_filebeat,
    render_manifests,
    render_node_config,
    template_data,
)
from cis_logging.stack_config import render_stack_filebeat


def _processors(input_cfg: dict[str, Any]) -> dict[str, Any]:
    """processor name → its config (the last one of a kind wins; fine for these checks)."""
    out: dict[str, Any] = {}
    for proc in input_cfg["processors"]:
        ((name, cfg),) = proc.items()
        out[name] = cfg
    return out


def _names(input_cfg: dict[str, Any]) -> list[str]:
    return [next(iter(p)) for p in input_cfg["processors"]]


NODE_CASES = [
    ("defaults", NodeConfigParams()),
    ("metadata-in-cluster", NodeConfigParams(pod_logs=PodLogsParams(kubernetes_metadata=True))),
    (
        "metadata-kubeconfig",
        NodeConfigParams(pod_logs=PodLogsParams(kubernetes_metadata=True, kube_config="/etc/kubernetes/kubelet.conf")),
    ),
    (
        "test-dir",
        NodeConfigParams(
            output=OutputParams(es_hosts=("http://127.0.0.98:9299",), scan_interval_seconds=1),
            pod_logs=PodLogsParams(
                logs_root="/tmp/pytest-of-root/pytest-1/t_0/pods", index_prefix="t1-logs", tenant_namespace_prefix=""
            ),
        ),
    ),
]


@pytest.mark.parametrize(("case", "params"), NODE_CASES, ids=[c for c, _ in NODE_CASES])
def test_node_config(case: str, params: NodeConfigParams) -> None:
    cfg = yaml.safe_load(render_node_config(params))
    p = params.pod_logs
    assert cfg["timestamp.precision"] == "nanosecond"
    assert cfg["setup.template.enabled"] is False and cfg["setup.ilm.enabled"] is False
    assert cfg["output.elasticsearch"]["hosts"] == list(params.output.es_hosts)
    (inp,) = cfg["filebeat.inputs"]
    assert inp["type"] == "filestream" and inp["id"] == p.input_id
    assert inp["paths"] == [f"{p.logs_root}/*/*/*.log"]
    # Short files must ship: native identity and no fingerprint size gate.
    assert "file_identity.native" in inp
    assert inp["prospector.scanner.fingerprint.enabled"] is False
    assert inp["parsers"] == [{"container": {"stream": "all", "format": "cri"}}]
    assert inp["index"] == f"{p.index_prefix}-%{{+yyyy.MM.dd}}"
    procs = _processors(inp)
    names = _names(inp)
    if p.kubernetes_metadata:
        assert names[0] == "add_kubernetes_metadata"
        meta = procs["add_kubernetes_metadata"]
        assert meta["node"] == "${NODE_NAME}"
        assert meta["matchers"] == [{"logs_path": {"logs_path": p.logs_root + "/", "resource_type": "pod"}}]
        assert meta.get("kube_config", "") == p.kube_config
    else:
        assert "add_kubernetes_metadata" not in names
    path_dissect = inp["processors"][names.index("dissect")]["dissect"]
    assert path_dissect["field"] == "log.file.path"
    assert path_dissect["tokenizer"].startswith(p.logs_root + "/%{kubernetes.namespace}_")
    assert procs["fingerprint"]["target_field"] == "event.id"
    assert "log.file.path" not in procs["fingerprint"]["fields"]
    assert {"from": "event.id", "to": "@metadata._id"} in procs["copy_fields"]["fields"]
    # The id is computed after filtering and after the created time is stamped.
    assert names.index("drop_event") < names.index("now") < names.index("fingerprint")


def test_node_config_tenant_from_namespace_prefix() -> None:
    with_prefix = yaml.safe_load(render_node_config(NodeConfigParams()))["filebeat.inputs"][0]
    tokenizers = [p["dissect"]["tokenizer"] for p in with_prefix["processors"] if "dissect" in p]
    assert "tenant-%{tenant.id}" in tokenizers
    bare = yaml.safe_load(render_node_config(NodeConfigParams(pod_logs=PodLogsParams(tenant_namespace_prefix=""))))[
        "filebeat.inputs"
    ][0]
    copies = [f for p in bare["processors"] if "copy_fields" in p for f in p["copy_fields"]["fields"]]
    assert {"from": "kubernetes.namespace", "to": "tenant.id"} in copies


def test_hostile_but_valid_values_survive_rendering() -> None:
    pattern = r'^ci-"quoted"\\[a-z]{2}: #not-a-comment$'
    params = NodeConfigParams(pod_logs=PodLogsParams(instance_pod_pattern=pattern))
    inp = yaml.safe_load(render_node_config(params))["filebeat.inputs"][0]
    drops = [p["drop_event"] for p in inp["processors"] if "drop_event" in p]
    regexp = drops[0]["when"]["not"]["and"][1]["regexp"]
    assert regexp == {"kubernetes.pod.name": pattern}


EVENTS_CASES = [
    ("defaults", EventsConfigParams()),
    (
        "custom",
        EventsConfigParams(
            output=OutputParams(es_hosts=("https://es-1:9200", "https://es-2:9200")),
            events=EventsParams(
                events_dir="/srv/cis/events", file_pattern="lifecycle-*.ndjson", index_prefix="t2-events", input_id="ev"
            ),
        ),
    ),
]


@pytest.mark.parametrize(("case", "params"), EVENTS_CASES, ids=[c for c, _ in EVENTS_CASES])
def test_events_config(case: str, params: EventsConfigParams) -> None:
    cfg = yaml.safe_load(render_events_config(params))
    e = params.events
    (inp,) = cfg["filebeat.inputs"]
    assert inp["id"] == e.input_id
    assert inp["paths"] == [f"{e.events_dir}/{e.file_pattern}"]
    assert inp["parsers"][0]["ndjson"]["document_id"] == "event.id"
    assert inp["parsers"][0]["ndjson"]["target"] == ""
    assert inp["index"] == f"{e.index_prefix}-%{{+yyyy.MM}}"
    procs = _processors(inp)
    assert {"from": "@metadata._id", "to": "event.id"} in procs["copy_fields"]["fields"]
    assert cfg["output.elasticsearch"]["hosts"] == list(params.output.es_hosts)


def test_stack_config_has_both_inputs(tmp_path: Path) -> None:
    text = render_stack_filebeat(
        es_url="http://127.20.0.1:9201", events_dir=tmp_path / "ev", pod_logs_dir=tmp_path / "pods"
    )
    cfg = yaml.safe_load(text)
    ids = [i["id"] for i in cfg["filebeat.inputs"]]
    assert ids == ["cis-pod-logs", "cis-lifecycle-events"]


def test_config_needs_an_input() -> None:
    with pytest.raises(RenderError):
        render_filebeat(ConfigParts(OutputParams()))


def test_template_data_is_plain() -> None:
    d = template_data(ConfigParts(OutputParams(), pod_logs=PodLogsParams(logs_root="/p")))
    assert d["path_tokenizer"] == (
        "/p/%{kubernetes.namespace}_%{kubernetes.pod.name}_"
        "%{kubernetes.pod.uid}/%{container.name}/"
        "%{container.restart_count|long}.log"
    )
    assert d["pod_logs_glob"] == "/p/*/*/*.log"


def test_manifests() -> None:
    params = ManifestParams(image="registry.example/filebeat-oss:9.3.0", namespace="logging")
    docs = list(yaml.safe_load_all(render_manifests(params)))
    kinds = [d["kind"] for d in docs]
    assert kinds == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ConfigMap", "DaemonSet"]
    by_kind = {d["kind"]: d for d in docs}
    ds = by_kind["DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert ds["metadata"]["namespace"] == "logging"
    assert pod["serviceAccountName"] == params.name
    (container,) = pod["containers"]
    assert container["image"] == params.image
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in container["env"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["pod-logs"]["hostPath"]["path"] == "/var/log/pods"
    assert volumes["data"]["hostPath"]["path"] == params.data_host_path
    assert by_kind["ClusterRole"]["rules"][0]["verbs"] == ["get", "list", "watch"]
    binding = by_kind["ClusterRoleBinding"]
    assert binding["subjects"][0] == {"kind": "ServiceAccount", "name": params.name, "namespace": "logging"}
    node_cfg = yaml.safe_load(by_kind["ConfigMap"]["data"]["filebeat.yml"])
    assert node_cfg["filebeat.inputs"][0]["processors"][0]["add_kubernetes_metadata"]
    assert by_kind["ConfigMap"]["data"]["filebeat.yml"] == render_node_config(params.node)


def test_config_hash_changes_with_config() -> None:
    def annotation(hosts: tuple[str, ...]) -> str:
        node = NodeConfigParams(output=OutputParams(es_hosts=hosts), pod_logs=PodLogsParams(kubernetes_metadata=True))
        docs = list(yaml.safe_load_all(render_manifests(ManifestParams(image="x/y:1", node=node))))
        meta = docs[-1]["spec"]["template"]["metadata"]
        return str(meta["annotations"]["cis.io/config-hash"])

    assert annotation(("http://a:9200",)) != annotation(("http://b:9200",))


CLI_CASES = [
    ("node", ["es_hosts=http://a:9200,http://b:9200", "scan_interval_seconds=2"]),
    ("events", ["events_dir=/srv/events", "index_prefix=ev"]),
    ("manifests", ["image=x/filebeat:9.3.0", "namespace=logs", "logs_root=/data/pods"]),
]


@pytest.mark.parametrize(("kind", "params"), CLI_CASES, ids=[k for k, _ in CLI_CASES])
def test_cli_renders(kind: str, params: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out.yml"
    args = ["logging", "render", kind, "--out", str(out)]
    for p in params:
        args += ["--param", p]
    assert main(args) == 0
    assert out.read_text() == build_and_render(kind, params)
    assert list(yaml.safe_load_all(out.read_text()))


CLI_ERRORS = [
    ("node", ["es_hosts=es:9200"], "es_hosts[0]"),
    ("node", ["scan_interval_seconds=often"], "scan_interval_seconds"),
    ("node", ["nope=1"], "nope"),
    ("node", ["events_dir=/x"], "events_dir"),
    ("events", ["file_pattern=a/b"], "file_pattern"),
    ("manifests", ["namespace=logs"], "image"),
    ("manifests", ["image=x:1", "kubernetes_metadata=false"], "kubernetes_metadata"),
    ("node", ["kubernetes_metadata"], "kubernetes_metadata"),
]


@pytest.mark.parametrize(("kind", "params", "field"), CLI_ERRORS, ids=[f"{k}-{f}" for k, _, f in CLI_ERRORS])
def test_cli_errors_name_the_parameter(
    kind: str, params: list[str], field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InvalidParameter) as err:
        build_and_render(kind, params)
    assert err.value.field == field
    out = tmp_path / "never.yml"
    args = ["logging", "render", kind, "--out", str(out)]
    for p in params:
        args += ["--param", p]
    assert main(args) == 2
    assert f"invalid parameter {field}:" in capsys.readouterr().err
    assert not out.exists()
