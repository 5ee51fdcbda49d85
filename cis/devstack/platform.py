"""CIS itself on the local stack: register the backing clusters, run `cis serve` as a real
process against the user cluster (the management cluster), and create a tenant and key.

Shared by `cis dev up` and the integration tests' fixtures.
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cis.backing import BackingClusterConfig, secret_for_cluster
from cis.devstack.cluster import Cluster
from cis.devstack.pki import write_kubeconfig
from cis.devstack.probes import answers_ok
from cis.devstack.processes import ComponentFailed, Process
from cis.devstack.stack import Stack


def embedded_kubeconfig(path: Path) -> dict[str, Any]:
    """A kubeconfig with its files inlined, as a registration Secret must carry it."""
    cfg = yaml.safe_load(path.read_text())
    for entry in cfg["clusters"]:
        c = entry["cluster"]
        if "certificate-authority" in c:
            c["certificate-authority-data"] = _b64_file(c.pop("certificate-authority"))
    for entry in cfg["users"]:
        u = entry["user"]
        for key in ("client-certificate", "client-key"):
            if key in u:
                u[f"{key}-data"] = _b64_file(u.pop(key))
    return dict(cfg)


def _b64_file(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def register_backing_clusters(stack: Stack, max_pending: int = 200) -> None:
    """Write one registration Secret per backing cluster into the management cluster."""
    user = stack.user
    docs = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cis-system"}}]
    for c in stack.backing:
        cfg = BackingClusterConfig(
            name=c.spec.name,
            region=c.spec.region,
            zone=c.spec.zone,
            kubeconfig=embedded_kubeconfig(c.kubeconfig),
            runtime_handler=c.spec.runtime_handler,
            max_pending=max_pending,
        )
        docs.append(secret_for_cluster(cfg))
    user.kubectl("apply", "-f", "-", stdin="\n---\n".join(json.dumps(d) for d in docs))


@dataclass
class CisProcess:
    process: Process
    url: str
    admin_key_file: Path
    grpc_target: str = ""  # host:port of the gRPC API (cis.v1)

    @property
    def admin_key(self) -> str:
        return self.admin_key_file.read_text().strip()


def start_cis(
    stack: Stack,
    *,
    port: int = 8080,
    grpc_port: int | None = None,
    name: str = "cis",
    workers: int = 16,
    extra_args: tuple[str, ...] = (),
) -> CisProcess:
    """Run `cis serve` as its own process and wait until it is ready. gRPC listens on
    `grpc_port`, by default the HTTP port + 1 (8081 beside 8080)."""
    host = stack.settings.ip(0)
    grpc_port = port + 1 if grpc_port is None else grpc_port
    key_file = stack.run_dir / "admin.key"
    proc = Process(
        name,
        [
            sys.executable,
            "-m",
            "cis.cli",
            "serve",
            f"--kubeconfig={stack.user.kubeconfig}",
            f"--events-dir={stack.events_dir}",
            f"--host={host}",
            f"--port={port}",
            f"--grpc-port={grpc_port}",
            f"--es={stack.es_url}",
            f"--admin-key-file={key_file}",
            f"--workers={workers}",
            *extra_args,
        ],
        stack.logs,
    )
    proc.start()
    url = f"http://{host}:{port}"
    proc.wait_ready(lambda: answers_ok(f"{url}/readyz"), 90, "ready (/readyz)")
    if not key_file.exists():
        raise ComponentFailed(name, "no bootstrap admin key was written", proc.log_file)
    return CisProcess(proc, url, key_file, f"{host}:{grpc_port}")


def api(url: str, method: str, path: str, key: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        f"{url}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read() or b"null")


def create_tenant(cis: CisProcess, name: str, **spec: Any) -> str:
    """Create a tenant (if missing) and a fresh API key for it; returns the key."""
    status, body = api(cis.url, "POST", "/v1/tenants", cis.admin_key, {"name": name, **spec})
    if status not in (201, 409):
        raise RuntimeError(f"creating tenant {name}: {status} {body}")
    deadline = time.monotonic() + 30
    while True:
        status, body = api(cis.url, "POST", f"/v1/tenants/{name}/keys", cis.admin_key)
        if status == 201:
            return str(body["key"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"creating a key for {name}: {status} {body}")
        time.sleep(0.2)  # the tenant reaches this process's cache through its watch


def cluster_pods(
    cluster: Cluster, namespace: str | None = None, selector: str = "cis.io/managed-by=cis"
) -> list[dict[str, Any]]:
    args = ["get", "pods", "-l", selector, "-o", "json"]
    args += ["-n", namespace] if namespace else ["-A"]
    return list(json.loads(cluster.kubectl(*args))["items"])


def start_virtual_kubelet(stack: Stack, cis: CisProcess, key: str, node: str = "cis-virtual-node") -> Process:
    """Run `cis-vk` for the user cluster: node identity `system:node:<node>` (Node
    authorization applies), serving certificate for its address, pods going to CIS as `key`'s tenant."""
    ip = f"127.{stack.settings.net}.1.2"  # beside the user cluster's apiserver (.1.1)
    identity = f"system:node:{node}"
    client = stack.pki.issue(f"{node}-client", identity, orgs=("system:nodes",), client=True)
    serving = stack.pki.issue(f"{node}-serving", identity, orgs=("system:nodes",), ips=(ip,), server=True)
    kubeconfig = write_kubeconfig(
        stack.run_dir / f"{node}.kubeconfig",
        server=stack.user.spec.server,
        ca=stack.pki.pair.cert,
        client=client,
        user=identity,
    )
    key_file = stack.run_dir / f"{node}.cis-key"
    key_file.write_text(key)
    key_file.chmod(0o600)
    proc = Process(
        f"vk-{node}",
        [
            str(Path(sys.executable).parent / "cis-vk"),
            f"--kubeconfig={kubeconfig}",
            f"--nodename={node}",
            f"--node-ip={ip}",
            "--port=10250",
            f"--tls-cert={serving.cert}",
            f"--tls-key={serving.key}",
            f"--client-ca={stack.pki.pair.cert}",
            f"--cis-target={cis.grpc_target}",
            f"--cis-api-key-file={key_file}",
        ],
        stack.logs,
    )
    proc.start()
    proc.wait_ready(lambda: f'"{node}"' in stack.user.kubectl("get", "nodes", "-o", "json"), 60, "registered")
    return proc
