"""Pod -> CIS instance spec (pure), and the stable pod <-> instance mapping.

The mapping lives in CIS, not in the pod (a node identity may write only pod status):
every instance carries labels naming its node, the pod's namespace, a digest of the pod's
namespace/name and the pod's uid, and its `clientToken` is a digest of namespace/name/uid,
so a retried create (a crash between "created" and "recorded") returns the same instance.

`pod_problems(pod)` lists what a pod asks for that CIS cannot honour: `fatal` problems
fail the pod (like a kubelet admission rejection), the others run degraded and are
reported as a Warning event. Nothing is dropped without a word.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubeio.quantity import cores, gib
from vk_provider.env import EnvVar, expand
from vk_provider.volumes import (
    SUPPORTED_KINDS,
    VolumeResolution,
    container_mounts,
    is_service_account_volume,
    mounted_volumes,
    volume_kind,
)

JSON = dict[str, Any]

LABEL_NODE = "virtual-kubelet.io/node"
LABEL_NAMESPACE = "virtual-kubelet.io/namespace"
LABEL_POD_NAME = "virtual-kubelet.io/pod-name"
LABEL_POD_KEY = "virtual-kubelet.io/pod-key"
LABEL_POD_UID = "virtual-kubelet.io/pod-uid"
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
MAX_ACTIVE_DEADLINE_SECONDS = 365 * 24 * 3600


@dataclass(frozen=True)
class Problem:
    feature: str
    message: str
    fatal: bool


def client_token(namespace: str, name: str, uid: str) -> str:
    """64 hex characters: the same pod always asks CIS for the same instance."""
    return hashlib.sha256(f"{namespace}/{name}/{uid}".encode()).hexdigest()


def pod_key_digest(namespace: str, name: str) -> str:
    """A label-safe digest of namespace/name (names may be longer than a label value)."""
    return hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()[:40]


def node_selector(node: str) -> str:
    return f"{LABEL_NODE}={node}"


def instance_labels(pod: JSON, node: str) -> dict[str, str]:
    meta = pod["metadata"]
    ns, name = str(meta["namespace"]), str(meta["name"])
    labels = {LABEL_NODE: node, LABEL_NAMESPACE: ns, LABEL_POD_KEY: pod_key_digest(ns, name),
              LABEL_POD_UID: str(meta["uid"])}
    if len(name) <= 63 and _LABEL_VALUE.fullmatch(name):
        labels[LABEL_POD_NAME] = name
    return labels


def _container_problems(c: JSON) -> Iterable[Problem]:
    name = c.get("name")
    sc = c.get("securityContext") or {}
    if sc.get("privileged"):
        yield Problem("privileged", f"container \"{name}\": privileged containers are not allowed on CIS", True)
    elif sc:
        yield Problem("securityContext", f"container \"{name}\": securityContext is not applied (CIS runs every"
                      " instance in its own VM with its own policy)", False)
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        if c.get(probe):
            yield Problem(probe, f"container \"{name}\": {probe} is not run; readiness follows the container state",
                          False)
    if c.get("lifecycle"):
        yield Problem("lifecycle", f"container \"{name}\": lifecycle hooks are not run", False)
    if c.get("workingDir"):
        yield Problem("workingDir", f"container \"{name}\": workingDir is not supported; the image's is used", False)
    if c.get("stdin") or c.get("tty"):
        yield Problem("tty", f"container \"{name}\": stdin/tty are not attached", False)
    for kind in ("limits", "requests"):
        for res in (c.get("resources") or {}).get(kind) or {}:
            if res not in ("cpu", "memory", "ephemeral-storage"):
                yield Problem("resources", f"container \"{name}\": resource \"{res}\" is not offered by CIS", True)
    for port in c.get("ports") or []:
        if port.get("hostPort"):
            yield Problem("hostPort", f"container \"{name}\": hostPort is not supported", True)
    if c.get("volumeDevices"):
        yield Problem("volumeDevices", f"container \"{name}\": block volumes are not supported by CIS", True)
    if any(m.get("mountPropagation") not in (None, "None") for m in c.get("volumeMounts") or []):
        yield Problem("mountPropagation", f"container \"{name}\": mount propagation is not applied"
                      " (volumes live inside the instance's VM)", False)


def _volume_problems(pod: JSON) -> Iterable[Problem]:
    """What `volumes.resolve_pod_volumes` cannot give CIS, by volume (mounted ones only)."""
    for vol in sorted(mounted_volumes(pod), key=lambda v: str(v.get("name"))):
        vname, kind = vol.get("name"), volume_kind(vol)
        if is_service_account_volume(vol):
            yield Problem("serviceAccountToken", "the service-account token is not mounted (set"
                          " automountServiceAccountToken: false to silence this)", False)
        elif kind not in SUPPORTED_KINDS:
            yield Problem("volumes", f"volume \"{vname}\": {kind} volumes are not supported by CIS", True)
        elif kind == "emptyDir" and (vol.get("emptyDir") or {}).get("medium") not in (None, "", "Memory"):
            yield Problem("volumes", f"volume \"{vname}\": emptyDir medium"
                          f" \"{vol['emptyDir']['medium']}\" is not supported by CIS", True)
        elif kind == "projected":
            for src in (vol.get("projected") or {}).get("sources") or []:
                for source_kind in src:
                    if source_kind == "serviceAccountToken":
                        yield Problem("serviceAccountToken", f"volume \"{vname}\": CIS gives no service-account"
                                      " token; the rest of the volume is mounted without it", False)
                    elif source_kind not in ("configMap", "secret", "downwardAPI"):
                        yield Problem("volumes", f"volume \"{vname}\": projected {source_kind} sources are not"
                                      " supported by CIS", True)


def pod_problems(pod: JSON) -> list[Problem]:
    spec = pod.get("spec", {})
    out: list[Problem] = []
    if spec.get("initContainers"):
        out.append(Problem("initContainers", "init containers are not supported by CIS", True))
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(flag):
            out.append(Problem(flag, f"{flag} is not allowed on CIS (no host namespaces)", True))
    for c in spec.get("containers") or []:
        out += _container_problems(c)
    out += _volume_problems(pod)
    if spec.get("hostAliases") or spec.get("dnsConfig"):
        out.append(Problem("dns", "hostAliases and dnsConfig are not applied", False))
    return out


def registry_credentials(raw_secrets: Iterable[JSON]) -> list[JSON]:
    """imageRegistryCredentials from imagePullSecrets (`.dockerconfigjson` or `.dockercfg`).
    Servers are reduced to host[:port] (a docker config may say "https://host/v1/")."""
    out: dict[str, JSON] = {}
    for raw in raw_secrets:
        data = raw.get("data") or {}
        for key in (".dockerconfigjson", ".dockercfg"):
            if key not in data:
                continue
            try:
                doc = json.loads(base64.b64decode(data[key]))
            except ValueError:
                continue
            auths = doc.get("auths", {}) if key == ".dockerconfigjson" else doc
            for server, entry in (auths or {}).items():
                user, password = entry.get("username"), entry.get("password")
                if (not user or not password) and entry.get("auth"):
                    user, _, password = base64.b64decode(entry["auth"]).decode(errors="replace").partition(":")
                host = re.sub(r"^[a-z]+://", "", str(server)).split("/")[0]
                if host and user and password and host not in out:
                    out[host] = {"server": host, "username": user, "password": password}
    return list(out.values())


def _resources(c: JSON) -> JSON | None:
    res = c.get("resources") or {}
    limits, requests = res.get("limits") or {}, res.get("requests") or {}
    out: JSON = {}
    # CIS gives requests = limits; the larger of the two is what the container may use.
    for key, field_, convert in (("cpu", "cpu", cores), ("memory", "memoryGiB", gib)):
        raw = limits.get(key, requests.get(key))
        if raw is not None:
            out[field_] = convert(raw)
    return out or None


def _env_json(env: Iterable[EnvVar]) -> list[JSON]:
    return [{"name": e.name, "secretValue": e.value} if e.secret else {"name": e.name, "value": e.value}
            for e in env]


def _container(c: JSON, env: tuple[EnvVar, ...], used_ports: set[tuple[int, str]],
               volumes: frozenset[str]) -> JSON:
    defined = {e.name: e.value for e in env}
    out: JSON = {"name": c["name"], "image": c["image"]}
    if c.get("command"):
        out["command"] = [expand(str(x), defined) for x in c["command"]]
    if c.get("args"):
        out["args"] = [expand(str(x), defined) for x in c["args"]]
    if env:
        out["env"] = _env_json(env)
    resources = _resources(c)
    if resources:
        out["resources"] = resources
    ports = []
    for p in c.get("ports") or []:
        # Pod ports are informational and may repeat across containers; CIS's may not.
        key = (int(p["containerPort"]), str(p.get("protocol") or "TCP"))
        if key not in used_ports:
            used_ports.add(key)
            ports.append({"port": key[0], "protocol": key[1]})
    if ports:
        out["ports"] = ports
    mounts = container_mounts(c, volumes, defined)
    if mounts:
        out["volumeMounts"] = mounts
    return out


def instance_spec(pod: JSON, node: str, env: Mapping[str, tuple[EnvVar, ...]],
                  registry_credentials: list[JSON] | None = None,
                  volumes: VolumeResolution | None = None) -> JSON:
    """The CreateInstance body for `pod`, its env and volumes already resolved
    (`env.resolve_pod_env`, `volumes.resolve_pod_volumes`)."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    volumes = volumes or VolumeResolution()
    used_ports: set[tuple[int, str]] = set()
    body: JSON = {
        "containers": [_container(c, env.get(c["name"], ()), used_ports, volumes.names)
                       for c in spec.get("containers") or []],
        "restartPolicy": spec.get("restartPolicy") or "Always",
        "labels": instance_labels(pod, node),
        "clientToken": client_token(meta["namespace"], meta["name"], meta["uid"]),
    }
    name = str(meta["name"])
    if len(name) <= 63 and _DNS_LABEL.fullmatch(name):
        body["name"] = name
    deadline = spec.get("activeDeadlineSeconds")
    if isinstance(deadline, int) and deadline > 0:
        body["activeDeadlineSeconds"] = min(deadline, MAX_ACTIVE_DEADLINE_SECONDS)
    if registry_credentials:
        body["imageRegistryCredentials"] = registry_credentials
    if volumes.volumes:
        body["volumes"] = list(volumes.volumes)
    return body
