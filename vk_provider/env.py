"""Environment resolution of a pod, before it becomes a CIS instance (pure).

The kubelet (and the Go VK's `internal/podutils/env.go`) resolves `env` and `envFrom`
before starting containers; CIS takes literal values only, so we do it here. Two steps:

1. `references(pod)` names every ConfigMap and Secret the containers need; the caller
   fetches them (`Lookup`: the data, `None` when missing, or a `FetchFailed`).
2. `resolve_pod_env(pod, lookups, host_ip)` decides each variable and which Kubernetes
   event reasons to emit. A missing *mandatory* reference is `fatal` (the pod must not reach
   CIS yet); a missing *optional* one only produces an event. Secret-sourced values are
   marked `secret` so CIS keeps them out of its stored spec.

Order and precedence follow the kubelet: `envFrom` sources in order, then `env` entries in
order (later wins), `$(VAR)` expanded against what is defined so far (`$$` escapes).
Service-link variables are not injected: cluster Services are not reachable from CIS.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from kubeio.quantity import parse_quantity

JSON = dict[str, Any]
CONFIGMAP = "ConfigMap"
SECRET = "Secret"
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
# What CIS gives a container that states no resources (its smallest size).
DEFAULT_CPU = Decimal("0.25")
DEFAULT_MEMORY = Decimal("0.5") * Decimal(2) ** 30


@dataclass(frozen=True)
class FetchFailed:
    """Reading the object failed for another reason than NotFound (e.g. Forbidden)."""

    message: str


Lookup = Mapping[str, str] | FetchFailed | None
Ref = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class EnvVar:
    name: str
    value: str
    secret: bool = False


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = True


@dataclass(frozen=True)
class Resolution:
    env: dict[str, tuple[EnvVar, ...]] = field(default_factory=dict)  # by container name
    events: tuple[Event, ...] = ()
    fatal: tuple[str, ...] = ()  # messages of missing mandatory references


def secret_data(raw_secret: JSON) -> dict[str, str]:
    """A Secret's values as text (base64 `data` decoded, `stringData` as is)."""
    out = {k: base64.b64decode(v).decode("utf-8", errors="replace") for k, v in (raw_secret.get("data") or {}).items()}
    out.update(raw_secret.get("stringData") or {})
    return out


def configmap_data(raw_configmap: JSON) -> dict[str, str]:
    return dict(raw_configmap.get("data") or {})


def source_event(kind: str, name: str, missing: FetchFailed | None, optional: bool, prefix: str = "") -> Event:
    """The event for a ConfigMap or Secret that could not be read (not found: `missing` is
    None), with the kubelet's reasons (`MandatoryConfigMapNotFound`, `OptionalSecretNotFound`,
    `FailedToReadMandatorySecret`, ...). Shared by env and volume resolution so both speak
    the same language."""
    word = "configmap" if kind == CONFIGMAP else "secret"
    mode = "Optional" if optional else "Mandatory"
    if missing is not None:
        return Event(f"FailedToRead{mode}{kind}", f"{prefix}failed to read {word} \"{name}\": {missing.message}")
    return Event(f"{mode}{kind}NotFound", f"{prefix}{word} \"{name}\" not found")


def key_event(kind: str, name: str, key: str, optional: bool, prefix: str = "") -> Event:
    """The event for a key missing from a ConfigMap or Secret that was found."""
    word = "configmap" if kind == CONFIGMAP else "secret"
    mode = "Optional" if optional else "Mandatory"
    return Event(f"{mode}{kind}KeyNotFound", f"{prefix}key \"{key}\" not found in {word} \"{name}\"")


def references(pod: JSON) -> set[Ref]:
    refs: set[Ref] = set()
    for c in pod.get("spec", {}).get("containers") or []:
        for src in c.get("envFrom") or []:
            if "configMapRef" in src:
                refs.add((CONFIGMAP, src["configMapRef"].get("name", "")))
            if "secretRef" in src:
                refs.add((SECRET, src["secretRef"].get("name", "")))
        for e in c.get("env") or []:
            value_from = e.get("valueFrom") or {}
            if "configMapKeyRef" in value_from:
                refs.add((CONFIGMAP, value_from["configMapKeyRef"].get("name", "")))
            if "secretKeyRef" in value_from:
                refs.add((SECRET, value_from["secretKeyRef"].get("name", "")))
    return refs


def expand(text: str, defined: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: unknown references stay as written, `$$` is `$`."""
    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return defined[name] if name in defined else m.group(0)
    return _REF.sub(sub, text)


class _Resolver:
    """One container's resolution; collects events and fatal problems on the way."""

    def __init__(self, pod: JSON, lookups: Mapping[Ref, Lookup], host_ip: str) -> None:
        self.pod = pod
        self.lookups = lookups
        self.host_ip = host_ip
        self.events: list[Event] = []
        self.fatal: list[str] = []

    def _source(self, kind: str, name: str, optional: bool, var: str | None) -> Mapping[str, str] | None:
        found = self.lookups.get((kind, name))
        if found is None or isinstance(found, FetchFailed):
            what = f"skipping optional envvar \"{var}\": " if optional and var else ""
            event = source_event(kind, name, found, optional, what)
            self._problem(event.reason, event.message, optional)
            return None
        return found

    def _problem(self, reason: str, message: str, optional: bool) -> None:
        self.events.append(Event(reason, message))
        if not optional:
            self.fatal.append(message)

    def container(self, c: JSON) -> tuple[EnvVar, ...]:
        env: dict[str, EnvVar] = {}
        invalid: list[str] = []
        for src in c.get("envFrom") or []:
            prefix = str(src.get("prefix") or "")
            if "configMapRef" in src:
                kind, ref = CONFIGMAP, src["configMapRef"]
            else:
                kind, ref = SECRET, src.get("secretRef") or {}
            data = self._source(kind, str(ref.get("name", "")), ref.get("optional") is True, None)
            for key, value in sorted((data or {}).items()):
                name = prefix + key
                if _ENV_NAME.fullmatch(name) is None:
                    invalid.append(name)
                    continue
                env[name] = EnvVar(name, value, secret=kind == SECRET)
        if invalid:
            self.events.append(Event("InvalidEnvironmentVariableNames",
                                     f"keys [{', '.join(sorted(invalid))}] from envFrom were skipped"
                                     " since they are invalid environment variable names"))
        for e in c.get("env") or []:
            name = str(e.get("name", ""))
            var = self._env_var(c, e, {k: v.value for k, v in env.items()})
            if var is not None:
                env.pop(name, None)
                env[name] = var
        return tuple(env.values())

    def _env_var(self, c: JSON, e: JSON, defined: Mapping[str, str]) -> EnvVar | None:
        name = str(e.get("name", ""))
        value_from = e.get("valueFrom")
        if not value_from:
            return EnvVar(name, expand(str(e.get("value", "")), defined))
        for kind, key in ((CONFIGMAP, "configMapKeyRef"), (SECRET, "secretKeyRef")):
            if key in value_from:
                ref = value_from[key]
                optional = ref.get("optional") is True
                ref_name, ref_key = str(ref.get("name", "")), str(ref.get("key", ""))
                data = self._source(kind, ref_name, optional, name)
                if data is None:
                    return None
                if ref_key not in data:
                    event = key_event(kind, ref_name, ref_key, optional)
                    self._problem(event.reason, event.message, optional)
                    return None
                return EnvVar(name, data[ref_key], secret=kind == SECRET)
        if "fieldRef" in value_from:
            return self._field(name, str(value_from["fieldRef"].get("fieldPath", "")))
        if "resourceFieldRef" in value_from:
            return self._resource(c, name, value_from["resourceFieldRef"])
        self._problem("UnsupportedEnvironmentSource", f"env \"{name}\": unsupported valueFrom", False)
        return None

    def _field(self, name: str, path: str) -> EnvVar | None:
        meta, spec = self.pod.get("metadata", {}), self.pod.get("spec", {})
        simple = {
            "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
            "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
            "spec.serviceAccountName": spec.get("serviceAccountName"),
            "status.hostIP": self.host_ip, "status.hostIPs": self.host_ip,
        }
        if path in simple:
            return EnvVar(name, str(simple[path] or ""))
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
        if m:
            return EnvVar(name, str((meta.get(m.group(1)) or {}).get(m.group(2), "")))
        if path in ("status.podIP", "status.podIPs"):
            # CIS assigns the address when it places the instance, after the spec is fixed.
            self.events.append(Event("UnsupportedFieldPath",
                                     f"env \"{name}\": {path} is not known before the instance starts; set to \"\""))
            return EnvVar(name, "")
        self._problem("UnsupportedFieldPath", f"env \"{name}\": unsupported fieldPath \"{path}\"", False)
        return None

    def _resource(self, c: JSON, name: str, ref: JSON) -> EnvVar | None:
        value = resource_field_value(self.pod, c, ref)
        if value is None:
            resource = str(ref.get("resource", ""))
            self._problem("UnsupportedResourceFieldRef", f"env \"{name}\": unsupported resource \"{resource}\"", False)
            return None
        return EnvVar(name, value)


def resource_field_value(pod: JSON, default_container: JSON | None, ref: JSON) -> str | None:
    """A `resourceFieldRef` as the kubelet writes it (the value over the divisor, rounded
    up), for env and downward-API files alike; None for a resource CIS does not offer or a
    container that does not exist."""
    target_name = ref.get("containerName") or (default_container or {}).get("name")
    target = next((x for x in pod["spec"].get("containers") or [] if x.get("name") == target_name),
                  default_container)
    resource = str(ref.get("resource", ""))
    kind, _, res = resource.partition(".")
    if target is None or kind not in ("limits", "requests") or res not in ("cpu", "memory", "ephemeral-storage"):
        return None
    value = effective_resource(target, kind, res)
    try:
        divisor = parse_quantity(ref.get("divisor") or "1")
    except ValueError:
        divisor = Decimal(1)
    if divisor <= 0:
        divisor = Decimal(1)
    return str(max(1, math.ceil(value / divisor)) if value else 0)


def effective_resource(container: JSON, kind: str, resource: str) -> Decimal:
    """What the instance will get: the limit, else the request, else CIS's default size."""
    res = container.get("resources") or {}
    first, second = (res.get("limits") or {}, res.get("requests") or {})
    if kind == "requests":
        first, second = second, first
    raw = first.get(resource, second.get(resource))
    if raw is not None:
        try:
            return parse_quantity(raw)
        except ValueError:
            pass
    return {"cpu": DEFAULT_CPU, "memory": DEFAULT_MEMORY}.get(resource, Decimal(0))


def resolve_pod_env(pod: JSON, lookups: Mapping[Ref, Lookup], host_ip: str) -> Resolution:
    r = _Resolver(pod, lookups, host_ip)
    env = {str(c.get("name")): r.container(c) for c in pod.get("spec", {}).get("containers") or []}
    return Resolution(env=env, events=tuple(dict.fromkeys(r.events)), fatal=tuple(dict.fromkeys(r.fatal)))
