"""Volumes on the backing pod: emptyDir as emptyDir, files through one Secret per instance."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest

from cis.domain.pods import files_secret_manifest, instance_manifests, pod_manifest
from cis.domain.spec import spec_from_json

from .builders import INSTANCE_ID, container, make_instance

BINARY = bytes(range(256))


def spec(volumes: list[dict[str, Any]], *mounts: dict[str, Any]) -> dict[str, Any]:
    return {"containers": [container(volumeMounts=list(mounts)), container("side")], "volumes": volumes}


FULL = spec(
    [
        {"name": "config", "files": {"z.conf": {"content": "z"}, "a/b.bin": {"contentBase64":
                                                                            base64.b64encode(BINARY).decode(),
                                                                            "mode": 0o600}}},
        {"name": "creds", "secret": True, "files": {"token": {"content": "hunter2", "mode": 0o400}}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimitGiB": 0.25}},
        {"name": "empty", "files": {}},
    ],
    {"name": "config", "mountPath": "/etc/app"},
    {"name": "creds", "mountPath": "/run/creds", "readOnly": True},
    {"name": "scratch", "mountPath": "/tmp"},
    {"name": "shm", "mountPath": "/dev/shm", "readOnly": False},
    {"name": "config", "mountPath": "/etc/z.conf", "subPath": "z.conf"},
    {"name": "empty", "mountPath": "/empty"},
)


def test_pod_volumes() -> None:
    pod = pod_manifest(make_instance(FULL))
    secret_name = f"{INSTANCE_ID}-files"
    assert pod["spec"]["volumes"] == [
        {"name": "config", "secret": {"secretName": secret_name, "items": [
            {"key": "config.0", "path": "a/b.bin", "mode": 0o600},
            {"key": "config.1", "path": "z.conf", "mode": 0o644},
        ]}},
        {"name": "creds", "secret": {"secretName": secret_name, "items": [
            {"key": "creds.0", "path": "token", "mode": 0o400},
        ]}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
        {"name": "empty", "emptyDir": {}},
    ]


def test_pod_mounts_files_read_only() -> None:
    containers = pod_manifest(make_instance(FULL))["spec"]["containers"]
    assert containers[0]["volumeMounts"] == [
        {"name": "config", "mountPath": "/etc/app", "readOnly": True},
        {"name": "creds", "mountPath": "/run/creds", "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp", "readOnly": False},
        {"name": "shm", "mountPath": "/dev/shm", "readOnly": False},
        {"name": "config", "mountPath": "/etc/z.conf", "readOnly": True, "subPath": "z.conf"},
        {"name": "empty", "mountPath": "/empty", "readOnly": True},
    ]
    assert "volumeMounts" not in containers[1]


def test_only_safe_volume_kinds_reach_the_pod() -> None:
    pod = pod_manifest(make_instance(FULL))
    for volume in pod["spec"]["volumes"]:
        assert set(volume) - {"name"} <= {"emptyDir", "secret"}
        if "secret" in volume:  # only the instance's own Secret, and only its own files
            assert volume["secret"]["secretName"] == f"{INSTANCE_ID}-files" and volume["secret"]["items"]
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_files_secret_holds_every_file_as_bytes() -> None:
    secret = files_secret_manifest(make_instance(FULL))
    assert secret is not None
    assert secret["metadata"]["name"] == f"{INSTANCE_ID}-files"
    assert secret["metadata"]["labels"]["cis.io/instance"] == INSTANCE_ID
    decoded = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert decoded == {"config.0": BINARY, "config.1": b"z", "creds.0": b"hunter2"}


def test_files_secret_comes_before_the_pod() -> None:
    kinds = [(m["kind"], m["metadata"]["name"]) for m in instance_manifests(make_instance(FULL))]
    assert kinds.index(("Secret", f"{INSTANCE_ID}-files")) < kinds.index(("Pod", INSTANCE_ID))


@pytest.mark.parametrize("volumes", [[], [{"name": "s", "emptyDir": {}}], [{"name": "e", "files": {}}]],
                         ids=["none", "empty-dir", "empty-files"])
def test_no_files_secret_without_files(volumes: list[dict[str, Any]]) -> None:
    inst = make_instance({"containers": [container()], "volumes": volumes})
    assert files_secret_manifest(inst) is None
    assert all(m["metadata"]["name"] != f"{INSTANCE_ID}-files" for m in instance_manifests(inst))


def test_secret_files_must_be_loaded() -> None:
    inst = make_instance(FULL)
    bare = replace(inst, spec=spec_from_json(inst.spec.to_json()))
    with pytest.raises(ValueError):
        files_secret_manifest(bare)
