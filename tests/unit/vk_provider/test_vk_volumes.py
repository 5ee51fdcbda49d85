"""Volume resolution: each kind, items and modes, missing references and their event reasons,
and the instance spec CIS accepts."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from cis.domain.spec import FilesVolume, parse_spec
from tests.unit.vk_provider.builders import pod
from tests.unit.vk_provider.test_vk_pod_controller import FakeApiserver, eventually, running
from vk_provider.env import CONFIGMAP, SECRET, EnvVar, FetchFailed, Ref
from vk_provider.instant import InstantCis
from vk_provider.translate import instance_spec, pod_problems
from vk_provider.volumes import (
    FileLookup,
    configmap_files,
    file_data,
    format_map,
    references,
    resolve_pod_volumes,
    secret_files,
)

BINARY = bytes(range(256))
CM: dict[str, bytes] = {"app.yaml": b"port: 80\n", "log.level": b"debug", "blob": BINARY}
SEC: dict[str, bytes] = {"username": b"admin", "password": b"s3cret"}
FOUND: dict[Ref, FileLookup] = {(CONFIGMAP, "cm"): CM, (SECRET, "sec"): SEC}


def with_volumes(*volumes: dict[str, Any], mounts: list[dict[str, Any]] | None = None,
                 containers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if mounts is None:
        mounts = [{"name": v["name"], "mountPath": f"/mnt/{v['name']}"} for v in volumes]
    if containers is None:
        containers = [{"name": "main", "image": "nginx:1.27", "volumeMounts": mounts,
                       "resources": {"limits": {"cpu": "500m", "memory": "256Mi"}}}]
    return pod(containers=containers, volumes=list(volumes))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def files_of(p: dict[str, Any], lookups: dict[Ref, FileLookup] = FOUND) -> dict[str, dict[str, Any]]:
    """name -> {path: (bytes, mode)} of the resolved volumes, asserting nothing was fatal."""
    res = resolve_pod_volumes(p, lookups)
    assert not res.fatal, res.fatal
    out: dict[str, Any] = {}
    for v in res.volumes:
        if "files" in v:
            out[v["name"]] = {path: (base64.b64decode(f["contentBase64"]), f["mode"]) for path, f in v["files"].items()}
    return out


def test_configmap_volume_has_every_key_with_binary_data_intact() -> None:
    got = files_of(with_volumes({"name": "cfg", "configMap": {"name": "cm"}}))
    assert got == {"cfg": {k: (v, 0o644) for k, v in CM.items()}}


def test_items_select_and_rename_keys_with_modes() -> None:
    volume = {"name": "cfg", "configMap": {"name": "cm", "defaultMode": 0o600, "items": [
        {"key": "app.yaml", "path": "conf/app.yaml"},
        {"key": "blob", "path": "bin/blob", "mode": 0o755},
    ]}}
    assert files_of(with_volumes(volume)) == {"cfg": {"conf/app.yaml": (CM["app.yaml"], 0o600),
                                                      "bin/blob": (BINARY, 0o755)}}


def test_secret_volume_is_a_secret_cis_volume() -> None:
    res = resolve_pod_volumes(with_volumes({"name": "creds", "secret": {"secretName": "sec", "defaultMode": 0o400}}),
                              FOUND)
    (volume,) = res.volumes
    assert volume["secret"] is True
    assert {k: (base64.b64decode(f["contentBase64"]), f["mode"]) for k, f in volume["files"].items()} == {
        "username": (b"admin", 0o400), "password": (b"s3cret", 0o400)}


def test_downward_api_volume() -> None:
    volume = {"name": "info", "downwardAPI": {"defaultMode": 0o444, "items": [
        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
        {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}},
        {"path": "uid", "fieldRef": {"fieldPath": "metadata.uid"}, "mode": 0o400},
        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
        {"path": "team", "fieldRef": {"fieldPath": "metadata.annotations['team']"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.cpu", "divisor": "1m"}},
        {"path": "mem", "resourceFieldRef": {"containerName": "main", "resource": "limits.memory",
                                             "divisor": "1Mi"}},
    ]}}
    assert files_of(with_volumes(volume)) == {"info": {
        "name": (b"web-1", 0o444), "ns": (b"default", 0o444), "uid": (b"uid-1", 0o400),
        "labels": (b'app="web"', 0o444), "team": (b"a", 0o444), "cpu": (b"500", 0o444), "mem": (b"256", 0o444),
    }}


def test_labels_and_annotations_are_written_as_the_kubelet_does() -> None:
    assert format_map({"b": 'say "hi"', "a": "x\ny"}) == 'a="x\\ny"\nb="say \\"hi\\""'


def test_unsupported_downward_fields_are_left_out_with_an_event() -> None:
    volume = {"name": "info", "downwardAPI": {"items": [
        {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}},
        {"path": "gpu", "resourceFieldRef": {"containerName": "main", "resource": "limits.nvidia.com/gpu"}},
    ]}}
    res = resolve_pod_volumes(with_volumes(volume), FOUND)
    assert res.volumes[0]["files"] == {} and not res.fatal
    assert [e.reason for e in res.events] == ["UnsupportedFieldPath", "UnsupportedResourceFieldRef"]


def test_projected_volume_merges_its_sources() -> None:
    volume = {"name": "all", "projected": {"defaultMode": 0o440, "sources": [
        {"configMap": {"name": "cm", "items": [{"key": "log.level", "path": "level"}]}},
        {"secret": {"name": "sec", "items": [{"key": "password", "path": "pw", "mode": 0o400}]}},
        {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"serviceAccountToken": {"path": "token"}},
    ]}}
    res = resolve_pod_volumes(with_volumes(volume), FOUND)
    (resolved,) = res.volumes
    assert resolved["secret"] is True  # one secret source makes the whole volume write-only
    assert files_of(with_volumes(volume)) == {"all": {"level": (b"debug", 0o440), "pw": (b"s3cret", 0o400),
                                                      "name": (b"web-1", 0o440)}}


def test_emptydir() -> None:
    p = with_volumes({"name": "a", "emptyDir": {}},
                     {"name": "b", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}})
    assert resolve_pod_volumes(p, {}).volumes == (
        {"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {"medium": "Memory", "sizeLimitGiB": "0.0625"}})


@pytest.mark.parametrize(("volume", "reason", "fatal"), [
    ({"configMap": {"name": "nope"}}, "MandatoryConfigMapNotFound", True),
    ({"configMap": {"name": "nope", "optional": True}}, "OptionalConfigMapNotFound", False),
    ({"secret": {"secretName": "nope"}}, "MandatorySecretNotFound", True),
    ({"secret": {"secretName": "nope", "optional": True}}, "OptionalSecretNotFound", False),
    ({"configMap": {"name": "cm", "items": [{"key": "nope", "path": "x"}]}}, "MandatoryConfigMapKeyNotFound", True),
    ({"configMap": {"name": "cm", "optional": True, "items": [{"key": "nope", "path": "x"}]}},
     "OptionalConfigMapKeyNotFound", False),
    ({"secret": {"secretName": "sec", "items": [{"key": "nope", "path": "x"}]}}, "MandatorySecretKeyNotFound", True),
    ({"projected": {"sources": [{"configMap": {"name": "nope"}}]}}, "MandatoryConfigMapNotFound", True),
    ({"projected": {"sources": [{"secret": {"name": "nope", "optional": True}}]}}, "OptionalSecretNotFound", False),
    ({"secret": {"secretName": "locked"}}, "FailedToReadMandatorySecret", True),
], ids=["cm", "cm-optional", "secret", "secret-optional", "cm-key", "cm-key-optional", "secret-key",
        "projected-cm", "projected-secret-optional", "forbidden"])
def test_missing_references_give_kubernetes_reasons(volume: dict[str, Any], reason: str, fatal: bool) -> None:
    lookups: dict[Ref, FileLookup] = {**FOUND, (SECRET, "locked"): FetchFailed("forbidden")}
    res = resolve_pod_volumes(with_volumes({"name": "v", **volume}), lookups)
    assert [e.reason for e in res.events] == [reason]
    assert res.events[0].message.startswith('volume "v": ')
    assert bool(res.fatal) is fatal
    if not fatal:
        assert res.volumes[0]["files"] == {}  # an optional source that is missing adds no files


def test_references_name_mounted_sources_only() -> None:
    p = with_volumes(
        {"name": "a", "configMap": {"name": "c1"}},
        {"name": "b", "secret": {"secretName": "s1"}},
        {"name": "c", "projected": {"sources": [{"configMap": {"name": "c2"}}, {"secret": {"name": "s2"}}]}},
        {"name": "kube-api-access-x1", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}}]}},
        {"name": "unmounted", "configMap": {"name": "c3"}},
        mounts=[{"name": n, "mountPath": f"/{n}"} for n in ("a", "b", "c", "kube-api-access-x1")],
    )
    assert references(p) == {(CONFIGMAP, "c1"), (CONFIGMAP, "c2"), (SECRET, "s1"), (SECRET, "s2")}
    names = [v["name"] for v in resolve_pod_volumes(p, {}).volumes]
    assert names == ["a", "b", "c"]  # the token volume is skipped, the unmounted one ignored


def test_file_data_decodes_binary() -> None:
    cm = {"data": {"a": "text"}, "binaryData": {"b": b64(BINARY)}}
    secret = {"data": {"c": b64(BINARY)}, "stringData": {"d": "plain"}}
    assert configmap_files(cm) == {"a": b"text", "b": BINARY}
    assert secret_files(secret) == {"c": BINARY, "d": b"plain"}
    assert file_data(SECRET, None) is None
    failed = FetchFailed("x")
    assert file_data(CONFIGMAP, failed) is failed


FULL_POD_VOLUMES = (
    {"name": "cfg", "configMap": {"name": "cm"}},
    {"name": "creds", "secret": {"secretName": "sec"}},
    {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
    {"name": "scratch", "emptyDir": {}},
    {"name": "kube-api-access-abc", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
)


def test_instance_spec_carries_volumes_and_mounts_cis_accepts() -> None:
    mounts = [
        {"name": "cfg", "mountPath": "/etc/app", "readOnly": True},
        {"name": "creds", "mountPath": "/run/creds"},
        {"name": "info", "mountPath": "/etc/podinfo"},
        {"name": "scratch", "mountPath": "/data", "subPathExpr": "$(POD)/cache"},
        {"name": "kube-api-access-abc", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
    ]
    p = with_volumes(*FULL_POD_VOLUMES, mounts=mounts)
    res = resolve_pod_volumes(p, FOUND)
    body = instance_spec(p, "vnode", {"main": (EnvVar("POD", "web-1"),)}, volumes=res)
    assert [v["name"] for v in body["volumes"]] == ["cfg", "creds", "info", "scratch"]
    assert body["containers"][0]["volumeMounts"] == [
        {"name": "cfg", "mountPath": "/etc/app", "readOnly": True},
        {"name": "creds", "mountPath": "/run/creds"},
        {"name": "info", "mountPath": "/etc/podinfo"},
        {"name": "scratch", "mountPath": "/data", "subPath": "web-1/cache"},
    ]
    spec = parse_spec(body)  # what CIS will make of it
    creds = spec.volume("creds")
    assert isinstance(creds, FilesVolume) and creds.secret
    cfg = spec.volume("cfg")
    assert isinstance(cfg, FilesVolume) and {f.path: f.data for f in cfg.files} == CM
    assert "s3cret" not in str(spec.to_public_json())


def test_pod_problems_of_volumes() -> None:
    p = with_volumes(
        {"name": "all", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}},
                                                  {"clusterTrustBundle": {"path": "ca"}}]}},
        {"name": "huge", "emptyDir": {"medium": "HugePages"}},
        {"name": "nfs", "nfs": {"server": "x", "path": "/"}},
    )
    problems = {(p.feature, p.fatal) for p in pod_problems(p)}
    assert problems == {("serviceAccountToken", False), ("volumes", True)}
    assert len([p for p in pod_problems(p) if p.feature == "volumes"]) == 3


def test_block_devices_and_mount_propagation_are_reported() -> None:
    containers = [{"name": "main", "image": "x", "volumeDevices": [{"name": "d", "devicePath": "/dev/xvda"}],
                   "volumeMounts": [{"name": "s", "mountPath": "/s", "mountPropagation": "HostToContainer"}]}]
    p = with_volumes({"name": "s", "emptyDir": {}}, containers=containers)
    assert {(x.feature, x.fatal) for x in pod_problems(p)} == {("volumeDevices", True), ("mountPropagation", False)}


async def test_a_missing_mandatory_configmap_volume_keeps_the_pod_out_of_cis() -> None:
    api, cis = FakeApiserver(), InstantCis()
    api.add(with_volumes({"name": "cfg", "configMap": {"name": "absent"}}))

    def waiting_reason() -> str | None:
        statuses = api.pods["default/web-1"]["status"].get("containerStatuses") or [{}]
        return str(statuses[0].get("state", {}).get("waiting", {}).get("reason"))

    async with running(api, cis):
        await eventually("ContainerCreating", lambda: waiting_reason() == "ContainerCreating")
        await eventually("the event", lambda: any(e["reason"] == "MandatoryConfigMapNotFound" for e in api.events))
        await asyncio.sleep(0.3)  # several retries
    assert cis.calls["create"] == 0
