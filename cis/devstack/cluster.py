"""One local Kubernetes cluster: kube-apiserver, controller-manager, scheduler, and KWOK.

All clusters of a stack share one etcd (each under its own `--etcd-prefix`) and one CA.
Each cluster listens on its own loopback address, so every component keeps its usual
port. Backing clusters get KWOK-managed fake nodes labelled Kata-capable and a
`RuntimeClass` named `kata`; the user cluster gets no fake nodes (the virtual kubelet
registers its node there).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cis.devstack.pki import CertificateAuthority, CertPair, write_kubeconfig
from cis.devstack.probes import answers_ok, get_json, tls_context
from cis.devstack.processes import GO_RUNTIME_ENV, Process
from cis.domain.timestamps import parse_optional

KATA_NODE_LABEL = "katacontainers.io/kata-runtime"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
# Set by the node lifecycle controller while a node is (or was seen) not ready.
NOT_READY_TAINTS = frozenset({"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"})
KWOK_PORT = 10247
CIS_STAGES = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kwok-cis-stages.yaml"


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    ip: str
    region: str
    zone: str
    backing: bool
    kwok_nodes: int = 0
    node_cpu: str = "64"
    node_memory: str = "256Gi"
    node_pods: str = "250"
    runtime_handler: str = "kata"

    @property
    def server(self) -> str:
        return f"https://{self.ip}:6443"

    @property
    def kwok_node_names(self) -> list[str]:
        return [f"{self.name}-node-{i}" for i in range(self.kwok_nodes)]


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    kwok: Path
    kwok_stages: Path
    etcd: Path
    elasticsearch: Path
    filebeat: Path

    def missing(self) -> list[Path]:
        return [p for p in vars(self).values() if not p.exists()]


class Cluster:
    """Processes and bootstrap objects of one cluster. Starting is split in phases so a
    stack can start every cluster's apiserver before waiting on any of them."""

    def __init__(
        self,
        spec: ClusterSpec,
        *,
        bins: Binaries,
        ca: CertificateAuthority,
        sa_keys: CertPair,
        etcd_url: str,
        root: Path,
    ) -> None:
        self.spec = spec
        self.bins = bins
        self.ca = ca
        self.dir = root / spec.name
        self.logs = self.dir / "logs"
        self.dir.mkdir(parents=True, exist_ok=True)
        name, ip = spec.name, spec.ip
        serving = ca.issue(
            f"{name}-apiserver",
            "kube-apiserver",
            server=True,
            dns=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ips=(ip, "127.0.0.1", "10.96.0.1"),
        )
        self.admin = ca.issue(f"{name}-admin", "kubernetes-admin", orgs=("system:masters",), client=True)
        kubelet_client = ca.issue(
            f"{name}-kubelet-client", "kube-apiserver-kubelet-client", orgs=("system:masters",), client=True
        )
        kcm = ca.issue(f"{name}-kcm", "system:kube-controller-manager", client=True)
        # Serving certificates from our CA, so health probes can verify them.
        kcm_tls = ca.issue(f"{name}-kcm-serving", "kube-controller-manager", server=True, ips=(ip,))
        sched_tls = ca.issue(f"{name}-scheduler-serving", "kube-scheduler", server=True, ips=(ip,))
        sched = ca.issue(f"{name}-scheduler", "system:kube-scheduler", client=True)
        self.kubelet_client = kubelet_client
        self.kubeconfig = write_kubeconfig(
            self.dir / "admin.kubeconfig",
            server=spec.server,
            ca=ca.pair.cert,
            client=self.admin,
            user="kubernetes-admin",
        )
        kcm_cfg = write_kubeconfig(
            self.dir / "kcm.kubeconfig",
            server=spec.server,
            ca=ca.pair.cert,
            client=kcm,
            user="system:kube-controller-manager",
        )
        sched_cfg = write_kubeconfig(
            self.dir / "scheduler.kubeconfig",
            server=spec.server,
            ca=ca.pair.cert,
            client=sched,
            user="system:kube-scheduler",
        )
        sched_conf = self.dir / "scheduler.yaml"
        sched_conf.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    # The default 50 QPS makes a batch of hundreds of pods crawl on bind calls.
                    "clientConnection": {"kubeconfig": str(sched_cfg), "qps": 500, "burst": 1000},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self.apiserver = Process(
            f"{name}-kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--etcd-prefix=/registry-{name}",
                f"--bind-address={ip}",
                "--secure-port=6443",
                f"--advertise-address={ip}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.pair.cert}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={sa_keys.cert}",
                f"--service-account-signing-key-file={sa_keys.key}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                # Endpoints validation rejects loopback addresses, so the default reconciler fails.
                "--endpoint-reconciler-type=none",
                f"--kubelet-client-certificate={kubelet_client.cert}",
                f"--kubelet-client-key={kubelet_client.key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--service-cluster-ip-range=10.96.0.0/16",
                # Admission control of CIS, not apiserver throttling, bounds the load; see DESIGN §3.
                "--max-requests-inflight=0",
                "--max-mutating-requests-inflight=0",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                "--watch-cache=true",
                "--v=1",
            ],
            self.logs,
            env=GO_RUNTIME_ENV,
        )
        self.controller_manager = Process(
            f"{name}-kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                f"--kubeconfig={kcm_cfg}",
                f"--authentication-kubeconfig={kcm_cfg}",
                f"--authorization-kubeconfig={kcm_cfg}",
                "--leader-elect=false",
                f"--bind-address={ip}",
                "--secure-port=10257",
                f"--tls-cert-file={kcm_tls.cert}",
                f"--tls-private-key-file={kcm_tls.key}",
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={sa_keys.key}",
                f"--root-ca-file={ca.pair.cert}",
                f"--cluster-signing-cert-file={ca.pair.cert}",
                f"--cluster-signing-key-file={ca.pair.key}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--controllers=*",
                "--profiling=false",
                "--v=1",
            ],
            self.logs,
            env=GO_RUNTIME_ENV,
        )
        self.scheduler = Process(
            f"{name}-kube-scheduler",
            [
                str(bins.kube_scheduler),
                f"--config={sched_conf}",
                f"--authentication-kubeconfig={sched_cfg}",
                f"--authorization-kubeconfig={sched_cfg}",
                f"--bind-address={ip}",
                "--secure-port=10259",
                "--profiling=false",
                "--v=1",
                f"--tls-cert-file={sched_tls.cert}",
                f"--tls-private-key-file={sched_tls.key}",
            ],
            self.logs,
            env=GO_RUNTIME_ENV,
        )
        self.kwok: Process | None = None
        if spec.backing:
            kwok_tls = ca.issue(f"{name}-kwok", "kwok", server=True, ips=(ip,), dns=("localhost",))
            kwok_conf = self.dir / "kwok.yaml"
            # What KWOK serves as every container's log (the apiserver -> kubelet path).
            self.container_log = self.dir / "kwok-container.log"
            # CRI format, as a kubelet writes it; KWOK parses it like the kubelet does.
            self.container_log.write_text(
                f"2026-01-01T00:00:00.000000000Z stdout F hello from the kwok kubelet of {name}\n"
            )
            kwok_conf.write_text(kwok_config(bins.kwok_stages, self.container_log))
            self.kwok = Process(
                f"{name}-kwok",
                [
                    str(bins.kwok),
                    f"--kubeconfig={self.kubeconfig}",
                    f"--config={kwok_conf}",
                    "--manage-all-nodes=false",
                    f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                    f"--node-ip={ip}",
                    f"--node-name={name}-kwok",
                    f"--node-port={KWOK_PORT}",
                    f"--server-address={ip}:{KWOK_PORT}",
                    f"--tls-cert-file={kwok_tls.cert}",
                    f"--tls-private-key-file={kwok_tls.key}",
                    f"--cidr=10.{100 + _octet(ip)}.0.0/16",
                    "--node-lease-duration-seconds=40",
                ],
                self.logs,
                env=GO_RUNTIME_ENV,
            )

    @property
    def processes(self) -> list[Process]:
        procs = [self.apiserver, self.controller_manager, self.scheduler]
        return procs + ([self.kwok] if self.kwok else [])

    def _tls(self) -> Any:
        return tls_context(self.ca.pair.cert, self.admin)

    def start_apiserver(self) -> None:
        self.apiserver.start()

    def wait_apiserver(self, timeout: float = 120.0) -> None:
        url = f"{self.spec.server}/readyz"
        self.apiserver.wait_ready(lambda: answers_ok(url, self._tls()), timeout, "ready (/readyz)")

    def start_controllers(self) -> None:
        self.controller_manager.start()
        self.scheduler.start()
        if self.kwok:
            self._release_node_leases()
            self.kwok.start()

    def _release_node_leases(self) -> None:
        """A kubelet keeps its identity across restarts; KWOK takes a new one each start, so
        on a stack started again it would first wait out its predecessor's node Leases
        (40 s) and ignore the nodes' pods meanwhile, and some of those it never picks up
        afterwards (it checks the takeover against a Lease cache that does not have it
        yet). Deleting the old Leases lets it create its own at once."""
        self.kubectl("-n", "kube-node-lease", "delete", "lease", "--ignore-not-found", *self.spec.kwok_node_names)

    def wait_controllers(self, timeout: float = 120.0) -> None:
        ctx = self._tls()
        ip = self.spec.ip
        self.controller_manager.wait_ready(lambda: answers_ok(f"https://{ip}:10257/healthz", ctx), timeout, "healthy")
        self.scheduler.wait_ready(lambda: answers_ok(f"https://{ip}:10259/healthz", ctx), timeout, "healthy")
        # Pods are rejected until the controller-manager made the namespace's ServiceAccount.
        self.controller_manager.wait_ready(
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") is not None,
            timeout,
            "serving (default ServiceAccount)",
        )

    def bootstrap(self, timeout: float = 120.0) -> None:
        """Apply the RuntimeClass and the fake nodes, and wait until KWOK made them Ready."""
        if not self.spec.backing:
            return
        self.kubectl("apply", "-f", "-", stdin=backing_objects(self.spec))
        assert self.kwok is not None
        self.kwok.wait_ready(self._nodes_ready, timeout, "managing Ready nodes")

    def wait_nodes_schedulable(self, since: dt.datetime, timeout: float = 120.0) -> None:
        """After an apiserver outage: wait until KWOK has renewed every node's Lease since
        `since` and the node lifecycle controller has lifted its not-ready/unreachable
        taints, so new pods can land on the nodes again."""
        assert self.kwok is not None
        self.kwok.wait_ready(lambda: self._nodes_ready(renewed_since=since), timeout, "managing schedulable nodes")

    def wait_recovered(self, since: dt.datetime, timeout: float = 180.0) -> None:
        """After an apiserver outage: nodes schedulable again (`wait_nodes_schedulable`), and
        a canary Deployment in a new namespace ready. The controller-manager's and the
        scheduler's watches come back by themselves, but only once their retry backoff has
        run out (up to about a minute after a long outage); until then a new namespace gets
        no ServiceAccount and a new Deployment no pods."""
        self.wait_nodes_schedulable(since, timeout)
        ns = f"canary-{dt.datetime.now(dt.UTC):%H%M%S%f}"
        self.kubectl("create", "namespace", ns)
        try:
            self.controller_manager.wait_ready(
                lambda: self._get(f"/api/v1/namespaces/{ns}/serviceaccounts/default") is not None,
                timeout, "serving (a new namespace's ServiceAccount)")
            self.kubectl("-n", ns, "create", "deployment", "canary", "--image=nginx:1.27")
            self.controller_manager.wait_ready(
                lambda: (self._get(f"/apis/apps/v1/namespaces/{ns}/deployments/canary") or {})
                .get("status", {}).get("readyReplicas") == 1,
                timeout, "running a canary Deployment")
        finally:
            self.kubectl("delete", "namespace", ns, "--wait=false")

    def _get(self, path: str) -> Any:
        try:
            return get_json(f"{self.spec.server}{path}", context=self._tls())
        except RuntimeError:
            return None

    def _nodes_ready(self, renewed_since: dt.datetime | None = None) -> bool:
        """All KWOK nodes Ready and free of the taints that keep new pods off a node that
        was not ready; with `renewed_since`, each also renewed its Lease after that time."""
        nodes = self._get("/api/v1/nodes?labelSelector=type%3Dkwok") or {"items": []}
        ready = [
            n
            for n in nodes["items"]
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
            and not {t.get("key") for t in n.get("spec", {}).get("taints") or []} & NOT_READY_TAINTS
            and (renewed_since is None or self._lease_renewed_since(n["metadata"]["name"], renewed_since))
        ]
        return len(ready) == self.spec.kwok_nodes

    def _lease_renewed_since(self, node: str, since: dt.datetime) -> bool:
        lease = self._get(f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{node}") or {}
        renewed = parse_optional(lease.get("spec", {}).get("renewTime"))
        return renewed is not None and renewed >= since

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        """Run the real kubectl against this cluster as admin."""
        proc = subprocess.run(
            [str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} on {self.spec.name}: {proc.stderr.strip()}")
        return proc.stdout

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "region": self.spec.region,
            "zone": self.spec.zone,
            "backing": self.spec.backing,
            "server": self.spec.server,
            "kubeconfig": str(self.kubeconfig),
            "runtimeHandler": self.spec.runtime_handler,
        }


def _octet(ip: str) -> int:
    return int(ip.split(".")[2])


def kwok_config(stages_dir: Path, container_log: Path) -> str:
    """KwokConfiguration followed by the Stages KWOK plays: fast node start with Lease
    heartbeats; pods Ready at once and deleted at once; Job pods completing after the
    delay their annotations ask for (`pod-complete.stage.kwok.x-k8s.io/delay` and
    `.../jitter-delay`); and CIS's own stages (deploy/local/kwok-cis-stages.yaml)."""
    docs: list[str] = [
        yaml.safe_dump(
            {
                "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
                "kind": "KwokConfiguration",
                "options": {
                    "podPlayStageParallelism": 8,
                    "nodePlayStageParallelism": 4,
                    "nodeLeaseParallelism": 4,
                    "nodeLeaseDurationSeconds": 40,
                    # Serves containerLogs (the `kubectl logs` path) from ClusterLogs below.
                    "enableDebuggingHandlers": True,
                },
            }
        )
    ]
    wanted = [
        "node/fast/node-initialize.yaml",
        "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
        "pod/fast/pod-ready.yaml",
        "pod/fast/pod-delete.yaml",
        "pod/general/pod-complete.yaml",
    ]
    docs += [(stages_dir / f).read_text() for f in wanted]
    docs.append(CIS_STAGES.read_text())
    docs.append(
        yaml.safe_dump(
            {
                "apiVersion": "kwok.x-k8s.io/v1alpha1",
                "kind": "ClusterLogs",
                "metadata": {"name": "all-pods"},
                "spec": {"logs": [{"logsFile": str(container_log), "follow": False}]},
            }
        )
    )
    return "\n---\n".join(d.strip() for d in docs) + "\n"


def backing_objects(spec: ClusterSpec) -> str:
    """RuntimeClass `kata` (with pod overhead and a node selector) and KWOK fake nodes."""
    objs: list[dict[str, Any]] = [
        {
            "apiVersion": "node.k8s.io/v1",
            "kind": "RuntimeClass",
            "metadata": {"name": "kata"},
            "handler": spec.runtime_handler,
            # Kata's VM costs memory and CPU beyond the containers' own requests.
            "overhead": {"podFixed": {"cpu": "250m", "memory": "160Mi"}},
            "scheduling": {"nodeSelector": {KATA_NODE_LABEL: "true"}},
        }
    ]
    for node_name in spec.kwok_node_names:
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node_name,
                    "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                    "labels": {
                        "type": "kwok",
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "kubernetes.io/hostname": node_name,
                        KATA_NODE_LABEL: "true",
                        "topology.kubernetes.io/region": spec.region,
                        "topology.kubernetes.io/zone": spec.zone,
                    },
                },
                "spec": {},
                "status": {
                    "allocatable": {"cpu": spec.node_cpu, "memory": spec.node_memory, "pods": spec.node_pods},
                    "capacity": {"cpu": spec.node_cpu, "memory": spec.node_memory, "pods": spec.node_pods},
                    "phase": "Running",
                },
            }
        )
    return "\n---\n".join(json.dumps(o) for o in objs)
