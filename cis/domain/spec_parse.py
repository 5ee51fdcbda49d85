"""Validation of instance specs: raw JSON in, ``InstanceSpec`` or ``InvalidInput`` out.

Use ``spec.parse_spec`` / ``spec.spec_from_json``; this module is their engine. Limits are
module constants so the API can publish them. The first problem found is reported, in
document order, so a client fixing errors one by one converges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cis.domain.errors import InvalidInput
from cis.domain.ids import RegionName, ZoneName, parse_region_name, parse_zone_name
from cis.domain.jsonread import (
    join,
    read_decimal,
    read_int,
    read_list,
    read_object,
    read_str,
    read_str_list,
)
from cis.domain.sizes import LARGEST_CPU_MILLIS, LARGEST_MEMORY_MIB
from cis.domain.spec import (
    DEFAULT_RESOURCES,
    Container,
    ContainerPort,
    EnvVar,
    InstanceSpec,
    NetworkRule,
    PortRange,
    Protocol,
    RegistryCredential,
    Resources,
    RestartPolicy,
    RuleProtocol,
    secret_key_for_env,
    secret_key_for_registry,
)
from cis.domain.spec_volumes import check_mounts, parse_mounts, parse_volumes
from cis.domain.syntax import (
    cidr_problem,
    image_reference_problem,
    is_client_token,
    is_dns1123_label,
    is_env_name,
    is_label_value,
    is_registry_server,
    label_key_problem,
)

MAX_CONTAINERS = 60  # ACI's per-group limit
MAX_COMMAND_ITEMS = 256
MAX_COMMAND_ITEM_LENGTH = 32 * 1024
MAX_ENV_PER_CONTAINER = 256
MAX_ENV_VALUE_LENGTH = 32 * 1024
MAX_PORTS_PER_CONTAINER = 64
MAX_CREDENTIALS = 16
MAX_LABELS = 64
MAX_RULES = 64
MAX_RULE_PORTS = 32
MAX_ACTIVE_DEADLINE_SECONDS = 365 * 24 * 3600
# command, args and env values of all containers together: keeps the CR, the pod and the
# Secret far below etcd's 1.5 MiB object limit.
MAX_TOTAL_TEXT = 256 * 1024
RESERVED_LABEL_DOMAINS = ("cis.io", "kubernetes.io", "k8s.io")

_TOP = frozenset(
    {
        "name",
        "containers",
        "volumes",
        "restartPolicy",
        "imageRegistryCredentials",
        "labels",
        "region",
        "zone",
        "ingress",
        "egress",
        "activeDeadlineSeconds",
        "clientToken",
    }
)
_CONTAINER = frozenset({"name", "image", "command", "args", "env", "resources", "ports", "volumeMounts"})
_DNS_LABEL_MSG = (
    "must be a DNS-1123 label: 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"
)


_N = TypeVar("_N", RegionName, ZoneName)


class _Budget:
    """Counts the characters of command, args and env values against MAX_TOTAL_TEXT."""

    def __init__(self) -> None:
        self.used = 0

    def spend(self, text: str, path: str) -> None:
        self.used += len(text)
        if self.used > MAX_TOTAL_TEXT:
            raise InvalidInput(path, f"command, args and env values together exceed {MAX_TOTAL_TEXT} characters")


def parse(raw: Any, *, stored: bool, secrets: Mapping[str, str] | None) -> InstanceSpec:
    body = read_object(raw, "", _TOP)
    name = None
    if body.get("name") is not None:
        name = read_str(body["name"], "name", max_length=63)
        if not is_dns1123_label(name):
            raise InvalidInput("name", _DNS_LABEL_MSG)
    if "containers" not in body:
        raise InvalidInput("containers", "is required")
    raw_containers = read_list(body["containers"], "containers", max_items=MAX_CONTAINERS, min_items=1)
    budget = _Budget()
    containers: list[Container] = []
    seen_ports: dict[tuple[int, Protocol], str] = {}
    for i, raw_c in enumerate(raw_containers):
        path = join("containers", i)
        c = _container(raw_c, path, stored, secrets, budget)
        if any(other.name == c.name for other in containers):
            raise InvalidInput(join(path, "name"), f"duplicate container name {c.name!r}")
        for j, port in enumerate(c.ports):
            key = (port.port, port.protocol)
            if key in seen_ports:
                raise InvalidInput(
                    join(join(join(path, "ports"), j), "port"),
                    f"{port.port}/{port.protocol} is already used by container {seen_ports[key]!r}"
                    " (containers share one network namespace)",
                )
            seen_ports[key] = c.name
        containers.append(c)
    _check_totals(containers)
    volumes = parse_volumes(body.get("volumes"), stored=stored, secrets=secrets)
    check_mounts(tuple(containers), volumes)
    return InstanceSpec(
        containers=tuple(containers),
        name=name,
        restart_policy=_enum(body.get("restartPolicy", "Always"), "restartPolicy", RestartPolicy),
        volumes=volumes,
        image_registry_credentials=_credentials(body.get("imageRegistryCredentials"), stored, secrets),
        labels=_labels(body.get("labels")),
        region=_optional_name(body, "region", parse_region_name),
        zone=_optional_name(body, "zone", parse_zone_name),
        ingress=_rules(body.get("ingress"), "ingress") or (),
        egress=_rules(body.get("egress"), "egress"),
        active_deadline_seconds=(
            None
            if body.get("activeDeadlineSeconds") is None
            else read_int(
                body["activeDeadlineSeconds"],
                "activeDeadlineSeconds",
                minimum=1,
                maximum=MAX_ACTIVE_DEADLINE_SECONDS,
            )
        ),
        client_token=_client_token(body.get("clientToken")),
    )


_E = TypeVar("_E", RestartPolicy, Protocol, RuleProtocol)


def _enum(raw: Any, path: str, kind: type[_E]) -> _E:
    allowed = [m.value for m in kind]
    if not isinstance(raw, str) or raw not in allowed:
        raise InvalidInput(path, "must be one of " + ", ".join(allowed))
    return kind(raw)


def _optional_name(raw: Mapping[str, Any], key: str, parse: Callable[[str, str], _N]) -> _N | None:
    if raw.get(key) is None:
        return None
    return parse(read_str(raw[key], key, max_length=63), key)


def _client_token(raw: Any) -> str | None:
    if raw is None:
        return None
    token = read_str(raw, "clientToken", max_length=64, min_length=1)
    if not is_client_token(token):
        raise InvalidInput("clientToken", "must be 1-64 printable ASCII characters without spaces")
    return token


def _container(raw: Any, path: str, stored: bool, secrets: Mapping[str, str] | None, budget: _Budget) -> Container:
    body = read_object(raw, path, _CONTAINER)
    for required in ("name", "image"):
        if required not in body:
            raise InvalidInput(join(path, required), "is required")
    name = read_str(body["name"], join(path, "name"), max_length=63)
    if not is_dns1123_label(name):
        raise InvalidInput(join(path, "name"), _DNS_LABEL_MSG)
    image = read_str(body["image"], join(path, "image"), max_length=1024)
    problem = image_reference_problem(image)
    if problem:
        raise InvalidInput(join(path, "image"), problem)
    argv: dict[str, tuple[str, ...]] = {}
    for key in ("command", "args"):
        argv[key] = ()
        if body.get(key) is not None:
            argv[key] = read_str_list(
                body[key],
                join(path, key),
                max_items=MAX_COMMAND_ITEMS,
                max_length=MAX_COMMAND_ITEM_LENGTH,
            )
            for item in argv[key]:
                budget.spend(item, join(path, key))
    return Container(
        name=name,
        image=image,
        command=argv["command"],
        args=argv["args"],
        env=_env(body.get("env"), join(path, "env"), name, stored, secrets, budget),
        resources=_resources(body.get("resources"), join(path, "resources")),
        ports=_ports(body.get("ports"), join(path, "ports")),
        volume_mounts=parse_mounts(body.get("volumeMounts"), join(path, "volumeMounts")),
    )


def _env(
    raw: Any,
    path: str,
    container: str,
    stored: bool,
    secrets: Mapping[str, str] | None,
    budget: _Budget,
) -> tuple[EnvVar, ...]:
    if raw is None:
        return ()
    allowed = {"name", "value", "secret"} if stored else {"name", "value", "secretValue"}
    result: list[EnvVar] = []
    for i, raw_e in enumerate(read_list(raw, path, max_items=MAX_ENV_PER_CONTAINER)):
        epath = join(path, i)
        body = read_object(raw_e, epath, allowed)
        if "name" not in body:
            raise InvalidInput(join(epath, "name"), "is required")
        name = read_str(body["name"], join(epath, "name"), max_length=256)
        if not is_env_name(name):
            raise InvalidInput(
                join(epath, "name"),
                "must consist of letters, digits, '_', '-' or '.', not starting with a digit",
            )
        if any(e.name == name for e in result):
            raise InvalidInput(join(epath, "name"), f"duplicate env var {name!r}")
        if stored and body.get("secret") is True:
            value = None if secrets is None else secrets.get(secret_key_for_env(container, name))
            result.append(EnvVar(name=name, secret=True, secret_value=value))
            continue
        has_value, has_secret = "value" in body, "secretValue" in body
        if has_value == has_secret:
            raise InvalidInput(epath, "exactly one of value, secretValue is required")
        key = "value" if has_value else "secretValue"
        text = read_str(body[key], join(epath, key), max_length=MAX_ENV_VALUE_LENGTH)
        budget.spend(text, join(epath, key))
        if has_value:
            result.append(EnvVar(name=name, value=text))
        else:
            result.append(EnvVar(name=name, secret=True, secret_value=text))
    return tuple(result)


def _resources(raw: Any, path: str) -> Resources:
    if raw is None:
        return DEFAULT_RESOURCES
    body = read_object(raw, path, {"cpu", "memoryGiB"})
    cpu, memory = DEFAULT_RESOURCES.cpu, DEFAULT_RESOURCES.memory_gib
    if body.get("cpu") is not None:
        cpu = read_decimal(body["cpu"], join(path, "cpu"), allow_millis=True)
    if body.get("memoryGiB") is not None:
        memory = read_decimal(body["memoryGiB"], join(path, "memoryGiB"))
    if cpu <= 0:
        raise InvalidInput(join(path, "cpu"), "must be greater than 0")
    if memory <= 0:
        raise InvalidInput(join(path, "memoryGiB"), "must be greater than 0")
    result = Resources(cpu=cpu, memory_gib=memory)
    if result.cpu_millis > LARGEST_CPU_MILLIS:
        raise InvalidInput(join(path, "cpu"), f"must be at most {LARGEST_CPU_MILLIS // 1000}")
    if result.memory_mib > LARGEST_MEMORY_MIB:
        raise InvalidInput(join(path, "memoryGiB"), f"must be at most {LARGEST_MEMORY_MIB // 1024}")
    return result


def _ports(raw: Any, path: str) -> tuple[ContainerPort, ...]:
    if raw is None:
        return ()
    result: list[ContainerPort] = []
    for i, raw_p in enumerate(read_list(raw, path, max_items=MAX_PORTS_PER_CONTAINER)):
        ppath = join(path, i)
        body = read_object(raw_p, ppath, {"port", "protocol"})
        if "port" not in body:
            raise InvalidInput(join(ppath, "port"), "is required")
        port = read_int(body["port"], join(ppath, "port"), minimum=1, maximum=65535)
        protocol = _enum(body.get("protocol", "TCP"), join(ppath, "protocol"), Protocol)
        result.append(ContainerPort(port=port, protocol=protocol))
    return tuple(result)


def _check_totals(containers: list[Container]) -> None:
    from cis.domain.spec import spec_size  # raises InvalidInput naming the field

    spec_size(InstanceSpec(containers=tuple(containers)))


def _credentials(raw: Any, stored: bool, secrets: Mapping[str, str] | None) -> tuple[RegistryCredential, ...]:
    if raw is None:
        return ()
    path = "imageRegistryCredentials"
    allowed = {"server", "username"} if stored else {"server", "username", "password"}
    result: list[RegistryCredential] = []
    for i, raw_c in enumerate(read_list(raw, path, max_items=MAX_CREDENTIALS)):
        cpath = join(path, i)
        body = read_object(raw_c, cpath, allowed)
        for required in [f for f in ("server", "username", "password") if f in allowed]:
            if required not in body:
                raise InvalidInput(join(cpath, required), "is required")
        server = read_str(body["server"], join(cpath, "server"), max_length=253)
        if not is_registry_server(server):
            raise InvalidInput(
                join(cpath, "server"),
                "must be a registry host with optional port, e.g. registry.example:5000 (no scheme, no path)",
            )
        if any(c.server == server for c in result):
            raise InvalidInput(join(cpath, "server"), f"duplicate registry {server!r}")
        username = read_str(body["username"], join(cpath, "username"), max_length=256, min_length=1)
        if stored:
            password = None if secrets is None else secrets.get(secret_key_for_registry(i))
        else:
            password = read_str(body["password"], join(cpath, "password"), max_length=8192, min_length=1)
        result.append(RegistryCredential(server=server, username=username, password=password))
    return tuple(result)


def _labels(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput("labels", "must be an object of string values")
    if len(raw) > MAX_LABELS:
        raise InvalidInput("labels", f"must have at most {MAX_LABELS} entries")
    result: dict[str, str] = {}
    for key, value in raw.items():
        path = f"labels.{key}"
        problem = label_key_problem(key)
        if problem:
            raise InvalidInput(path, problem)
        prefix = key.rpartition("/")[0]
        if any(prefix == d or prefix.endswith("." + d) for d in RESERVED_LABEL_DOMAINS):
            raise InvalidInput(path, f"label prefix {prefix!r} is reserved")
        if not isinstance(value, str) or not is_label_value(value):
            raise InvalidInput(
                path,
                "label value must be a string of at most 63 alphanumerics, "
                "'-', '_' or '.', starting and ending with an alphanumeric",
            )
        result[key] = value
    return result


def _rules(raw: Any, path: str) -> tuple[NetworkRule, ...] | None:
    if raw is None:
        return None
    result: list[NetworkRule] = []
    for i, raw_r in enumerate(read_list(raw, path, max_items=MAX_RULES)):
        rpath = join(path, i)
        body = read_object(raw_r, rpath, {"cidr", "ports", "protocol"})
        if "cidr" not in body:
            raise InvalidInput(join(rpath, "cidr"), "is required")
        cidr = read_str(body["cidr"], join(rpath, "cidr"), max_length=64)
        problem = cidr_problem(cidr)
        if problem:
            raise InvalidInput(join(rpath, "cidr"), problem)
        protocol = _enum(body.get("protocol", "TCP"), join(rpath, "protocol"), RuleProtocol)
        ports: list[PortRange] = []
        if body.get("ports") is not None:
            raw_ports = read_list(body["ports"], join(rpath, "ports"), max_items=MAX_RULE_PORTS)
            if raw_ports and protocol is RuleProtocol.ALL:
                raise InvalidInput(join(rpath, "ports"), "must be empty when protocol is ALL")
            ports = [_port_range(p, join(join(rpath, "ports"), j)) for j, p in enumerate(raw_ports)]
        result.append(NetworkRule(cidr=cidr, ports=tuple(ports), protocol=protocol))
    return tuple(result)


def _port_range(raw: Any, path: str) -> PortRange:
    if isinstance(raw, str):
        start_text, dash, end_text = raw.partition("-")
        if not (dash and start_text.isdigit() and end_text.isdigit()):
            raise InvalidInput(path, 'must be a port number or a range such as "8000-8080"')
        start, end = int(start_text), int(end_text)
        if not (1 <= start <= end <= 65535):
            raise InvalidInput(path, "range must satisfy 1 <= start <= end <= 65535")
        return PortRange(start, end)
    port = read_int(raw, path, minimum=1, maximum=65535)
    return PortRange(port, port)
