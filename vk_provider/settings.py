"""Settings of the virtual kubelet, one frozen dataclass per concern, built once in `main`.

Every default says why it is what it is; nothing below `main` reads the environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_NODE_NAME = "cis-virtual-node"
TAINT_KEY = "virtual-kubelet.io/provider"


@dataclass(frozen=True)
class Taint:
    key: str
    value: str = ""
    effect: str = "NoSchedule"

    def to_json(self) -> dict[str, str]:
        out = {"key": self.key, "effect": self.effect}
        if self.value:
            out["value"] = self.value
        return out

    @classmethod
    def parse(cls, text: str) -> Taint:
        """`key[=value]:Effect`, as `kubectl taint` writes it."""
        body, colon, effect = text.rpartition(":")
        if not colon or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute") or not body:
            raise ValueError(f"taint {text!r}: expected key[=value]:NoSchedule|PreferNoSchedule|NoExecute")
        key, _, value = body.partition("=")
        return cls(key=key, value=value, effect=effect)


@dataclass(frozen=True)
class NodeSettings:
    name: str = DEFAULT_NODE_NAME
    # The address the apiserver dials for logs and /pods (kubelet-preferred InternalIP).
    internal_ip: str = "127.0.0.1"
    port: int = 10250
    # "Infinite" but valid: larger than any real node, small enough that the scheduler's
    # integer arithmetic (milli-cpu, bytes) never overflows. 1,000 pods per node is the
    # design target (DESIGN §7), so allow ten times that.
    cpu: str = "10000"
    memory: str = "64Ti"
    pods: str = "10000"
    ephemeral_storage: str = "1Pi"
    # The Go VK hard-codes a kubelet version; we report the apiserver minor we test against.
    kubelet_version: str = "v1.36.0-cis-vk"
    taints: tuple[Taint, ...] = (Taint(TAINT_KEY, "cis", "NoSchedule"),)
    extra_labels: tuple[tuple[str, str], ...] = ()
    # Lease and status cadence of the kubelet and the Go VK: 40 s lease renewed every
    # 10 s, full status every minute, provider ping every 10 s.
    lease_duration_seconds: int = 40
    lease_renew_seconds: float = 10.0
    status_interval_seconds: float = 60.0
    ping_interval_seconds: float = 10.0
    ping_timeout_seconds: float = 5.0


@dataclass(frozen=True)
class CisSettings:
    """How to reach CIS (gRPC). `target` "instant:" selects the in-memory instant backend
    (benchmarks: instances Running at once, like the Go VK's mock provider)."""

    target: str = "127.0.0.1:8081"
    api_key: str = field(default="", repr=False)
    # Needed with an admin key only; a tenant key implies its tenant.
    tenant: str = ""
    call_timeout_seconds: float = 15.0


@dataclass(frozen=True)
class ApiSettings:
    """The kubelet HTTPS API on :10250."""

    listen_host: str = "0.0.0.0"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Client certificates signed by this CA authenticate (the cluster CA); without it only
    # bearer tokens (TokenReview) do.
    client_ca: Path | None = None
    # kube-apiserver's own delegated-auth cache lifetimes.
    authn_cache_seconds: float = 120.0
    allow_cache_seconds: float = 300.0
    deny_cache_seconds: float = 30.0


@dataclass(frozen=True)
class PodSettings:
    # The Go VK runs 10 pod workers; creates are I/O bound, so more costs little.
    workers: int = 16
    # Informer resync: every pod's status is re-derived and orphans are swept this often.
    resync_seconds: float = 60.0
    retry_base_seconds: float = 0.5
    retry_cap_seconds: float = 60.0


@dataclass(frozen=True)
class Settings:
    kubeconfig: Path
    node: NodeSettings = field(default_factory=NodeSettings)
    cis: CisSettings = field(default_factory=CisSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    pods: PodSettings = field(default_factory=PodSettings)
