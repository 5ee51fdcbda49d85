"""The instance spec: what a user asks for, parsed from the REST body and validated.

``parse_spec(raw_body)`` is the single entry point for user input: it returns a frozen
``InstanceSpec`` or raises ``InvalidInput`` naming the exact JSON path of the first problem
(``containers[1].env[0].name``); unknown fields are errors too, so typos never pass
silently. A spec that parses always has a size (``spec.size``), so a rejected request can
be rejected before anything is created.

Wire form (camelCase; ``?`` = optional)::

    {"name"?: dns-label,                          # display name, not unique
     "containers": [{"name": dns-label, "image": ref,
                     "command"?: [str], "args"?: [str],
                     "env"?: [{"name", "value" | "secretValue"}],
                     "resources"?: {"cpu"?: 0.25 | "250m", "memoryGiB"?: 0.5},
                     "ports"?: [{"port": 1-65535, "protocol"?: TCP|UDP|SCTP}],
                     "volumeMounts"?: [{"name": volume, "mountPath": "/abs/path",
                                        "readOnly"?: bool, "subPath"?: "rel/path"}]}],
     "volumes"?: [{"name": dns-label, "emptyDir": {"medium"?: "" | "Memory", "sizeLimitGiB"?: 1}}
                | {"name": dns-label, "secret"?: bool,
                   "files": {"rel/path": {"content": str | "contentBase64": str, "mode"?: 0-511}}}],
     "restartPolicy"?: Always | OnFailure | Never,           # default Always
     "imageRegistryCredentials"?: [{"server": host[:port], "username", "password"}],
     "labels"?: {key: value},
     "region"?: str, "zone"?: str,                           # hard constraints if given
     "ingress"?: [{"cidr", "ports"?: [80 | "8000-8080"], "protocol"?: TCP|UDP|SCTP|ALL}],
     "egress"?:  [same],
     "activeDeadlineSeconds"?: int, "clientToken"?: str}

Decisions:

- ``restartPolicy`` defaults to ``Always``, as in ACI, Tencent and Kubernetes itself.
- ``resources`` default per container to 0.25 vCPU / 0.5 GiB (the smallest size), and the
  instance size is the sum over containers rounded up with ``sizes.round_up_units``.
- ``ingress`` omitted or empty: nothing from outside the tenant reaches the instance.
  ``egress`` omitted: the internet is reachable (private ranges are not, see ``pods``);
  ``egress: []`` or a list: only those destinations (plus the tenant and DNS).
- Labels under ``cis.io/``, ``kubernetes.io/`` and ``k8s.io/`` are reserved.
- Volumes, shaped like ACI's: ``emptyDir`` (scratch space shared by the containers; medium
  ``Memory`` is a tmpfs counted against the instance's memory) and ``files`` (a read-only
  directory of the given files, for configuration and credentials; ``secret: true`` keeps
  the contents write-only). No volume reaches outside the instance's VM: no host paths,
  no network storage. Limits and checks live in ``spec_volumes``.

Secrets: ``secretValue`` env values, registry passwords and the contents of ``secret``
files volumes are held in memory only. ``to_json()`` (storage, the CR's ``spec``) and
``to_public_json()`` (REST) never contain them: a secret env var is written ``{"name": N,
"secret": true}``, a credential without its password and a secret file as ``{"mode": M}``.
``secret_data(spec)`` gives the values keyed by ``secret_key_for_env`` /
``secret_key_for_registry`` / ``secret_key_for_file`` for a Kubernetes Secret (file values
as base64 text, since files may be binary), and ``spec_from_json(stored, secrets)`` puts
them back. Plain files are stored in the CR as base64 (no JSON escaping can inflate them)
and shown by the REST form as ``content`` when they are UTF-8 text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Any

from cis.domain.ids import RegionName, ZoneName
from cis.domain.jsonread import decimal_to_json
from cis.domain.sizes import Size, cpu_to_millis, gib_to_mib, round_up_units


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"


class RuleProtocol(StrEnum):
    """A network rule's protocol; ``ALL`` means every protocol and port."""

    TCP = "TCP"
    UDP = "UDP"
    SCTP = "SCTP"
    ALL = "ALL"


@dataclass(frozen=True)
class EnvVar:
    """A plain (``value``) or secret (``secret=True``) environment variable.

    ``secret_value`` is None for a secret loaded from storage without its Secret.
    """

    name: str
    value: str | None = None
    secret: bool = False
    secret_value: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Resources:
    cpu: Decimal
    memory_gib: Decimal

    @property
    def cpu_millis(self) -> int:
        return cpu_to_millis(self.cpu)

    @property
    def memory_mib(self) -> int:
        return gib_to_mib(self.memory_gib)


DEFAULT_RESOURCES = Resources(cpu=Decimal("0.25"), memory_gib=Decimal("0.5"))


@dataclass(frozen=True)
class ContainerPort:
    port: int
    protocol: Protocol = Protocol.TCP


@dataclass(frozen=True)
class VolumeMount:
    """``read_only`` None: not stated (files volumes are read-only all the same)."""

    name: str
    mount_path: str
    read_only: bool | None = None
    sub_path: str | None = None


@dataclass(frozen=True)
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: Resources = DEFAULT_RESOURCES
    ports: tuple[ContainerPort, ...] = ()
    volume_mounts: tuple[VolumeMount, ...] = ()


class StorageMedium(StrEnum):
    """Where an emptyDir lives: the node's disk (``""``) or memory (tmpfs)."""

    DEFAULT = ""
    MEMORY = "Memory"


DEFAULT_FILE_MODE = 0o644  # Kubernetes' default for configMap and secret volumes


@dataclass(frozen=True)
class EmptyDirVolume:
    name: str
    medium: StorageMedium = StorageMedium.DEFAULT
    size_limit_gib: Decimal | None = None


@dataclass(frozen=True)
class VolumeFile:
    """One file of a files volume; ``data`` is None for a secret file loaded without its
    Secret."""

    path: str
    data: bytes | None = field(default=None, repr=False)
    mode: int = DEFAULT_FILE_MODE


@dataclass(frozen=True)
class FilesVolume:
    """A read-only directory holding ``files`` (sorted by path)."""

    name: str
    files: tuple[VolumeFile, ...] = ()
    secret: bool = False


Volume = EmptyDirVolume | FilesVolume


@dataclass(frozen=True)
class RegistryCredential:
    server: str
    username: str
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class PortRange:
    """Ports ``start``..``end`` inclusive; a single port has ``start == end``."""

    start: int
    end: int


@dataclass(frozen=True)
class NetworkRule:
    """One "security group" rule: traffic from/to ``cidr`` on ``ports`` (empty: all)."""

    cidr: str
    ports: tuple[PortRange, ...] = ()
    protocol: RuleProtocol = RuleProtocol.TCP


@dataclass(frozen=True)
class InstanceSpec:
    containers: tuple[Container, ...]
    name: str | None = None
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    volumes: tuple[Volume, ...] = ()
    image_registry_credentials: tuple[RegistryCredential, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    region: RegionName | None = None
    zone: ZoneName | None = None
    ingress: tuple[NetworkRule, ...] = ()
    egress: tuple[NetworkRule, ...] | None = None
    active_deadline_seconds: int | None = None
    client_token: str | None = None

    @cached_property
    def size(self) -> Size:
        """The rounded instance size (sum of containers, rounded up to the table)."""
        return spec_size(self)

    @property
    def has_secrets(self) -> bool:
        return (
            any(e.secret for c in self.containers for e in c.env)
            or bool(self.image_registry_credentials)
            or any(isinstance(v, FilesVolume) and v.secret and v.files for v in self.volumes)
        )

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)

    def volume(self, name: str) -> Volume | None:
        return next((v for v in self.volumes if v.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The storage form (``ContainerInstance.spec``); never contains secret values."""
        return _spec_to_json(self, public=False)

    def to_public_json(self) -> dict[str, Any]:
        """The REST form: as ``to_json()``, but plain text files read as ``content``."""
        return _spec_to_json(self, public=True)


def spec_size(spec: InstanceSpec) -> Size:
    """Sum of container requests (each rounded up to 1m / 1 MiB), rounded up to the table.

    The error names the one container's field, or ``containers[*]...`` for a total.
    """
    prefix = "containers[0]" if len(spec.containers) == 1 else "containers[*]"
    return round_up_units(
        sum(c.resources.cpu_millis for c in spec.containers),
        sum(c.resources.memory_mib for c in spec.containers),
        cpu_field=f"{prefix}.resources.cpu",
        memory_field=f"{prefix}.resources.memoryGiB",
    )


def parse_spec(raw_body: Any) -> InstanceSpec:
    """Parse and validate a REST create body. Raises ``InvalidInput`` naming the field."""
    from cis.domain import spec_parse  # the parser needs the classes above: import late

    return spec_parse.parse(raw_body, stored=False, secrets=None)


def spec_from_json(raw_stored: Any, secrets: Mapping[str, str] | None = None) -> InstanceSpec:
    """Parse a stored spec (``to_json()`` output). ``secrets`` is ``secret_data`` output
    read back from the instance's Secret; without it, secret values stay None."""
    from cis.domain import spec_parse

    return spec_parse.parse(raw_stored, stored=True, secrets=secrets)


# --- secrets --------------------------------------------------------------------------------


def secret_key_for_env(container: str, env_name: str) -> str:
    """The Secret data key of a secret env var (both parts are valid Secret-key chars)."""
    return f"env.{container}.{env_name}"


def secret_key_for_registry(index: int) -> str:
    return f"registry.{index}.password"


FILE_KEY_PREFIX = "file."


def secret_key_for_file(volume: str, path: str) -> str:
    """The Secret data key of a secret file: paths may hold characters Secret keys may not,
    so the path is hashed; the volume name (a DNS label) keeps volumes apart."""
    return f"{FILE_KEY_PREFIX}{volume}.{hashlib.sha256(path.encode()).hexdigest()[:32]}"


def is_file_key(key: str) -> bool:
    """Whether a ``secret_data`` key holds a file (its value is base64 text, not text)."""
    return key.startswith(FILE_KEY_PREFIX)


def secret_data(spec: InstanceSpec) -> dict[str, str]:
    """Every secret value of ``spec`` by Secret key. Raises ``ValueError`` if a value is
    missing (a spec loaded from storage without its secrets)."""
    data: dict[str, str] = {}
    for container in spec.containers:
        for env in container.env:
            if env.secret:
                if env.secret_value is None:
                    raise ValueError(f"secret env {container.name}/{env.name} has no value")
                data[secret_key_for_env(container.name, env.name)] = env.secret_value
    for index, cred in enumerate(spec.image_registry_credentials):
        if cred.password is None:
            raise ValueError(f"registry credential {cred.server} has no password")
        data[secret_key_for_registry(index)] = cred.password
    for volume in spec.volumes:
        if isinstance(volume, FilesVolume) and volume.secret:
            for f in volume.files:
                if f.data is None:
                    raise ValueError(f"secret file {volume.name}/{f.path} has no content")
                data[secret_key_for_file(volume.name, f.path)] = base64.b64encode(f.data).decode("ascii")
    return data


def spec_fingerprint(spec: InstanceSpec) -> str:
    """A digest of everything in ``spec`` (secret values included), to tell whether a
    retried create with the same ``clientToken`` carries the same body.

    Stored in an annotation of the CR, which only platform operators read, who can read
    the instance's Secret anyway; secret values are folded in through their own digest.
    """
    secrets = secret_data(spec)
    payload = {
        "spec": spec.to_json(),
        "secrets": {k: hashlib.sha256(v.encode()).hexdigest() for k, v in sorted(secrets.items())},
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


# --- serialisation --------------------------------------------------------------------------


def _rule_to_json(rule: NetworkRule) -> dict[str, Any]:
    out: dict[str, Any] = {"cidr": rule.cidr, "protocol": rule.protocol.value}
    if rule.ports:
        out["ports"] = [p.start if p.start == p.end else f"{p.start}-{p.end}" for p in rule.ports]
    return out


def _env_to_json(env: EnvVar) -> dict[str, Any]:
    if env.secret:
        return {"name": env.name, "secret": True}
    return {"name": env.name, "value": env.value}


def _mount_to_json(m: VolumeMount) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name, "mountPath": m.mount_path}
    if m.read_only is not None:
        out["readOnly"] = m.read_only
    if m.sub_path is not None:
        out["subPath"] = m.sub_path
    return out


def _file_to_json(f: VolumeFile, *, secret: bool, public: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not secret and f.data is not None:
        text = _utf8(f.data) if public else None
        if text is not None:
            out["content"] = text
        else:
            out["contentBase64"] = base64.b64encode(f.data).decode("ascii")
    out["mode"] = f.mode
    return out


def _utf8(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _volume_to_json(v: Volume, *, public: bool) -> dict[str, Any]:
    if isinstance(v, EmptyDirVolume):
        empty_dir: dict[str, Any] = {}
        if v.medium is not StorageMedium.DEFAULT:
            empty_dir["medium"] = v.medium.value
        if v.size_limit_gib is not None:
            empty_dir["sizeLimitGiB"] = decimal_to_json(v.size_limit_gib)
        return {"name": v.name, "emptyDir": empty_dir}
    out: dict[str, Any] = {"name": v.name}
    if v.secret:
        out["secret"] = True
    out["files"] = {f.path: _file_to_json(f, secret=v.secret, public=public) for f in v.files}
    return out


def decode_base64(text: str) -> bytes | None:
    """Strict base64 (the standard alphabet, padded), or None if ``text`` is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _container_to_json(c: Container) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "image": c.image}
    if c.command:
        out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.env:
        out["env"] = [_env_to_json(e) for e in c.env]
    out["resources"] = {
        "cpu": decimal_to_json(c.resources.cpu),
        "memoryGiB": decimal_to_json(c.resources.memory_gib),
    }
    if c.ports:
        out["ports"] = [{"port": p.port, "protocol": p.protocol.value} for p in c.ports]
    if c.volume_mounts:
        out["volumeMounts"] = [_mount_to_json(m) for m in c.volume_mounts]
    return out


def _spec_to_json(spec: InstanceSpec, *, public: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.name is not None:
        out["name"] = spec.name
    out["containers"] = [_container_to_json(c) for c in spec.containers]
    if spec.volumes:
        out["volumes"] = [_volume_to_json(v, public=public) for v in spec.volumes]
    out["restartPolicy"] = spec.restart_policy.value
    if spec.image_registry_credentials:
        out["imageRegistryCredentials"] = [
            {"server": c.server, "username": c.username} for c in spec.image_registry_credentials
        ]
    if spec.labels:
        out["labels"] = dict(spec.labels)
    if spec.region is not None:
        out["region"] = spec.region
    if spec.zone is not None:
        out["zone"] = spec.zone
    if spec.ingress:
        out["ingress"] = [_rule_to_json(r) for r in spec.ingress]
    if spec.egress is not None:
        out["egress"] = [_rule_to_json(r) for r in spec.egress]
    if spec.active_deadline_seconds is not None:
        out["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.client_token is not None:
        out["clientToken"] = spec.client_token
    return out
