"""Instance volumes: parsing, limits, storage and REST forms, secret redaction."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest

from cis.domain.errors import InvalidInput
from cis.domain.model import decode_secret_data, secret_resource
from cis.domain.spec import (
    EmptyDirVolume,
    FilesVolume,
    StorageMedium,
    VolumeFile,
    VolumeMount,
    parse_spec,
    secret_data,
    secret_key_for_file,
    spec_fingerprint,
    spec_from_json,
)
from cis.domain.spec_volumes import MAX_FILE_BYTES, MAX_FILES, MAX_VOLUMES

from .builders import container, make_instance

BINARY = bytes(range(256))
B64 = base64.b64encode(BINARY).decode()


def body(volumes: Any, mounts: Any = None, **extra: Any) -> dict[str, Any]:
    c = container(volumeMounts=mounts) if mounts is not None else container()
    return {"containers": [c], "volumes": volumes, **extra}


WITH_VOLUMES = body(
    [
        {"name": "config", "files": {"app.yaml": {"content": "port: 80\n"}, "bin/tool": {"contentBase64": B64,
                                                                                      "mode": 0o755}}},
        {"name": "creds", "secret": True, "files": {"token": {"content": "hunter2", "mode": 0o400}}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "cache", "emptyDir": {"medium": "Memory", "sizeLimitGiB": 0.25}},
    ],
    [
        {"name": "config", "mountPath": "/etc/app"},
        {"name": "creds", "mountPath": "/run/creds", "readOnly": True},
        {"name": "scratch", "mountPath": "/tmp"},
        {"name": "cache", "mountPath": "/cache", "subPath": "web"},
        {"name": "config", "mountPath": "/etc/app.yaml", "subPath": "app.yaml"},
    ],
)


def test_volumes_parse() -> None:
    spec = parse_spec(WITH_VOLUMES)
    config, creds, scratch, cache = spec.volumes
    assert config == FilesVolume("config", (VolumeFile("app.yaml", b"port: 80\n", 0o644),
                                            VolumeFile("bin/tool", BINARY, 0o755)))
    assert creds == FilesVolume("creds", (VolumeFile("token", b"hunter2", 0o400),), secret=True)
    assert scratch == EmptyDirVolume("scratch")
    assert cache == EmptyDirVolume("cache", StorageMedium.MEMORY, Decimal("0.25"))
    mounts = spec.containers[0].volume_mounts
    assert mounts[1] == VolumeMount("creds", "/run/creds", read_only=True)
    assert mounts[3] == VolumeMount("cache", "/cache", sub_path="web")
    assert spec.has_secrets


def test_files_are_sorted_by_path() -> None:
    spec = parse_spec(body([{"name": "v", "files": {"b": {"content": ""}, "a": {"content": ""}}}]))
    volume = spec.volumes[0]
    assert isinstance(volume, FilesVolume) and [f.path for f in volume.files] == ["a", "b"]


def test_secret_file_contents_are_never_serialised() -> None:
    spec = parse_spec(WITH_VOLUMES)
    for form in (spec.to_json(), spec.to_public_json()):
        text = json.dumps(form)
        assert "hunter2" not in text and base64.b64encode(b"hunter2").decode() not in text
        assert form["volumes"][1] == {"name": "creds", "secret": True, "files": {"token": {"mode": 0o400}}}
    assert "hunter2" not in repr(spec)


def test_public_form_shows_text_as_content_and_binary_as_base64() -> None:
    public = parse_spec(WITH_VOLUMES).to_public_json()["volumes"][0]["files"]
    assert public == {"app.yaml": {"content": "port: 80\n", "mode": 0o644},
                      "bin/tool": {"contentBase64": B64, "mode": 0o755}}


def test_storage_form_keeps_plain_files_as_base64() -> None:
    stored = parse_spec(WITH_VOLUMES).to_json()["volumes"][0]["files"]
    assert stored["app.yaml"] == {"contentBase64": base64.b64encode(b"port: 80\n").decode(), "mode": 0o644}


def test_storage_round_trip_with_and_without_secrets() -> None:
    spec = parse_spec(WITH_VOLUMES)
    stored = json.loads(json.dumps(spec.to_json()))
    assert spec_from_json(stored, secret_data(spec)) == spec
    bare = spec_from_json(stored)
    assert bare.to_json() == spec.to_json()
    creds = bare.volumes[1]
    assert isinstance(creds, FilesVolume) and creds.files[0].data is None
    with pytest.raises(ValueError):
        secret_data(bare)


def test_the_public_form_is_valid_input_again() -> None:
    plain = body([{"name": "config", "files": {"a": {"content": "x"}, "b": {"contentBase64": B64}}}])
    spec = parse_spec(plain)
    assert parse_spec(spec.to_public_json()) == spec


def test_secret_files_live_in_the_instance_secret_as_bytes() -> None:
    raw = body([{"name": "creds", "secret": True, "files": {"key.bin": {"contentBase64": B64}}}])
    inst = make_instance(raw)
    key = secret_key_for_file("creds", "key.bin")
    assert secret_data(inst.spec) == {key: B64}
    secret = secret_resource(inst)
    assert secret is not None and base64.b64decode(secret["data"][key]) == BINARY
    # Read back, the Secret gives the spec its content again.
    loaded = spec_from_json(inst.spec.to_json(), decode_secret_data(secret))
    assert loaded == inst.spec


def test_fingerprint_covers_file_contents() -> None:
    base = parse_spec(WITH_VOLUMES)
    changed_secret = json.loads(json.dumps(WITH_VOLUMES))
    changed_secret["volumes"][1]["files"]["token"]["content"] = "other"
    changed_plain = json.loads(json.dumps(WITH_VOLUMES))
    changed_plain["volumes"][0]["files"]["app.yaml"]["content"] = "port: 81\n"
    fingerprints = {spec_fingerprint(s) for s in (base, parse_spec(changed_secret), parse_spec(changed_plain))}
    assert len(fingerprints) == 3
    assert spec_fingerprint(base) == spec_fingerprint(parse_spec(json.loads(json.dumps(WITH_VOLUMES))))


def test_content_and_base64_of_the_same_bytes_are_the_same_spec() -> None:
    a = parse_spec(body([{"name": "v", "files": {"f": {"content": "hi"}}}]))
    b = parse_spec(body([{"name": "v", "files": {"f": {"contentBase64": "aGk="}}}]))
    assert a == b and spec_fingerprint(a) == spec_fingerprint(b)


def test_an_empty_files_volume_is_allowed() -> None:
    spec = parse_spec(body([{"name": "v", "files": {}}], [{"name": "v", "mountPath": "/v"}]))
    assert spec.volumes == (FilesVolume("v"),)


def test_limits_allow_exactly_the_maximum() -> None:
    size = MAX_FILE_BYTES // 2
    files = {"a": {"contentBase64": base64.b64encode(b"x" * size).decode()}, "b": {"content": "y" * size}}
    parse_spec(body([{"name": "v", "files": files}]))
    parse_spec(body([{"name": f"v{i}", "emptyDir": {}} for i in range(MAX_VOLUMES)]))


def files(n: int) -> dict[str, Any]:
    return {f"f{i}": {"content": ""} for i in range(n)}


def vol(**kind: Any) -> list[dict[str, Any]]:
    return [{"name": "v", **kind}]


def mount(**m: Any) -> list[dict[str, Any]]:
    return [{"name": "v", "mountPath": "/v", **m}]


HALF = "x" * (MAX_FILE_BYTES // 2)

INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("volumes-not-list", body({"name": "v"}), "volumes"),
    ("too-many-volumes", body([{"name": f"v{i}", "emptyDir": {}} for i in range(MAX_VOLUMES + 1)]), "volumes"),
    ("volume-not-object", body(["v"]), "volumes[0]"),
    ("volume-missing-name", body([{"emptyDir": {}}]), "volumes[0].name"),
    ("volume-name-upper", body([{"name": "Config", "emptyDir": {}}]), "volumes[0].name"),
    ("volume-name-dots", body([{"name": "a.b", "emptyDir": {}}]), "volumes[0].name"),
    ("volume-duplicate", body([{"name": "v", "emptyDir": {}}, {"name": "v", "files": {}}]), "volumes[1].name"),
    ("volume-unknown-field", body(vol(hostPath={"path": "/"})), "volumes[0].hostPath"),
    ("volume-no-kind", body(vol()), "volumes[0]"),
    ("volume-two-kinds", body(vol(emptyDir={}, files={})), "volumes[0]"),
    ("secret-emptydir", body(vol(emptyDir={}, secret=True)), "volumes[0].secret"),
    ("secret-not-bool", body(vol(files={}, secret="yes")), "volumes[0].secret"),
    ("emptydir-not-object", body(vol(emptyDir=[])), "volumes[0].emptyDir"),
    ("emptydir-unknown", body(vol(emptyDir={"sizeLimit": "1Gi"})), "volumes[0].emptyDir.sizeLimit"),
    ("emptydir-medium", body(vol(emptyDir={"medium": "HugePages"})), "volumes[0].emptyDir.medium"),
    ("emptydir-size-zero", body(vol(emptyDir={"sizeLimitGiB": 0})), "volumes[0].emptyDir.sizeLimitGiB"),
    ("emptydir-size-huge", body(vol(emptyDir={"sizeLimitGiB": 51})), "volumes[0].emptyDir.sizeLimitGiB"),
    ("emptydir-size-garbage", body(vol(emptyDir={"sizeLimitGiB": "big"})), "volumes[0].emptyDir.sizeLimitGiB"),
    ("files-not-object", body(vol(files=["a"])), "volumes[0].files"),
    ("file-absolute", body(vol(files={"/etc/passwd": {"content": ""}})), "volumes[0].files./etc/passwd"),
    ("file-dotdot", body(vol(files={"a/../../b": {"content": ""}})), "volumes[0].files.a/../../b"),
    ("file-dotdot-prefix", body(vol(files={"..data": {"content": ""}})), "volumes[0].files...data"),
    ("file-dot", body(vol(files={"./a": {"content": ""}})), "volumes[0].files../a"),
    ("file-empty-component", body(vol(files={"a//b": {"content": ""}})), "volumes[0].files.a//b"),
    ("file-trailing-slash", body(vol(files={"a/": {"content": ""}})), "volumes[0].files.a/"),
    ("file-empty-path", body(vol(files={"": {"content": ""}})), "volumes[0].files"),
    ("file-nul", body(vol(files={"a\x00b": {"content": ""}})), "volumes[0].files.a\x00b"),
    ("file-long-path", body(vol(files={"a" * 1025: {"content": ""}})), "volumes[0].files." + "a" * 1025),
    ("file-not-object", body(vol(files={"a": "text"})), "volumes[0].files.a"),
    ("file-unknown-field", body(vol(files={"a": {"value": "x"}})), "volumes[0].files.a.value"),
    ("file-no-content", body(vol(files={"a": {"mode": 420}})), "volumes[0].files.a"),
    ("file-both-contents", body(vol(files={"a": {"content": "", "contentBase64": ""}})), "volumes[0].files.a"),
    ("file-content-not-string", body(vol(files={"a": {"content": 5}})), "volumes[0].files.a.content"),
    ("file-bad-base64", body(vol(files={"a": {"contentBase64": "not base64!"}})), "volumes[0].files.a.contentBase64"),
    ("file-unpadded-base64", body(vol(files={"a": {"contentBase64": "aGk"}})), "volumes[0].files.a.contentBase64"),
    ("file-mode-too-big", body(vol(files={"a": {"content": "", "mode": 0o1777}})), "volumes[0].files.a.mode"),
    ("file-mode-negative", body(vol(files={"a": {"content": "", "mode": -1}})), "volumes[0].files.a.mode"),
    ("file-mode-string", body(vol(files={"a": {"content": "", "mode": "0644"}})), "volumes[0].files.a.mode"),
    ("file-and-directory", body(vol(files={"a": {"content": ""}, "a/b": {"content": ""}})), "volumes[0].files.a/b"),
    ("secret-stored-form", body(vol(secret=True, files={"a": {"mode": 420}})), "volumes[0].files.a"),
    (
        "too-many-bytes",
        body([{"name": "a", "files": {"x": {"content": HALF}}},
              {"name": "b", "files": {"y": {"content": HALF + "!"}}}]),
        "volumes[1].files.y",
    ),
    (
        "too-many-files",
        body([{"name": "a", "files": files(MAX_FILES)}, {"name": "b", "files": {"z": {"content": ""}}}]),
        "volumes[1].files.z",
    ),
    ("mounts-not-list", body(vol(emptyDir={}), {"name": "v"}), "containers[0].volumeMounts"),
    ("mount-not-object", body(vol(emptyDir={}), ["v"]), "containers[0].volumeMounts[0]"),
    ("mount-no-name", body(vol(emptyDir={}), [{"mountPath": "/v"}]), "containers[0].volumeMounts[0].name"),
    ("mount-no-path", body(vol(emptyDir={}), [{"name": "v"}]), "containers[0].volumeMounts[0].mountPath"),
    ("mount-unknown-volume", body(vol(emptyDir={}), [{"name": "w", "mountPath": "/w"}]),
     "containers[0].volumeMounts[0].name"),
    ("mount-no-volumes", body(None, mount()), "containers[0].volumeMounts[0].name"),
    ("mount-relative", body(vol(emptyDir={}), [{"name": "v", "mountPath": "data"}]),
     "containers[0].volumeMounts[0].mountPath"),
    ("mount-root", body(vol(emptyDir={}), [{"name": "v", "mountPath": "/"}]),
     "containers[0].volumeMounts[0].mountPath"),
    ("mount-dotdot", body(vol(emptyDir={}), [{"name": "v", "mountPath": "/a/../etc"}]),
     "containers[0].volumeMounts[0].mountPath"),
    ("mount-twice", body(vol(emptyDir={}), [*mount(), {"name": "v", "mountPath": "/v/"}]),
     "containers[0].volumeMounts[1].mountPath"),
    ("mount-unknown-field", body(vol(emptyDir={}), mount(mountPropagation="Bidirectional")),
     "containers[0].volumeMounts[0].mountPropagation"),
    ("mount-readonly-string", body(vol(emptyDir={}), mount(readOnly="true")), "containers[0].volumeMounts[0].readOnly"),
    ("mount-files-writable", body(vol(files={}), mount(readOnly=False)), "containers[0].volumeMounts[0].readOnly"),
    ("mount-subpath-absolute", body(vol(emptyDir={}), mount(subPath="/etc")), "containers[0].volumeMounts[0].subPath"),
    ("mount-subpath-escape", body(vol(emptyDir={}), mount(subPath="../x")), "containers[0].volumeMounts[0].subPath"),
    ("mount-subpath-not-string", body(vol(emptyDir={}), mount(subPath=1)), "containers[0].volumeMounts[0].subPath"),
]


@pytest.mark.parametrize(("raw", "field"), [(b, f) for _, b, f in INVALID], ids=[i for i, _, _ in INVALID])
def test_invalid_volumes_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec(raw)
    assert err.value.field == field, err.value.message
    assert err.value.to_json()["error"]["field"] == field


def test_stored_secret_volume_reads_its_content_from_the_secrets() -> None:
    stored = body([{"name": "creds", "secret": True, "files": {"a": {"mode": 256}}}])
    key = secret_key_for_file("creds", "a")
    spec = spec_from_json(stored, {key: base64.b64encode(b"pw").decode()})
    assert spec.volumes == (FilesVolume("creds", (VolumeFile("a", b"pw", 256),), secret=True),)
