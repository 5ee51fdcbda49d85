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
                     "ports"?: [{"port": 1-65535, "protocol"?: TCP|UDP|SCTP}]}],
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

Secrets: ``secretValue`` env values and registry passwords are held in memory only.
``to_json()`` (storage, the CR's ``spec``) and ``to_public_json()`` (REST) never contain
them: a secret env var is written ``{"name": N, "secret": true}`` and a credential without
its password. ``secret_data(spec)`` gives the values keyed by ``secret_key_for_env`` /
``secret_key_for_registry`` for a Kubernetes Secret, and ``spec_from_json(stored,
secrets)`` puts them back.
"""

from __future__ import annotations

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
class Container:
    name: str
    image: str
    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[EnvVar, ...] = ()
    resources: Resources = DEFAULT_RESOURCES
    ports: tuple[ContainerPort, ...] = ()


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
        return any(e.secret for c in self.containers for e in c.env) or bool(self.image_registry_credentials)

    def container(self, name: str) -> Container | None:
        return next((c for c in self.containers if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The storage form (``ContainerInstance.spec``); never contains secret values."""
        return _spec_to_json(self)

    def to_public_json(self) -> dict[str, Any]:
        """The REST form. Equal to ``to_json()`` today; kept apart so a field added for
        storage is never exposed by accident."""
        return _spec_to_json(self)


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
    return out


def _spec_to_json(spec: InstanceSpec) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if spec.name is not None:
        out["name"] = spec.name
    out["containers"] = [_container_to_json(c) for c in spec.containers]
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
