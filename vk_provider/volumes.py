"""Volume resolution of a pod, before it becomes a CIS instance (pure).

The kubelet turns configMap, secret, downwardAPI and projected volumes into files; CIS takes
files (a `files` volume) and scratch space (`emptyDir`), so we do the kubelet's part here,
as `env` does for variables. Two steps:

1. `references(pod)` names every ConfigMap and Secret the mounted volumes need; the caller
   fetches them and gives their contents as bytes (`file_data`), so binary data
   (`binaryData`, any Secret) arrives intact.
2. `resolve_pod_volumes(pod, lookups)` builds the CIS volumes and the events to emit, with
   env's reasons (`env.source_event`): a missing *mandatory* ConfigMap, Secret or key is
   `fatal` (the pod must not reach CIS yet), a missing *optional* one leaves its files out
   and only produces an event.

Kubernetes' semantics are kept: `items` select and rename keys, `mode` beats `defaultMode`
beats 0644, and a projected volume merges its sources in order (a later path wins). A
volume with any Secret source is a `secret` CIS volume, so CIS never shows its contents.
Only volumes some container mounts are resolved; the default `kube-api-access-*` volume
and `serviceAccountToken` sources are skipped (CIS gives no token), which
`translate.pod_problems` reports.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubeio.quantity import gib
from vk_provider.env import (
    CONFIGMAP,
    SECRET,
    Event,
    FetchFailed,
    Ref,
    expand,
    key_event,
    resource_field_value,
    source_event,
)

JSON = dict[str, Any]
FileLookup = Mapping[str, bytes] | FetchFailed | None
DEFAULT_MODE = 0o644  # the kubelet's default for configMap, secret, downwardAPI and projected
SERVICE_ACCOUNT_VOLUME_PREFIX = "kube-api-access-"
SUPPORTED_KINDS = ("emptyDir", "configMap", "secret", "downwardAPI", "projected")
_FIELD_ITEM = re.compile(r"metadata\.(labels|annotations)\['([^']*)'\]")


@dataclass(frozen=True)
class VolumeResolution:
    volumes: tuple[JSON, ...] = ()  # CIS volumes, in pod order
    events: tuple[Event, ...] = ()
    fatal: tuple[str, ...] = ()  # messages of missing mandatory references
    names: frozenset[str] = field(default_factory=frozenset)  # the volumes CIS gets


def volume_kind(volume: JSON) -> str:
    return next((k for k in volume if k != "name"), "unknown")


def is_service_account_volume(volume: JSON) -> bool:
    """The projected token volume kube-apiserver adds to every pod that does not opt out."""
    return volume_kind(volume) == "projected" and str(volume.get("name", "")).startswith(
        SERVICE_ACCOUNT_VOLUME_PREFIX
    )


def mounted_volumes(pod: JSON) -> list[JSON]:
    """The pod's volumes that some container mounts, in pod order."""
    spec = pod.get("spec", {})
    mounted = {m.get("name") for c in spec.get("containers") or [] for m in c.get("volumeMounts") or []}
    return [v for v in spec.get("volumes") or [] if v.get("name") in mounted]


def _sources(volume: JSON) -> list[tuple[str, JSON]]:
    """(kind, source) pairs: the volume itself, or each source of a projected volume."""
    kind = volume_kind(volume)
    if kind == "projected":
        out = []
        for src in (volume.get("projected") or {}).get("sources") or []:
            out += [(k, v or {}) for k, v in src.items()]
        return out
    return [(kind, volume.get(kind) or {})]


def references(pod: JSON) -> set[Ref]:
    refs: set[Ref] = set()
    for volume in mounted_volumes(pod):
        if is_service_account_volume(volume):
            continue
        for kind, src in _sources(volume):
            if kind == "configMap":
                refs.add((CONFIGMAP, str(src.get("name", ""))))
            elif kind == "secret":
                refs.add((SECRET, str(src.get("secretName") or src.get("name") or "")))
    return refs


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return b""


def configmap_files(raw_configmap: JSON) -> dict[str, bytes]:
    """A ConfigMap's keys as file contents: `data` as UTF-8, `binaryData` as is."""
    out = {k: str(v).encode() for k, v in (raw_configmap.get("data") or {}).items()}
    out.update({k: _b64(v) for k, v in (raw_configmap.get("binaryData") or {}).items()})
    return out


def secret_files(raw_secret: JSON) -> dict[str, bytes]:
    """A Secret's keys as file contents (base64 `data` decoded, `stringData` as UTF-8)."""
    out = {k: _b64(v) for k, v in (raw_secret.get("data") or {}).items()}
    out.update({k: str(v).encode() for k, v in (raw_secret.get("stringData") or {}).items()})
    return out


def file_data(kind: str, raw: JSON | FetchFailed | None) -> FileLookup:
    if raw is None or isinstance(raw, FetchFailed):
        return raw
    return secret_files(raw) if kind == SECRET else configmap_files(raw)


def _go_quote(text: str) -> str:
    """Go's `%q`, which the kubelet uses for label and annotation values in downward files."""
    escapes = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v"}
    out = []
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def format_map(values: Mapping[str, str]) -> str:
    """Labels or annotations as the kubelet writes them: sorted `key="value"` lines."""
    return "\n".join(f"{k}={_go_quote(str(values[k]))}" for k in sorted(values))


class _Resolver:
    """Collects events and fatal problems while turning volumes into CIS volumes."""

    def __init__(self, pod: JSON, lookups: Mapping[Ref, FileLookup]) -> None:
        self.pod = pod
        self.lookups = lookups
        self.events: list[Event] = []
        self.fatal: list[str] = []

    def _problem(self, event: Event, optional: bool) -> None:
        self.events.append(event)
        if not optional:
            self.fatal.append(event.message)

    def volume(self, volume: JSON) -> JSON:
        name = str(volume.get("name", ""))
        if volume_kind(volume) == "emptyDir":
            return {"name": name, "emptyDir": _empty_dir(volume.get("emptyDir") or {})}
        kind = volume_kind(volume)
        body = volume.get(kind) or {}
        default_mode = body.get("defaultMode")
        default_mode = default_mode if isinstance(default_mode, int) else DEFAULT_MODE
        files: dict[str, JSON] = {}
        secret = False
        for source_kind, src in _sources(volume):
            if source_kind in ("configMap", "secret"):
                secret = secret or source_kind == "secret"
                files.update(self._keyed(name, source_kind, src, default_mode))
            elif source_kind == "downwardAPI":
                files.update(self._downward(name, src, default_mode))
            # serviceAccountToken and other sources: reported by translate.pod_problems
        out: JSON = {"name": name, "files": dict(sorted(files.items()))}
        if secret:
            out["secret"] = True
        return out

    def _keyed(self, volume: str, source_kind: str, src: JSON, default_mode: int) -> dict[str, JSON]:
        kind = CONFIGMAP if source_kind == "configMap" else SECRET
        ref_name = str(src.get("secretName") or src.get("name") or "") if kind == SECRET else str(src.get("name", ""))
        optional = src.get("optional") is True
        prefix = f"volume \"{volume}\": "
        found = self.lookups.get((kind, ref_name))
        if found is None or isinstance(found, FetchFailed):
            self._problem(source_event(kind, ref_name, found, optional, prefix), optional)
            return {}
        mode = src.get("defaultMode")
        mode = mode if isinstance(mode, int) else default_mode
        items = src.get("items")
        if not items:
            return {key: _file(data, mode) for key, data in found.items()}
        out: dict[str, JSON] = {}
        for item in items:
            key, path = str(item.get("key", "")), str(item.get("path", ""))
            if key not in found:
                self._problem(key_event(kind, ref_name, key, optional, prefix), optional)
                continue
            item_mode = item.get("mode")
            out[path] = _file(found[key], item_mode if isinstance(item_mode, int) else mode)
        return out

    def _downward(self, volume: str, src: JSON, default_mode: int) -> dict[str, JSON]:
        mode = src.get("defaultMode")
        mode = mode if isinstance(mode, int) else default_mode
        out: dict[str, JSON] = {}
        for item in src.get("items") or []:
            path = str(item.get("path", ""))
            value = self._downward_value(volume, path, item)
            if value is not None:
                item_mode = item.get("mode")
                out[path] = _file(value.encode(), item_mode if isinstance(item_mode, int) else mode)
        return out

    def _downward_value(self, volume: str, path: str, item: JSON) -> str | None:
        meta = self.pod.get("metadata", {})
        if item.get("resourceFieldRef"):
            ref = item["resourceFieldRef"]
            value = resource_field_value(self.pod, None, ref)
            if value is None:
                self.events.append(Event("UnsupportedResourceFieldRef", f"volume \"{volume}\": file \"{path}\":"
                                         f" unsupported resource \"{ref.get('resource', '')}\" of container"
                                         f" \"{ref.get('containerName', '')}\"; file left out"))
            return value
        field_path = str((item.get("fieldRef") or {}).get("fieldPath", ""))
        simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
                  "metadata.uid": meta.get("uid")}
        if field_path in simple:
            return str(simple[field_path] or "")
        if field_path in ("metadata.labels", "metadata.annotations"):
            return format_map(meta.get(field_path.partition(".")[2]) or {})
        m = _FIELD_ITEM.fullmatch(field_path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        self.events.append(Event("UnsupportedFieldPath", f"volume \"{volume}\": file \"{path}\": unsupported"
                                 f" fieldPath \"{field_path}\"; file left out"))
        return None


def _file(data: bytes, mode: int) -> JSON:
    return {"contentBase64": base64.b64encode(data).decode("ascii"), "mode": mode}


def _empty_dir(src: JSON) -> JSON:
    out: JSON = {}
    if src.get("medium") == "Memory":
        out["medium"] = "Memory"
    if src.get("sizeLimit") is not None:
        try:
            out["sizeLimitGiB"] = gib(src["sizeLimit"])
        except ValueError:
            pass  # the apiserver validated it; an unreadable limit is no limit
    return out


def resolve_pod_volumes(pod: JSON, lookups: Mapping[Ref, FileLookup]) -> VolumeResolution:
    r = _Resolver(pod, lookups)
    volumes = []
    for volume in mounted_volumes(pod):
        if is_service_account_volume(volume) or volume_kind(volume) not in SUPPORTED_KINDS:
            continue
        volumes.append(r.volume(volume))
    return VolumeResolution(volumes=tuple(volumes), events=tuple(dict.fromkeys(r.events)),
                            fatal=tuple(dict.fromkeys(r.fatal)), names=frozenset(v["name"] for v in volumes))


def container_mounts(container: JSON, volumes: frozenset[str], defined: Mapping[str, str]) -> list[JSON]:
    """A container's CIS volumeMounts: those of volumes CIS gets (the others were reported),
    `subPathExpr` expanded against the container's env as the kubelet does."""
    out = []
    for m in container.get("volumeMounts") or []:
        if m.get("name") not in volumes:
            continue
        mount: JSON = {"name": m["name"], "mountPath": m.get("mountPath", "")}
        if m.get("readOnly"):
            mount["readOnly"] = True
        sub_path = m.get("subPath") or (expand(str(m["subPathExpr"]), defined) if m.get("subPathExpr") else None)
        if sub_path:
            mount["subPath"] = sub_path
        out.append(mount)
    return out
