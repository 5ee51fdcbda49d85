"""Settings from flags and environment, event objects, and the stats summary."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.vk_provider.builders import pod
from vk_provider.events import PendingEvent, event_object
from vk_provider.instant import InstantCis
from vk_provider.main import build_parser, make_cis, settings_from_args
from vk_provider.settings import Taint
from vk_provider.stats import stats_summary

ENV = {"KUBECONFIG": "/k/config", "VKUBELET_POD_IP": "192.0.2.5", "KUBELET_PORT": "10251",
       "APISERVER_CERT_LOCATION": "/tls/crt", "APISERVER_KEY_LOCATION": "/tls/key", "CIS_API_KEY": "k"}


def test_environment_defaults_as_the_go_vk() -> None:
    s = settings_from_args(build_parser(ENV).parse_args([]), ENV)
    assert (s.kubeconfig, s.node.internal_ip, s.node.port, s.api.listen_host) == (
        Path("/k/config"), "192.0.2.5", 10251, "192.0.2.5")
    assert (s.api.tls_cert, s.api.tls_key, s.api.client_ca, s.cis.api_key) == (
        Path("/tls/crt"), Path("/tls/key"), None, "k")
    assert s.node.name == "cis-virtual-node"
    assert s.node.taints == (Taint("virtual-kubelet.io/provider", "cis", "NoSchedule"),)


def test_flags(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("secret\n")
    args = build_parser({}).parse_args([
        "--nodename", "n1", "--node-ip", "10.0.0.1", "--tls-cert", "c", "--tls-key", "k", "--client-ca", "ca",
        "--cis-target", "cis:8081", "--cis-api-key-file", str(key), "--cis-tenant", "acme", "--cpu", "64",
        "--taint", "a=b:NoExecute", "--pod-sync-workers", "4", "--listen-host", "0.0.0.0"])
    s = settings_from_args(args, {})
    assert (s.node.name, s.node.cpu, s.node.taints, s.pods.workers) == ("n1", "64", (Taint("a", "b", "NoExecute"),), 4)
    assert (s.cis.target, s.cis.api_key, s.cis.tenant, s.api.listen_host) == ("cis:8081", "secret", "acme", "0.0.0.0")
    assert "secret" not in repr(s)


@pytest.mark.parametrize("argv", [["--tls-cert", "c"], ["--tls-cert", "c", "--tls-key", "k", "--cis-target", "h:1"]],
                         ids=["no-key-pair", "no-api-key"])
def test_missing_settings_are_errors(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        settings_from_args(build_parser({}).parse_args(argv), {})


def test_instant_target_needs_no_key() -> None:
    s = settings_from_args(build_parser({}).parse_args(
        ["--tls-cert", "c", "--tls-key", "k", "--cis-target", "instant:", "--disable-taint"]), {})
    assert isinstance(make_cis(s.cis), InstantCis)
    assert s.node.taints == ()


def test_event_object() -> None:
    e = PendingEvent("default", "web-1", "uid-1", "MandatorySecretNotFound", 'secret "s" not found', True)
    obj = event_object(e, "vnode", "web-1.abc", datetime(2026, 11, 21, tzinfo=UTC))
    assert obj["involvedObject"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "web-1",
                                     "uid": "uid-1"}
    assert (obj["type"], obj["reason"], obj["count"], obj["source"]) == (
        "Warning", "MandatorySecretNotFound", 1, {"component": "virtual-kubelet", "host": "vnode"})


def test_stats_summary_lists_pods_and_containers_without_made_up_usage() -> None:
    p = pod(status={"phase": "Running", "startTime": "2026-11-21T10:00:00Z", "containerStatuses": [
        {"name": "main", "state": {"running": {"startedAt": "2026-11-21T10:00:05Z"}}}]})
    summary = stats_summary("vnode", datetime(2026, 11, 21, tzinfo=UTC), [p])
    assert summary["pods"] == [{"podRef": {"name": "web-1", "namespace": "default", "uid": "uid-1"},
                                "startTime": "2026-11-21T10:00:00Z",
                                "containers": [{"name": "main", "startTime": "2026-11-21T10:00:05Z"}]}]
