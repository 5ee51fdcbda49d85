"""Volumes end to end on the real stack: pods on the virtual node with configMap, secret,
downwardAPI and projected volumes become CIS `files` volumes, and CIS backs every instance's
files with one Secret in the backing cluster, owned by the pod.

KWOK runs no containers, so the assertions are on the objects a kubelet would mount: the
backing pod's volumes and mounts and the files Secret's keys and bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from cis.devstack.cluster import Cluster
from cis.devstack.platform import CisProcess, cluster_pods, create_tenant, start_virtual_kubelet
from cis.devstack.processes import Process
from cis.devstack.stack import Stack
from tests.integration.helpers import Client, wait_for

NODE = "cis-vk-volumes"
NS = "vk-vol"
TENANT = "vk-vol"
POD_UID = "virtual-kubelet.io/pod-uid"
BINARY = bytes(range(256))
TOLERATE = [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class VirtualNode:
    process: Process
    cis: Client
    user: Cluster

    def json(self, *args: str) -> Any:
        return json.loads(self.user.kubectl(*args, "-o", "json"))

    def apply(self, obj: dict[str, Any]) -> None:
        self.user.kubectl("apply", "-f", "-", stdin=json.dumps(obj))

    def pod(self, name: str) -> dict[str, Any]:
        return dict(self.json("get", "pod", name, "-n", NS))

    def events(self, name: str) -> list[dict[str, Any]]:
        return list(self.json("get", "events", "-n", NS, f"--field-selector=involvedObject.name={name}")["items"])

    def instance_of(self, uid: str) -> dict[str, Any] | None:
        return next((i for i in self.cis.list_all() if i["labels"].get(POD_UID) == uid), None)


@pytest.fixture(scope="module")
def vnode(stack: Stack, cis: CisProcess) -> Iterator[VirtualNode]:
    key = create_tenant(cis, TENANT)
    stack.user.kubectl("create", "namespace", NS)
    proc = start_virtual_kubelet(stack, cis, key, node=NODE)
    node = VirtualNode(proc, Client(cis, key), stack.user)

    def ready() -> bool:
        conditions = node.json("get", "node", NODE)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    proc.wait_ready(ready, 90, "node Ready")
    # Pods that mount the service-account token wait for the namespace's ServiceAccount.
    wait_for("the default ServiceAccount", lambda: "default" in stack.user.kubectl(
        "get", "serviceaccounts", "-n", NS, "-o", "name"), 60, every=1)
    try:
        yield node
    finally:
        proc.stop()
        stack.user.kubectl("delete", "namespace", NS, "--wait=false")
        stack.user.kubectl("delete", "node", NODE, "--wait=false")


def config_map(name: str, data: dict[str, str], binary: dict[str, bytes] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NS},
                           "data": data}
    if binary:
        obj["binaryData"] = {k: b64(v) for k, v in binary.items()}
    return obj


def bare_pod(name: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": {"app": name, "tier": "web"}},
        "spec": {
            "nodeName": NODE,
            "tolerations": TOLERATE,
            "containers": [{
                "name": "main",
                "image": "busybox:1.36",
                "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}},
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        },
    }


VOLUMES = [
    {"name": "cfg", "configMap": {"name": "app-config"}},
    {"name": "creds", "secret": {"secretName": "app-secret", "defaultMode": 0o440,
                                 "items": [{"key": "password", "path": "db/password", "mode": 0o400}]}},
    {"name": "info", "downwardAPI": {"items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}},
    ]}},
    {"name": "bundle", "projected": {"sources": [
        {"configMap": {"name": "app-config", "items": [{"key": "level", "path": "config/level"}]}},
        {"secret": {"name": "app-secret", "items": [{"key": "key.bin", "path": "key.bin"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]}},
    {"name": "scratch", "emptyDir": {}},
]
MOUNTS = [
    {"name": "cfg", "mountPath": "/etc/app"},
    {"name": "creds", "mountPath": "/run/creds", "readOnly": True},
    {"name": "info", "mountPath": "/etc/podinfo"},
    {"name": "bundle", "mountPath": "/etc/bundle"},
    {"name": "scratch", "mountPath": "/scratch"},
]
# What a kubelet would write: volume -> path -> (bytes, mode).
EXPECTED: dict[str, dict[str, tuple[bytes, int]]] = {
    "cfg": {"app.yaml": (b"port: 8080\n", 0o644), "level": (b"debug", 0o644), "logo.bin": (BINARY, 0o644)},
    "creds": {"db/password": (b"s3cret", 0o400)},
    "info": {"name": (b"volumes", 0o644), "labels": (b'app="volumes"\ntier="web"', 0o644), "cpu": (b"500", 0o644)},
    "bundle": {"config/level": (b"debug", 0o644), "key.bin": (BINARY, 0o644), "namespace": (NS.encode(), 0o644)},
}


def backing_objects(stack: Stack, inst: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The instance's pod and files Secret (None once collected) in its backing cluster."""
    cluster = stack.clusters[inst["status"]["cluster"]]
    ns = f"tenant-{inst['tenant']}"
    (pod,) = cluster_pods(cluster, ns, f"cis.io/instance={inst['id']}")
    return pod, files_secret(cluster, ns, inst["id"])


def files_secret(cluster: Cluster, ns: str, instance_id: str) -> dict[str, Any] | None:
    found = json.loads(cluster.kubectl("get", "secrets", "-n", ns, "-o", "json"))["items"]
    return next((s for s in found if s["metadata"]["name"] == f"{instance_id}-files"), None)


def mounted_files(pod: dict[str, Any], secret: dict[str, Any]) -> dict[str, dict[str, tuple[bytes, int]]]:
    """What the backing kubelet would write for each secret volume of the pod."""
    out: dict[str, dict[str, tuple[bytes, int]]] = {}
    for volume in pod["spec"]["volumes"]:
        if "secret" in volume:
            assert volume["secret"]["secretName"] == secret["metadata"]["name"]
            out[volume["name"]] = {item["path"]: (base64.b64decode(secret["data"][item["key"]]), item["mode"])
                                   for item in volume["secret"]["items"]}
    return out


def test_pod_with_every_volume_kind_runs_with_its_files(vnode: VirtualNode, stack: Stack) -> None:
    vnode.apply(config_map("app-config", {"app.yaml": "port: 8080\n", "level": "debug"}, {"logo.bin": BINARY}))
    vnode.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-secret", "namespace": NS},
                 "data": {"password": b64(b"s3cret"), "key.bin": b64(BINARY)}})
    vnode.apply(bare_pod("volumes", VOLUMES, MOUNTS))
    wait_for("the pod Running", lambda: vnode.pod("volumes")["status"].get("phase") == "Running", 120, every=1)
    pod = vnode.pod("volumes")
    # The service-account token volume the apiserver added is skipped, and said so.
    assert any(v["name"].startswith("kube-api-access-") for v in pod["spec"]["volumes"])
    reasons = [e["reason"] for e in vnode.events("volumes")]
    assert "UnsupportedPodFeature" in reasons and "ProviderCreateSuccess" in reasons

    inst = wait_for("its instance Running", lambda: (
        (i := vnode.instance_of(pod["metadata"]["uid"])) is not None and i["status"].get("phase") == "Running" and i),
        60)
    # CIS shows plain files, never the contents of volumes fed by a Secret.
    got = vnode.cis.get(inst["id"])
    volumes = {v["name"]: v for v in got["spec"]["volumes"]}
    assert volumes["cfg"]["files"]["app.yaml"] == {"content": "port: 8080\n", "mode": 0o644}
    assert volumes["creds"] == {"name": "creds", "secret": True, "files": {"db/password": {"mode": 0o400}}}
    assert volumes["bundle"]["secret"] is True and "kube-api-access" not in json.dumps(got)
    assert volumes["scratch"] == {"name": "scratch", "emptyDir": {}}
    assert "s3cret" not in json.dumps(got) and b64(b"s3cret") not in json.dumps(got)

    backing_pod, secret = backing_objects(stack, inst)
    assert secret is not None
    assert mounted_files(backing_pod, secret) == EXPECTED
    assert {"name": "scratch", "emptyDir": {}} in backing_pod["spec"]["volumes"]
    assert not [v for v in backing_pod["spec"]["volumes"] if set(v) - {"name", "secret", "emptyDir"}]
    mounts = {m["name"]: m for m in backing_pod["spec"]["containers"][0]["volumeMounts"]}
    assert {n: (m["mountPath"], m.get("readOnly", False)) for n, m in mounts.items()} == {
        "cfg": ("/etc/app", True), "creds": ("/run/creds", True), "info": ("/etc/podinfo", True),
        "bundle": ("/etc/bundle", True), "scratch": ("/scratch", False)}
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Pod", "name": backing_pod["metadata"]["name"],
         "uid": backing_pod["metadata"]["uid"]}]

    # Deleting the pod deletes the instance, its backing pod and (garbage-collected) its files.
    vnode.user.kubectl("delete", "pod", "volumes", "-n", NS, "--wait=false")
    wait_for("the instance gone", lambda: vnode.instance_of(pod["metadata"]["uid"]) is None, 90, every=1)
    cluster = stack.clusters[inst["status"]["cluster"]]
    wait_for("the files Secret collected", lambda: files_secret(cluster, f"tenant-{TENANT}", inst["id"]) is None,
             90, every=1)


def test_a_missing_mandatory_configmap_keeps_the_pod_out_of_cis_until_it_exists(vnode: VirtualNode) -> None:
    volumes = [{"name": "cfg", "configMap": {"name": "late-config"}}]
    vnode.apply(bare_pod("waits", volumes, [{"name": "cfg", "mountPath": "/etc/app"}]))
    wait_for("MandatoryConfigMapNotFound", lambda: "MandatoryConfigMapNotFound" in [
        e["reason"] for e in vnode.events("waits")], 60, every=1)
    pod = vnode.pod("waits")
    assert pod["status"]["phase"] == "Pending"
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    assert waiting["reason"] == "ContainerCreating" and "late-config" in waiting["message"]
    assert vnode.instance_of(pod["metadata"]["uid"]) is None

    vnode.apply(config_map("late-config", {"a": "b"}))
    wait_for("the pod Running once the ConfigMap exists",
             lambda: vnode.pod("waits")["status"].get("phase") == "Running", 150, every=1)
    assert vnode.instance_of(pod["metadata"]["uid"]) is not None
    vnode.user.kubectl("delete", "pod", "waits", "-n", NS, "--wait=false")


def test_an_optional_missing_secret_volume_runs_empty(vnode: VirtualNode) -> None:
    volumes = [{"name": "maybe", "secret": {"secretName": "never-made", "optional": True}}]
    vnode.apply(bare_pod("optional", volumes, [{"name": "maybe", "mountPath": "/maybe"}]))
    wait_for("the pod Running", lambda: vnode.pod("optional")["status"].get("phase") == "Running", 120, every=1)
    assert "OptionalSecretNotFound" in [e["reason"] for e in vnode.events("optional")]
    inst = vnode.instance_of(vnode.pod("optional")["metadata"]["uid"])
    assert inst is not None
    assert inst["spec"]["volumes"] == [{"name": "maybe", "secret": True, "files": {}}]
    vnode.user.kubectl("delete", "pod", "optional", "-n", NS, "--wait=false")


# --- the REST API -------------------------------------------------------------------------------


@pytest.mark.usefixtures("clean_tenant")
def test_rest_instance_with_files_volumes_redacts_secrets(stack: Stack, cis: CisProcess, tenant_key: str) -> None:
    c = Client(cis, tenant_key)
    spec = {
        "containers": [{
            "name": "app",
            "image": "nginx:1.27",
            "volumeMounts": [
                {"name": "config", "mountPath": "/etc/nginx/conf.d"},
                {"name": "tls", "mountPath": "/etc/tls", "readOnly": True},
                {"name": "cache", "mountPath": "/var/cache/nginx"},
            ],
        }],
        "volumes": [
            {"name": "config", "files": {"default.conf": {"content": "server { listen 80; }\n"}}},
            {"name": "tls", "secret": True, "files": {
                "tls.key": {"content": "-----BEGIN PRIVATE KEY-----hunter2", "mode": 0o400},
                "raw.der": {"contentBase64": b64(BINARY)},
            }},
            {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimitGiB": 0.125}},
        ],
    }
    created = c.create(spec)
    for shown in (created, c.get(created["id"])):
        text = json.dumps(shown)
        assert "hunter2" not in text and b64(BINARY) not in text
        volumes = {v["name"]: v for v in shown["spec"]["volumes"]}
        assert volumes["tls"]["files"] == {"raw.der": {"mode": 0o644}, "tls.key": {"mode": 0o400}}
        assert volumes["config"]["files"]["default.conf"]["content"] == "server { listen 80; }\n"
    listed = next(i for i in c.list_all() if i["id"] == created["id"])
    assert "hunter2" not in json.dumps(listed)

    inst = c.wait_phase(created["id"], "Running", 60)
    pod, secret = backing_objects(stack, inst)
    assert secret is not None
    assert mounted_files(pod, secret) == {
        "config": {"default.conf": (b"server { listen 80; }\n", 0o644)},
        "tls": {"raw.der": (BINARY, 0o644), "tls.key": (b"-----BEGIN PRIVATE KEY-----hunter2", 0o400)},
    }
    assert {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimit": "128Mi"}} in pod["spec"]["volumes"]

    # Invalid volumes are a 400 naming the field, and nothing is created.
    bad = json.loads(json.dumps(spec))
    bad["volumes"][0]["files"] = {"../escape": {"content": "x"}}
    status, body = c.call("POST", "/v1/instances", bad)
    assert (status, body["error"]["field"]) == (400, "volumes[0].files.../escape")
    bad = json.loads(json.dumps(spec))
    bad["containers"][0]["volumeMounts"][0]["name"] = "nope"
    status, body = c.call("POST", "/v1/instances", bad)
    assert (status, body["error"]["field"]) == (400, "containers[0].volumeMounts[0].name")
    assert [i["id"] for i in c.list_all()] == [created["id"]]
