"""An instance as backing-cluster manifests: Pod, Secrets, NetworkPolicies, Namespace.

Per tenant, once per backing cluster (``tenant_manifests``): the ``tenant-<name>``
Namespace (Pod Security "baseline" enforced as a second line of defence), the
``cis-tenant-isolation`` NetworkPolicy: every pod of the namespace accepts traffic only from
its own namespace and sends only to its own namespace and cluster DNS (tenants therefore
never reach each other, whatever their own rules say), and ``cis-default-egress``: pods
labelled ``cis.io/egress=default`` (spec without ``egress``) may also reach the internet
minus private ranges.

Per instance (``instance_manifests``, in creation order): the env Secret ``<id>-env``, the
pull Secret ``<id>-pull`` (``kubernetes.io/dockerconfigjson``), the files Secret
``<id>-files`` (every file of every files volume), the NetworkPolicy ``<id>`` (the
instance's "security group", added to the tenant policies since policies only ever allow
more; only for an instance with ``ingress`` rules or its own ``egress``) and the Pod
``<id>``. After the pod exists, ``owned_by_pod`` gives the Secrets and the policy an
ownerReference so deleting the pod garbage-collects them (``cis.instance_objects``).

Pod decisions, each deliberate:

- ``runtimeClassName`` from ``PodSettings`` (default ``kata``): the VM is the isolation
  boundary. ``requests == limits`` on every container (Guaranteed QoS) and they sum to the
  rounded size exactly: the difference between the containers' requests and the size (the
  user pays for it) goes to the first container.
- Not ``runAsNonRoot``: many public images (nginx, postgres) start as root, and inside a
  Kata VM root in the container is not root on the host.
- Capabilities: drop ALL, add back a small set that root images need to start (chown files,
  switch users, bind :80). NET_RAW, MKNOD, SYS_CHROOT, AUDIT_WRITE, SETFCAP stay dropped.
  The set is within Pod Security "baseline".
- ``allowPrivilegeEscalation: false``, ``privileged: false``, seccomp ``RuntimeDefault``,
  no host network/PID/IPC, no service-account token, no service links (no other tenant's
  service names leak in as env vars).
- Volumes are only ``emptyDir`` and the instance's own files Secret (never hostPath or
  anything outside the VM). A files volume is a ``secret`` volume with ``items``, so it
  shows exactly its own files (a secret volume without items would show every volume's);
  an empty one is a read-only emptyDir. Secret volumes are tmpfs: file contents never
  touch the node's disk. Files volumes are always mounted read-only.
- Default egress (spec without ``egress``): the internet, but not private/link-local ranges
  (the cluster's nodes, pods, services and the cloud metadata endpoint).
"""

from __future__ import annotations

import base64
import ipaddress
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cis.domain.ids import InstanceId, TenantName, tenant_namespace
from cis.domain.model import (
    ANNOTATION_ATTEMPT,
    ANNOTATION_UID,
    LABEL_INSTANCE,
    LABEL_MANAGED_BY,
    LABEL_TENANT,
    MANAGED_BY,
    Instance,
)
from cis.domain.sizes import MIB, format_cpu, format_memory
from cis.domain.spec import (
    Container,
    EmptyDirVolume,
    FilesVolume,
    NetworkRule,
    RuleProtocol,
    StorageMedium,
    Volume,
    VolumeMount,
    secret_key_for_env,
)

ZONE_LABEL = "topology.kubernetes.io/zone"
TENANT_POLICY_NAME = "cis-tenant-isolation"
DEFAULT_EGRESS_POLICY_NAME = "cis-default-egress"
LABEL_EGRESS = "cis.io/egress"
ADDED_CAPABILITIES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETGID",
    "SETPCAP",
    "SETUID",
)
PRIVATE_CIDRS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


@dataclass(frozen=True)
class PodSettings:
    """What differs between backing clusters; one per cluster, built from its registration."""

    runtime_class_name: str = "kata"
    # The kubelet's default; long enough for a graceful shutdown, short enough that a
    # delete frees capacity quickly.
    termination_grace_period_seconds: int = 30
    # Extra placement inside the cluster (e.g. KWOK nodes need a toleration).
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    # Ranges that default egress must not reach.
    private_cidrs: tuple[str, ...] = PRIVATE_CIDRS
    # Where cluster DNS runs, so the isolation policy can allow port 53 to it.
    dns_namespace: str = "kube-system"
    dns_pod_labels: Mapping[str, str] = field(default_factory=lambda: {"k8s-app": "kube-dns"})


def env_secret_name(instance_id: InstanceId) -> str:
    return f"{instance_id}-env"


def pull_secret_name(instance_id: InstanceId) -> str:
    return f"{instance_id}-pull"


def files_secret_name(instance_id: InstanceId) -> str:
    return f"{instance_id}-files"


def file_key(volume: str, index: int) -> str:
    """The files Secret key of a volume's ``index``-th file (files are sorted by path);
    volume names are DNS labels, so keys of two volumes never collide."""
    return f"{volume}.{index}"


def instance_pod_labels(instance: Instance) -> dict[str, str]:
    labels = {
        LABEL_INSTANCE: instance.id,
        LABEL_TENANT: instance.tenant,
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    if uses_default_egress(instance):
        labels[LABEL_EGRESS] = "default"
    return labels


def _metadata(instance: Instance, name: str) -> dict[str, Any]:
    return {"name": name, "namespace": instance.namespace, "labels": instance_pod_labels(instance)}


# --- pod --------------------------------------------------------------------------------------


def container_allocations(instance: Instance) -> list[tuple[int, int]]:
    """(millicores, MiB) per container: the requests, with the rest of the rounded size
    given to the first container, so the sum is exactly ``instance.size``."""
    allocations = [(c.resources.cpu_millis, c.resources.memory_mib) for c in instance.spec.containers]
    spare_cpu = instance.size.cpu_millis - sum(a[0] for a in allocations)
    spare_mem = instance.size.memory_mib - sum(a[1] for a in allocations)
    if spare_cpu < 0 or spare_mem < 0:
        raise ValueError("instance size is smaller than its containers' requests")
    first_cpu, first_mem = allocations[0]
    allocations[0] = (first_cpu + spare_cpu, first_mem + spare_mem)
    return allocations


def _container(instance: Instance, c: Container, cpu_millis: int, memory_mib: int) -> dict[str, Any]:
    quantities = {"cpu": format_cpu(cpu_millis), "memory": format_memory(memory_mib * MIB)}
    out: dict[str, Any] = {
        "name": c.name,
        "image": c.image,
        "resources": {"requests": dict(quantities), "limits": dict(quantities)},
        "securityContext": {
            "privileged": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": list(ADDED_CAPABILITIES)},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if c.command:
        out["command"] = list(c.command)
    if c.args:
        out["args"] = list(c.args)
    if c.env:
        out["env"] = [
            {
                "name": e.name,
                "valueFrom": {
                    "secretKeyRef": {
                        "name": env_secret_name(instance.id),
                        "key": secret_key_for_env(c.name, e.name),
                    }
                },
            }
            if e.secret
            else {"name": e.name, "value": e.value or ""}
            for e in c.env
        ]
    if c.ports:
        out["ports"] = [{"containerPort": p.port, "protocol": p.protocol.value} for p in c.ports]
    if c.volume_mounts:
        out["volumeMounts"] = [_mount(instance, m) for m in c.volume_mounts]
    return out


def _mount(instance: Instance, m: VolumeMount) -> dict[str, Any]:
    files = isinstance(instance.spec.volume(m.name), FilesVolume)
    out: dict[str, Any] = {"name": m.name, "mountPath": m.mount_path, "readOnly": files or bool(m.read_only)}
    if m.sub_path is not None:
        out["subPath"] = m.sub_path
    return out


def _volume(instance: Instance, v: Volume) -> dict[str, Any]:
    if isinstance(v, EmptyDirVolume):
        empty_dir: dict[str, Any] = {}
        if v.medium is StorageMedium.MEMORY:
            empty_dir["medium"] = "Memory"
        if v.size_limit_gib is not None:
            empty_dir["sizeLimit"] = format_memory(math.ceil(v.size_limit_gib * 1024 * MIB))
        return {"name": v.name, "emptyDir": empty_dir}
    if not v.files:
        return {"name": v.name, "emptyDir": {}}
    items = [{"key": file_key(v.name, i), "path": f.path, "mode": f.mode} for i, f in enumerate(v.files)]
    return {"name": v.name, "secret": {"secretName": files_secret_name(instance.id), "items": items}}


def pod_manifest(instance: Instance, settings: PodSettings | None = None) -> dict[str, Any]:
    """The pod of ``instance`` (name = instance id) for a backing cluster."""
    settings = settings or PodSettings()
    spec = instance.spec
    pod_spec: dict[str, Any] = {
        "runtimeClassName": settings.runtime_class_name,
        "restartPolicy": spec.restart_policy.value,
        "containers": [
            _container(instance, c, cpu, mem)
            for c, (cpu, mem) in zip(spec.containers, container_allocations(instance), strict=True)
        ],
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": settings.termination_grace_period_seconds,
    }
    if spec.volumes:
        pod_spec["volumes"] = [_volume(instance, v) for v in spec.volumes]
    if spec.active_deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.image_registry_credentials:
        pod_spec["imagePullSecrets"] = [{"name": pull_secret_name(instance.id)}]
    node_selector = dict(settings.node_selector)
    if spec.zone is not None:  # a cluster may span zones; the spec's zone is a constraint
        node_selector[ZONE_LABEL] = spec.zone
    if node_selector:
        pod_spec["nodeSelector"] = node_selector
    if settings.tolerations:
        pod_spec["tolerations"] = [dict(t) for t in settings.tolerations]
    metadata = _metadata(instance, instance.id)
    metadata["annotations"] = {
        ANNOTATION_UID: instance.uid,
        ANNOTATION_ATTEMPT: str(instance.status.attempt),
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


# --- secrets ----------------------------------------------------------------------------------


def _b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def env_secret_manifest(instance: Instance) -> dict[str, Any] | None:
    """The Secret behind ``secretValue`` env vars, or None if there are none."""
    data: dict[str, str] = {}
    for c in instance.spec.containers:
        for e in c.env:
            if e.secret:
                if e.secret_value is None:
                    raise ValueError(f"secret value of {c.name}/{e.name} was not loaded")
                data[secret_key_for_env(c.name, e.name)] = _b64(e.secret_value)
    return _opaque_secret(instance, env_secret_name(instance.id), data)


def _opaque_secret(instance: Instance, name: str, data: dict[str, str]) -> dict[str, Any] | None:
    """An Opaque Secret of the instance's, or None when there is nothing to keep in it."""
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _metadata(instance, name),
        "data": data,
    }


def pull_secret_manifest(instance: Instance) -> dict[str, Any] | None:
    """The ``kubernetes.io/dockerconfigjson`` Secret of the registry credentials, or None."""
    creds = instance.spec.image_registry_credentials
    if not creds:
        return None
    auths: dict[str, Any] = {}
    for cred in creds:
        if cred.password is None:
            raise ValueError(f"password for {cred.server} was not loaded")
        auths[cred.server] = {
            "username": cred.username,
            "password": cred.password,
            "auth": _b64(f"{cred.username}:{cred.password}"),
        }
    config = json.dumps({"auths": auths}, sort_keys=True, separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/dockerconfigjson",
        "metadata": _metadata(instance, pull_secret_name(instance.id)),
        "data": {".dockerconfigjson": _b64(config)},
    }


def files_secret_manifest(instance: Instance) -> dict[str, Any] | None:
    """The Secret holding every file of the instance's files volumes, or None if it has
    none. One Secret for all volumes: one object to create and collect per instance."""
    data: dict[str, str] = {}
    for v in instance.spec.volumes:
        if isinstance(v, FilesVolume):
            for i, f in enumerate(v.files):
                if f.data is None:
                    raise ValueError(f"content of {v.name}/{f.path} was not loaded")
                data[file_key(v.name, i)] = _b64(f.data)
    return _opaque_secret(instance, files_secret_name(instance.id), data)


# --- network policies ----------------------------------------------------------------------


def _peer_ports(rule: NetworkRule) -> list[dict[str, Any]] | None:
    if rule.protocol is RuleProtocol.ALL:
        return None  # no "ports": every protocol and port
    if not rule.ports:
        return [{"protocol": rule.protocol.value}]
    ports = []
    for r in rule.ports:
        port: dict[str, Any] = {"protocol": rule.protocol.value, "port": r.start}
        if r.end != r.start:
            port["endPort"] = r.end
        ports.append(port)
    return ports


def _rule(rule: NetworkRule, direction: str) -> dict[str, Any]:
    out: dict[str, Any] = {direction: [{"ipBlock": {"cidr": rule.cidr}}]}
    ports = _peer_ports(rule)
    if ports is not None:
        out["ports"] = ports
    return out


def _default_egress(settings: PodSettings) -> list[dict[str, Any]]:
    peers = []
    for everything in ("0.0.0.0/0", "::/0"):
        universe = ipaddress.ip_network(everything)
        excluded = [c for c in settings.private_cidrs if ipaddress.ip_network(c).version == universe.version]
        block: dict[str, Any] = {"cidr": everything}
        if excluded:
            block["except"] = excluded
        peers.append({"ipBlock": block})
    return [{"to": peers}]


def uses_default_egress(instance: Instance) -> bool:
    """No ``egress`` in the spec: the tenant's shared default-egress policy applies."""
    return instance.spec.egress is None


def instance_network_policy(instance: Instance, settings: PodSettings | None = None) -> dict[str, Any] | None:
    """The instance's own rules, or None when it has none (no ``ingress``, default egress):
    ingress from its ``ingress`` CIDRs; egress to its ``egress`` CIDRs. Default egress is
    the tenant's ``cis-default-egress`` policy, selected by a pod label, so the common
    instance costs no policy write of its own."""
    spec = instance.spec
    if not spec.ingress and uses_default_egress(instance):
        return None
    policy: dict[str, Any] = {
        "podSelector": {"matchLabels": {LABEL_INSTANCE: instance.id}},
        "policyTypes": ["Ingress"],
        "ingress": [_rule(r, "from") for r in spec.ingress],
    }
    if spec.egress is not None:
        policy["policyTypes"].append("Egress")
        policy["egress"] = [_rule(r, "to") for r in spec.egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(instance, instance.id),
        "spec": policy,
    }


def default_egress_policy(tenant: TenantName, settings: PodSettings | None = None) -> dict[str, Any]:
    """Egress to the internet minus private ranges, for the tenant's pods labelled
    ``cis.io/egress=default`` (instances whose spec has no ``egress``)."""
    settings = settings or PodSettings()
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": DEFAULT_EGRESS_POLICY_NAME,
            "namespace": tenant_namespace(tenant),
            "labels": tenant_labels(tenant),
        },
        "spec": {
            "podSelector": {"matchLabels": {LABEL_EGRESS: "default"}},
            "policyTypes": ["Egress"],
            "egress": _default_egress(settings),
        },
    }


def tenant_labels(tenant: TenantName) -> dict[str, str]:
    return {LABEL_TENANT: tenant, LABEL_MANAGED_BY: MANAGED_BY}


def namespace_manifest(tenant: TenantName) -> dict[str, Any]:
    labels = {**tenant_labels(tenant), "pod-security.kubernetes.io/enforce": "baseline"}
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": tenant_namespace(tenant), "labels": labels},
    }


def tenant_network_policy(tenant: TenantName, settings: PodSettings | None = None) -> dict[str, Any]:
    """Default deny across tenants: same namespace in and out, plus DNS out."""
    settings = settings or PodSettings()
    same_namespace: list[dict[str, Any]] = [{"podSelector": {}}]
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": settings.dns_namespace}},
        "podSelector": {"matchLabels": dict(settings.dns_pod_labels)},
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": TENANT_POLICY_NAME,
            "namespace": tenant_namespace(tenant),
            "labels": tenant_labels(tenant),
        },
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": same_namespace}],
            "egress": [
                {"to": same_namespace},
                {
                    "to": [dns_peer],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                },
            ],
        },
    }


def tenant_manifests(tenant: TenantName, settings: PodSettings | None = None) -> list[dict[str, Any]]:
    """Namespace, its isolation policy and its default egress: ensure them before a tenant's
    first pod."""
    return [
        namespace_manifest(tenant),
        tenant_network_policy(tenant, settings),
        default_egress_policy(tenant, settings),
    ]


def instance_manifests(instance: Instance, settings: PodSettings | None = None) -> list[dict[str, Any]]:
    """Everything one instance needs, in creation order; the Pod is last, so it never
    starts without its Secrets or its policy."""
    secrets = (env_secret_manifest(instance), pull_secret_manifest(instance), files_secret_manifest(instance))
    manifests = [m for m in secrets if m is not None]
    policy = instance_network_policy(instance, settings)
    if policy is not None:
        manifests.append(policy)
    manifests.append(pod_manifest(instance, settings))
    return manifests


def owned_by_pod(manifest: Mapping[str, Any], pod_name: str, pod_uid: str) -> dict[str, Any]:
    """A copy of ``manifest`` owned by the pod (garbage-collected with it)."""
    metadata = dict(manifest["metadata"])
    metadata["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": pod_uid}]
    return {**manifest, "metadata": metadata}
