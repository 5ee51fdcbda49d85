"""Benchmark: a Deployment of N replicas (default 500) on a virtual node until every pod is
Ready, on one user cluster, in one run:

1. the upstream Go virtual-kubelet with its mock provider (pods Running at once): baseline;
2. this provider with the instant backend (`--cis-target instant:`, instances Running at
   once): the same job, so the ratio measures the provider's own overhead (target <= 1.5);
3. optionally (`--cis-url`), this provider through real CIS and KWOK: end to end, reported
   apart, since CIS placement and KWOK dominate it.

Prints each time, the ratio, and our provider's RSS (current and peak). Uses the running
stack in --run-dir (then the end-to-end run needs --cis-url), or starts its own stack with
CIS on 127.41.x.1 (--start-stack DIR), runs all three, and stops it. Needs the Go VK binary
the installer builds into the cache (`virtual-kubelet-v1.13.0/bin/virtual-kubelet`).

    .venv/bin/python bench/bench_vk.py --start-stack /var/tmp/cis/bench-vk [--replicas 500]
    .venv/bin/python bench/bench_vk.py --run-dir /var/tmp/cis/dev \
        [--cis-url http://127.10.0.1:8080 --cis-admin-key-file /var/tmp/cis/dev/admin.key]

The Go VK's CLI leaves client-go at its default client-side rate limit (5 requests/s,
burst 10) and has no flag to change it, so its time is bounded by that limit; the numbers
compare the two programs as shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cis.devstack.pki import CertificateAuthority, write_kubeconfig
from cis.devstack.platform import CisProcess, create_tenant, register_backing_clusters, start_cis
from cis.devstack.processes import Process
from cis.devstack.stack import Stack, StackSettings, default_cache_dir, load_manifest

NAMESPACE = "vk-bench"
GO_VK = "virtual-kubelet-v1.13.0/bin/virtual-kubelet"


@dataclass
class Cluster:
    """The user cluster as admin: JSON over HTTPS with the stack's admin certificate."""

    server: str
    context: ssl.SSLContext
    kubectl: list[str]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as resp:
                return int(resp.status), json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return int(err.code), json.loads(err.read() or b"null")


def wait(what: str, check: Callable[[], bool], timeout: float, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def node_ready(cluster: Cluster, node: str) -> bool:
    status, body = cluster.call("GET", f"/api/v1/nodes/{node}")
    return status == 200 and any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in body["status"].get("conditions", []))


def deployment(name: str, node: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "automountServiceAccountToken": False, "nodeSelector": {"kubernetes.io/hostname": node},
                         "tolerations": [{"key": "virtual-kubelet.io/provider", "operator": "Exists"}],
                         "containers": [{"name": "web", "image": "nginx:1.27",
                                         "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}}}]}}}}


def time_deployment(cluster: Cluster, node: str, replicas: int) -> float:
    """Seconds from creating the Deployment until `replicas` pods are Ready; then clean up."""
    name = f"bench-{node}"
    base = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    t0 = time.monotonic()
    status, body = cluster.call("POST", base, deployment(name, node, replicas))
    assert status == 201, body

    def ready() -> bool:
        _, d = cluster.call("GET", f"{base}/{name}")
        return int(d.get("status", {}).get("readyReplicas") or 0) >= replicas
    try:
        wait(f"{replicas} Ready pods on {node}", ready, 900, every=0.25)
        return time.monotonic() - t0
    finally:
        cluster.call("DELETE", f"{base}/{name}", {"propagationPolicy": "Background"})
        pods = f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3D{name}"
        try:
            wait("the pods to go", lambda: not cluster.call("GET", pods + "&limit=1")[1]["items"], 300, every=1)
        except SystemExit:  # the provider died: do its job so the next run starts clean
            for p in cluster.call("GET", pods)[1]["items"]:
                cluster.call("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{p['metadata']['name']}",
                             {"gracePeriodSeconds": 0})


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB of a process and its children's main process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class Bench:
    def __init__(self, run_dir: Path, replicas: int) -> None:
        manifest = load_manifest(run_dir)
        user = next(c for c in manifest["clusters"] if c["name"] == "user")
        self.run_dir = run_dir
        self.replicas = replicas
        self.ca = CertificateAuthority(run_dir / "pki")
        self.net = user["server"].split(".")[1]
        self.user_server = user["server"]
        admin = run_dir / "pki" / "user-admin"
        ctx = ssl.create_default_context(cafile=str(self.ca.pair.cert))
        ctx.load_cert_chain(str(admin) + ".crt", str(admin) + ".key")
        self.cluster = Cluster(user["server"], ctx, [manifest["kubectl"], f"--kubeconfig={user['kubeconfig']}"])
        self.admin_kubeconfig = Path(user["kubeconfig"])
        self.logs = run_dir / "logs"
        self.cluster.call("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})

    def _certs(self, node: str, ip: str) -> tuple[Path, Path, Path]:
        identity = f"system:node:{node}"
        client = self.ca.issue(f"bench-{node}-client", identity, orgs=("system:nodes",), client=True)
        serving = self.ca.issue(f"bench-{node}-serving", identity, orgs=("system:nodes",), ips=(ip,), server=True)
        kubeconfig = write_kubeconfig(self.run_dir / f"bench-{node}.kubeconfig", server=self.user_server,
                                      ca=self.ca.pair.cert, client=client, user=identity)
        return kubeconfig, serving.cert, serving.key

    def run_go(self, binary: Path) -> float:
        node, ip = "bench-go-vk", f"127.{self.net}.1.4"
        _, cert, key = self._certs(node, ip)
        cfg = self.run_dir / "bench-go-vk-mock.json"
        cfg.write_text(json.dumps({node: {"cpu": "10000", "memory": "64Ti", "pods": "10000"}}))
        # The Go VK sets kubernetes.io/role on its node, which NodeRestriction refuses to a
        # node identity, so it runs as admin (its usual RBAC is broader than a node's anyway).
        proc = Process("vk-bench-go", [str(binary), "--provider=mock", f"--provider-config={cfg}",
                                       f"--nodename={node}", f"--kubeconfig={self.admin_kubeconfig}"],
                       self.logs, env={"APISERVER_CERT_LOCATION": str(cert), "APISERVER_KEY_LOCATION": str(key),
                                       "KUBELET_PORT": "10350", "VKUBELET_POD_IP": ip,
                                       # The mock's pod map has no lock (VK#98): with its 10 workers
                                       # in parallel it dies of "concurrent map writes". One OS
                                       # thread keeps the 10 workers' I/O concurrency but not the race.
                                       "GOMAXPROCS": "1"})
        return self._measure(proc, node)[0]

    def run_python(self, target: str, key_file: Path | None, label: str) -> tuple[float, tuple[int, int]]:
        node, ip = f"bench-py-{label}", f"127.{self.net}.1.5"
        kubeconfig, cert, key = self._certs(node, ip)
        argv = [str(Path(sys.executable).parent / "cis-vk"), f"--kubeconfig={kubeconfig}", f"--nodename={node}",
                f"--node-ip={ip}", "--port=10351", f"--tls-cert={cert}", f"--tls-key={key}",
                f"--client-ca={self.ca.pair.cert}", f"--cis-target={target}", "--log-level=warning"]
        if key_file is not None:
            argv.append(f"--cis-api-key-file={key_file}")
        return self._measure(Process(f"vk-bench-py-{label}", argv, self.logs), node)

    def _measure(self, proc: Process, node: str) -> tuple[float, tuple[int, int]]:
        proc.start()
        try:
            proc.wait_ready(lambda: node_ready(self.cluster, node), 120, "node Ready")
            elapsed = time_deployment(self.cluster, node, self.replicas)
            assert proc.popen is not None
            return elapsed, rss_kib(proc.popen.pid)
        finally:
            proc.stop()
            self.cluster.call("DELETE", f"/api/v1/nodes/{node}")


def start_stack(run_dir: Path) -> tuple[Stack, CisProcess]:
    """A stack of our own with room for the pods (4 KWOK nodes of 1,000 cpu / 1,000 pods)."""
    stack = Stack(StackSettings(run_dir=run_dir, net=41, node_cpu="1000", node_memory="4000Gi",
                                node_pods="1000", with_filebeat=False))
    stack.start()
    try:
        register_backing_clusters(stack, max_pending=1000)
        return stack, start_cis(stack)
    except BaseException:
        stack.stop()
        raise


def end_to_end(bench: Bench, cis: CisProcess, grpc: str, replicas: int) -> None:
    key = create_tenant(cis, "vk-bench", quota={"maxInstances": 5000, "maxVcpu": 5000, "maxMemoryGiB": 20000},
                        createBurst=5000, createRatePerSecond=1000)
    key_file = bench.run_dir / "bench-vk.cis-key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    e2e, (rss, peak) = bench.run_python(grpc, key_file, "cis")
    print(f"cis-vk through CIS + KWOK:        {replicas} pods Ready in {e2e:7.2f}s"
          f"   RSS {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB)   (end to end, not in the ratio)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR", "/var/tmp/cis/dev")))
    p.add_argument("--start-stack", type=Path, default=None, help="start (and stop) a stack in this directory")
    p.add_argument("--replicas", type=int, default=500)
    p.add_argument("--go-vk", type=Path, default=default_cache_dir() / GO_VK)
    p.add_argument("--cis-url", default=None, help="CIS REST URL for the end-to-end run (creates a tenant)")
    p.add_argument("--cis-grpc", default=None, help="CIS gRPC host:port (default: the REST host, port 8081)")
    p.add_argument("--cis-admin-key-file", type=Path, default=None)
    args = p.parse_args()
    if not args.go_vk.exists():
        raise SystemExit(f"{args.go_vk} is missing: the installer builds it (deploy/local/install.sh)")
    stack: Stack | None = None
    cis: CisProcess | None = None
    if args.start_stack:
        stack, cis = start_stack(args.start_stack)
    try:
        bench = Bench(args.start_stack or args.run_dir, args.replicas)
        go = bench.run_go(args.go_vk)
        print(f"go virtual-kubelet (mock):        {args.replicas} pods Ready in {go:7.2f}s")
        ours, (rss, peak) = bench.run_python("instant:", None, "instant")
        print(f"cis-vk (instant backend):         {args.replicas} pods Ready in {ours:7.2f}s"
              f"   RSS {rss / 1024:.0f} MiB (peak {peak / 1024:.0f} MiB)")
        print(f"ratio cis-vk / go: {ours / go:.2f} (target <= 1.5)")
        if cis is None and args.cis_url:
            admin_key_file = args.cis_admin_key_file or args.run_dir / "admin.key"
            cis = CisProcess(process=None, url=args.cis_url, admin_key_file=admin_key_file)  # type: ignore[arg-type]
        if cis is not None:
            grpc = args.cis_grpc or getattr(cis, "grpc_target", "") or (
                cis.url.split("//", 1)[1].rsplit(":", 1)[0] + ":8081")
            end_to_end(bench, cis, grpc, args.replicas)
    finally:
        if stack is not None:
            assert cis is not None
            cis.process.stop()
            stack.stop()


if __name__ == "__main__":
    main()
