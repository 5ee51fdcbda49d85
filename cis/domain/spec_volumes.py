"""Validation of an instance's ``volumes`` and its containers' ``volumeMounts``.

The engine behind ``spec_parse`` for these two fields (see ``spec`` for the wire form).
Limits are module constants so the API can publish them; each is chosen so an instance
still fits the objects that carry it:

- ``MAX_FILE_BYTES`` (512 KiB, all files of all volumes): the backing cluster holds every
  file in one Secret (1 MiB at most), plain files travel base64 in the CR (etcd's request
  limit is 1.5 MiB, and command, args and env take up to 256 KiB more), and secret files
  share the management-cluster Secret with secret env values and registry passwords.
- ``MAX_VOLUMES`` 20: ACI's and Alibaba ECI's per-group limit.

A ``Memory`` emptyDir is a tmpfs whose pages count against the instance's memory, so it
never outgrows the instance whatever its ``sizeLimitGiB`` (as in Kubernetes, where its size
is the smaller of the two).

Files volumes are read-only (like Kubernetes' secret and configMap volumes): a mount that
asks for ``readOnly: false`` is an error rather than silently read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from cis.domain.errors import InvalidInput
from cis.domain.jsonread import join, read_decimal, read_int, read_list, read_object, read_str
from cis.domain.spec import (
    DEFAULT_FILE_MODE,
    Container,
    EmptyDirVolume,
    FilesVolume,
    StorageMedium,
    Volume,
    VolumeFile,
    VolumeMount,
    decode_base64,
    secret_key_for_file,
)
from cis.domain.syntax import is_dns1123_label, mount_path_problem, relative_path_problem

MAX_VOLUMES = 20
MAX_FILES = 1024  # all volumes together
MAX_FILE_BYTES = 512 * 1024  # all files of all volumes together, decoded
MAX_MOUNTS_PER_CONTAINER = 64
MAX_EMPTY_DIR_GIB = Decimal(50)  # ACI's storage per container group
MAX_FILE_MODE = 0o777

_VOLUME_DNS_MSG = (
    "must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)


class _FileBudget:
    """Counts files and their bytes against MAX_FILES and MAX_FILE_BYTES."""

    def __init__(self) -> None:
        self.files = 0
        self.bytes = 0

    def spend(self, size: int, path: str) -> None:
        self.files += 1
        self.bytes += size
        if self.files > MAX_FILES:
            raise InvalidInput(path, f"volumes may hold at most {MAX_FILES} files together")
        if self.bytes > MAX_FILE_BYTES:
            raise InvalidInput(path, f"files of all volumes together exceed {MAX_FILE_BYTES} bytes")


def parse_volumes(raw: Any, *, stored: bool, secrets: Mapping[str, str] | None) -> tuple[Volume, ...]:
    if raw is None:
        return ()
    budget = _FileBudget()
    result: list[Volume] = []
    for i, raw_v in enumerate(read_list(raw, "volumes", max_items=MAX_VOLUMES)):
        path = join("volumes", i)
        body = read_object(raw_v, path, {"name", "emptyDir", "files", "secret"})
        if "name" not in body:
            raise InvalidInput(join(path, "name"), "is required")
        name = read_str(body["name"], join(path, "name"), max_length=63)
        if not is_dns1123_label(name):
            raise InvalidInput(join(path, "name"), _VOLUME_DNS_MSG)
        if any(v.name == name for v in result):
            raise InvalidInput(join(path, "name"), f"duplicate volume name {name!r}")
        kinds = [k for k in ("emptyDir", "files") if body.get(k) is not None]
        if len(kinds) != 1:
            raise InvalidInput(path, "exactly one of emptyDir, files is required")
        if kinds == ["emptyDir"]:
            if body.get("secret") is not None:
                raise InvalidInput(join(path, "secret"), "only a files volume can be secret")
            result.append(_empty_dir(name, body["emptyDir"], join(path, "emptyDir")))
            continue
        secret = body.get("secret", False)
        if not isinstance(secret, bool):
            raise InvalidInput(join(path, "secret"), "must be a boolean")
        result.append(_files(name, body["files"], join(path, "files"), secret, stored, secrets, budget))
    return tuple(result)


def _empty_dir(name: str, raw: Any, path: str) -> EmptyDirVolume:
    body = read_object(raw, path, {"medium", "sizeLimitGiB"})
    medium_raw = body.get("medium", "")
    allowed = [m.value for m in StorageMedium]
    if not isinstance(medium_raw, str) or medium_raw not in allowed:
        raise InvalidInput(join(path, "medium"), 'must be "" (disk) or "Memory"')
    size_limit = None
    if body.get("sizeLimitGiB") is not None:
        size_limit = read_decimal(body["sizeLimitGiB"], join(path, "sizeLimitGiB"))
        if size_limit <= 0:
            raise InvalidInput(join(path, "sizeLimitGiB"), "must be greater than 0")
        if size_limit > MAX_EMPTY_DIR_GIB:
            raise InvalidInput(join(path, "sizeLimitGiB"), f"must be at most {MAX_EMPTY_DIR_GIB}")
    return EmptyDirVolume(name=name, medium=StorageMedium(medium_raw), size_limit_gib=size_limit)


def _files(
    name: str,
    raw: Any,
    path: str,
    secret: bool,
    stored: bool,
    secrets: Mapping[str, str] | None,
    budget: _FileBudget,
) -> FilesVolume:
    if not isinstance(raw, dict):
        raise InvalidInput(path, "must be an object of file path to {content | contentBase64, mode}")
    # A stored secret file has no content: it is in the instance's Secret.
    allowed = {"mode"} if stored and secret else {"content", "contentBase64", "mode"}
    files: list[VolumeFile] = []
    for file_path, raw_f in raw.items():
        fpath = join(path, str(file_path))
        if not isinstance(file_path, str) or not file_path:
            raise InvalidInput(path, "file paths must be non-empty strings")
        problem = relative_path_problem(file_path)
        if problem:
            raise InvalidInput(fpath, problem)
        body = read_object(raw_f, fpath, allowed)
        mode = DEFAULT_FILE_MODE
        if body.get("mode") is not None:
            mode = read_int(body["mode"], join(fpath, "mode"), minimum=0, maximum=MAX_FILE_MODE)
        if stored and secret:
            data = None if secrets is None else _secret_file(secrets, name, file_path)
            budget.spend(len(data or b""), fpath)
        else:
            data = _content(body, fpath)
            budget.spend(len(data), fpath)
        files.append(VolumeFile(path=file_path, data=data, mode=mode))
    files.sort(key=lambda f: f.path)
    _check_no_file_is_a_directory(files, path)
    return FilesVolume(name=name, files=tuple(files), secret=secret)


def _secret_file(secrets: Mapping[str, str], volume: str, file_path: str) -> bytes | None:
    encoded = secrets.get(secret_key_for_file(volume, file_path))
    return None if encoded is None else decode_base64(encoded)


def _content(body: Mapping[str, Any], path: str) -> bytes:
    has_text, has_b64 = "content" in body, "contentBase64" in body
    if has_text == has_b64:
        raise InvalidInput(path, "exactly one of content, contentBase64 is required")
    if has_text:
        text = read_str(body["content"], join(path, "content"), max_length=MAX_FILE_BYTES)
        return text.encode("utf-8")
    key = join(path, "contentBase64")
    encoded = read_str(body["contentBase64"], key, max_length=(MAX_FILE_BYTES + 2) // 3 * 4)
    data = decode_base64(encoded)
    if data is None:
        raise InvalidInput(key, "must be standard, padded base64")
    return data


def _check_no_file_is_a_directory(files: list[VolumeFile], path: str) -> None:
    """``a`` and ``a/b`` cannot both be files: ``a`` would be a file and a directory."""
    names = {f.path for f in files}
    for f in files:
        parts = f.path.split("/")
        for n in range(1, len(parts)):
            parent = "/".join(parts[:n])
            if parent in names:
                raise InvalidInput(join(path, f.path), f"conflicts with file {parent!r}: it would be a directory")


def parse_mounts(raw: Any, path: str) -> tuple[VolumeMount, ...]:
    """A container's ``volumeMounts`` (that each names a volume is checked by
    ``check_mounts`` once the volumes are known)."""
    if raw is None:
        return ()
    result: list[VolumeMount] = []
    for i, raw_m in enumerate(read_list(raw, path, max_items=MAX_MOUNTS_PER_CONTAINER)):
        mpath = join(path, i)
        body = read_object(raw_m, mpath, {"name", "mountPath", "readOnly", "subPath"})
        for required in ("name", "mountPath"):
            if required not in body:
                raise InvalidInput(join(mpath, required), "is required")
        name = read_str(body["name"], join(mpath, "name"), max_length=63)
        mount_path = read_str(body["mountPath"], join(mpath, "mountPath"), max_length=1024)
        problem = mount_path_problem(mount_path)
        if problem:
            raise InvalidInput(join(mpath, "mountPath"), problem)
        normal = "/" + mount_path.strip("/")
        if any("/" + m.mount_path.strip("/") == normal for m in result):
            raise InvalidInput(join(mpath, "mountPath"), f"{mount_path!r} is mounted twice in this container")
        read_only = body.get("readOnly")
        if read_only is not None and not isinstance(read_only, bool):
            raise InvalidInput(join(mpath, "readOnly"), "must be a boolean")
        sub_path = None
        if body.get("subPath") is not None:
            sub_path = read_str(body["subPath"], join(mpath, "subPath"), max_length=1024)
            problem = relative_path_problem(sub_path)
            if problem:
                raise InvalidInput(join(mpath, "subPath"), problem)
        result.append(VolumeMount(name=name, mount_path=mount_path, read_only=read_only, sub_path=sub_path))
    return tuple(result)


def check_mounts(containers: tuple[Container, ...], volumes: tuple[Volume, ...]) -> None:
    """Every mount names a volume, and files volumes are never mounted writable."""
    by_name = {v.name: v for v in volumes}
    for i, c in enumerate(containers):
        for j, m in enumerate(c.volume_mounts):
            mpath = join(join(join("containers", i), "volumeMounts"), j)
            volume = by_name.get(m.name)
            if volume is None:
                raise InvalidInput(join(mpath, "name"), f"no volume named {m.name!r} in volumes")
            if isinstance(volume, FilesVolume) and m.read_only is False:
                raise InvalidInput(join(mpath, "readOnly"), "files volumes are always mounted read-only")
