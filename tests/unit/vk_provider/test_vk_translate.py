"""Pod -> instance spec translation, unsupported features, pull secrets and quantities."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.unit.vk_provider.builders import pod
from vk_provider.env import EnvVar
from vk_provider.translate import (
    LABEL_NODE,
    LABEL_POD_KEY,
    LABEL_POD_NAME,
    LABEL_POD_UID,
    client_token,
    instance_spec,
    pod_problems,
    registry_credentials,
)


def test_a_simple_pod_becomes_a_valid_instance_spec() -> None:
    p = pod(containers=[{
        "name": "main", "image": "nginx:1.27", "command": ["sh", "-c"], "args": ["echo $(GREETING) $$HOME"],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1"}},
        "ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}],
    }], restartPolicy="OnFailure", activeDeadlineSeconds=600)
    env = {"main": (EnvVar("GREETING", "hi"), EnvVar("PW", "x", secret=True))}
    spec = instance_spec(p, "vnode", env)
    assert spec == {
        "name": "web-1",
        "containers": [{
            "name": "main", "image": "nginx:1.27", "command": ["sh", "-c"], "args": ["echo hi $HOME"],
            "env": [{"name": "GREETING", "value": "hi"}, {"name": "PW", "secretValue": "x"}],
            "resources": {"cpu": "1", "memoryGiB": "0.25"},
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
        }],
        "restartPolicy": "OnFailure",
        "activeDeadlineSeconds": 600,
        "labels": {LABEL_NODE: "vnode", "virtual-kubelet.io/namespace": "default",
                   LABEL_POD_KEY: spec["labels"][LABEL_POD_KEY], LABEL_POD_UID: "uid-1", LABEL_POD_NAME: "web-1"},
        "clientToken": client_token("default", "web-1", "uid-1"),
    }


def test_the_client_token_is_stable_per_pod_and_differs_between_pods() -> None:
    assert client_token("ns", "a", "u1") == client_token("ns", "a", "u1")
    assert len({client_token("ns", "a", "u1"), client_token("ns", "a", "u2"), client_token("ns2", "a", "u1")}) == 3
    assert len(client_token("ns", "a", "u1")) == 64


def test_long_pod_names_leave_out_name_fields() -> None:
    spec = instance_spec(pod("x" * 70 + ".y"), "vnode", {})
    assert "name" not in spec and LABEL_POD_NAME not in spec["labels"]
    assert len(spec["labels"][LABEL_POD_KEY]) == 40


def test_ports_repeated_across_containers_are_sent_once() -> None:
    p = pod(containers=[{"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
                        {"name": "b", "image": "y", "ports": [{"containerPort": 80}]}])
    spec = instance_spec(p, "vnode", {})
    assert [c.get("ports") for c in spec["containers"]] == [[{"port": 80, "protocol": "TCP"}], None]


def test_no_resources_means_cis_defaults() -> None:
    assert "resources" not in instance_spec(pod(), "vnode", {})["containers"][0]


def sa_volume() -> dict[str, Any]:
    return {"volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": []}}]}


def mounted(volume: str) -> list[dict[str, Any]]:
    return [{"name": "main", "image": "x", "volumeMounts": [{"name": volume, "mountPath": "/v"}]}]


@pytest.mark.parametrize(("spec", "containers", "features", "fatal"), [
    ({}, None, [], False),
    ({"initContainers": [{"name": "i", "image": "x"}]}, None, ["initContainers"], True),
    ({"hostNetwork": True}, None, ["hostNetwork"], True),
    ({}, [{"name": "main", "image": "x", "securityContext": {"privileged": True}}], ["privileged"], True),
    ({}, [{"name": "main", "image": "x", "securityContext": {"runAsUser": 1000}}], ["securityContext"], False),
    ({}, [{"name": "main", "image": "x", "readinessProbe": {"exec": {}}}], ["readinessProbe"], False),
    ({}, [{"name": "main", "image": "x", "resources": {"limits": {"nvidia.com/gpu": "1"}}}], ["resources"], True),
    (sa_volume(), mounted("kube-api-access-abcde"), ["serviceAccountToken"], False),
    ({"volumes": [{"name": "scratch", "emptyDir": {}}]}, mounted("scratch"), [], False),
    ({"volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}, mounted("cfg"), [], False),
    ({"volumes": [{"name": "data", "hostPath": {"path": "/var"}}]}, mounted("data"), ["volumes"], True),
    ({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]}, mounted("data"), ["volumes"],
     True),
    ({"volumes": [{"name": "data", "hostPath": {"path": "/var"}}]}, None, [], False),
], ids=["plain", "init", "host-network", "privileged", "security-context", "probe", "gpu", "sa-token",
        "empty-dir", "configmap-volume", "host-path", "pvc", "unmounted-volume"])
def test_pod_problems(spec: dict[str, Any], containers: list[dict[str, Any]] | None, features: list[str],
                      fatal: bool) -> None:
    problems = pod_problems(pod(containers=containers, **spec))
    assert [p.feature for p in problems] == features
    assert any(p.fatal for p in problems) is fatal


def dockerconfig(auths: dict[str, Any], key: str = ".dockerconfigjson") -> dict[str, Any]:
    doc = {"auths": auths} if key == ".dockerconfigjson" else auths
    return {"data": {key: base64.b64encode(json.dumps(doc).encode()).decode()}}


def test_registry_credentials_from_pull_secrets() -> None:
    auth = base64.b64encode(b"bob:pw2").decode()
    secrets = [dockerconfig({"https://registry.example:5000/v1/": {"username": "alice", "password": "pw1"}}),
               dockerconfig({"quay.example": {"auth": auth}}, key=".dockercfg"),
               {"data": {}}]
    assert registry_credentials(secrets) == [
        {"server": "registry.example:5000", "username": "alice", "password": "pw1"},
        {"server": "quay.example", "username": "bob", "password": "pw2"},
    ]
