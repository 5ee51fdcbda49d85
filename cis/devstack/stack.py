"""The local stack of real components: etcd, a user cluster, backing clusters with KWOK,
Elasticsearch and Filebeat.

Used by `cis dev up|down|status` and by the integration tests' session fixture. Addresses
are `127.<net>.<n>.1`; a stack for tests and a stack for `make run` use different `net`
values, so both can run at once. `stack.json` in the run directory describes a running
stack to other processes (CIS, the virtual kubelet, tests).
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cis.devstack.cluster import Binaries, Cluster, ClusterSpec
from cis.devstack.pki import CertificateAuthority, write_service_account_keys
from cis.devstack.probes import answers_ok, get_json
from cis.devstack.processes import GO_RUNTIME_ENV, ComponentFailed, Process, pid_file_alive, stop_pid_file

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALLER = REPO_ROOT / "deploy" / "local" / "install.sh"
# Elasticsearch refuses to run as root; this unprivileged user runs it instead.
ES_USER = "cis-es"


def default_cache_dir() -> Path:
    env = os.environ.get("CIS_CACHE")
    if env:
        return Path(env)
    # Under root the cache must be readable by ES_USER, which cannot enter /root.
    return Path("/var/cache/cis") if os.geteuid() == 0 else Path.home() / ".cache" / "cis"


@dataclass(frozen=True)
class StackSettings:
    """What a stack looks like. Defaults fit a 2-core machine: two backing regions with
    two fake nodes each, big enough for a few thousand small pods."""

    run_dir: Path
    cache_dir: Path = field(default_factory=default_cache_dir)
    # Second octet of every address; `make run` and the tests use different ones.
    net: int = 10
    backing_regions: tuple[str, ...] = ("region-a", "region-b")
    kwok_nodes: int = 2
    node_cpu: str = "64"
    node_memory: str = "256Gi"
    node_pods: str = "250"
    es_heap: str = "512m"
    with_filebeat: bool = True

    def ip(self, host: int) -> str:
        return f"127.{self.net}.{host}.1"


def resolve_binaries(cache_dir: Path) -> Binaries:
    """Ask the installer where each versioned binary lives (it owns the versions)."""
    out = subprocess.run(
        ["bash", str(INSTALLER), "paths"], capture_output=True, text=True, check=True,
        env={**os.environ, "CIS_CACHE": str(cache_dir)},
    ).stdout
    paths = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return Binaries(**{k: Path(v) for k, v in paths.items()})


def _ensure_es_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(ES_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        ES_USER], check=True)
    return ES_USER


class Stack:
    def __init__(self, settings: StackSettings, bins: Binaries | None = None) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir
        self.bins = bins or resolve_binaries(settings.cache_dir)
        missing = [p for p in self.bins.missing() if settings.with_filebeat or p != self.bins.filebeat]
        if missing:
            raise ComponentFailed("stack", f"missing binaries {missing}; run `make deps`")
        self.logs = self.run_dir / "logs"
        self.pki = CertificateAuthority(self.run_dir / "pki")
        sa_keys = write_service_account_keys(self.run_dir / "pki")
        self.etcd_url = f"http://{settings.ip(0)}:2379"
        self.es_url = f"http://{settings.ip(0)}:9200"
        self.es_shim_url = f"http://{settings.ip(0)}:9201"
        specs = [ClusterSpec("user", settings.ip(1), "user", "user-1", backing=False)]
        for i, region in enumerate(settings.backing_regions):
            specs.append(ClusterSpec(
                region, settings.ip(2 + i), region, f"{region}-1", backing=True,
                kwok_nodes=settings.kwok_nodes, node_cpu=settings.node_cpu,
                node_memory=settings.node_memory, node_pods=settings.node_pods,
            ))
        self.clusters = {s.name: Cluster(s, bins=self.bins, ca=self.pki, sa_keys=sa_keys,
                                         etcd_url=self.etcd_url, root=self.run_dir / "clusters")
                         for s in specs}
        self.events_dir = self.run_dir / "events"
        self.pod_logs_dir = self.run_dir / "pod-logs"
        self.etcd = self._etcd_process()
        self.elasticsearch = self._es_process()
        self.filebeat: Process | None = None
        self.es_shim: Process | None = None

    @property
    def user(self) -> Cluster:
        return self.clusters["user"]

    @property
    def backing(self) -> list[Cluster]:
        return [c for c in self.clusters.values() if c.spec.backing]

    def _etcd_process(self) -> Process:
        ip = self.settings.ip(0)
        data = self.run_dir / "etcd-data"
        return Process("etcd", [
            str(self.bins.etcd), "--name=n0", f"--data-dir={data}",
            f"--listen-client-urls=http://{ip}:2379", f"--advertise-client-urls=http://{ip}:2379",
            f"--listen-peer-urls=http://{ip}:2380", f"--initial-advertise-peer-urls=http://{ip}:2380",
            f"--initial-cluster=n0=http://{ip}:2380",
            # Test data: durability on power loss is not worth an fsync per write.
            "--unsafe-no-fsync=true", "--auto-compaction-retention=1",
            "--quota-backend-bytes=8589934592", "--log-level=warn",
        ], self.logs, env=GO_RUNTIME_ENV)

    def _es_process(self) -> Process:
        es_home = self.bins.elasticsearch.parent.parent
        data = self.run_dir / "es"
        ip = self.settings.ip(0)
        heap = self.settings.es_heap
        return Process("elasticsearch", [
            str(self.bins.elasticsearch),
            "-E", "discovery.type=single-node", "-E", f"network.host={ip}", "-E", "http.port=9200",
            "-E", "transport.port=9300", "-E", "xpack.security.enabled=false",
            "-E", f"path.data={data / 'data'}", "-E", f"path.logs={data / 'logs'}",
            "-E", "cluster.routing.allocation.disk.threshold_enabled=false",
            "-E", "action.destructive_requires_name=false",
        ], self.logs, env={
            "ES_JAVA_HOME": str(find_java_home()),
            # C1-only JIT halves start-up on 2 busy cores; a test node's steady-state speed
            # matters less than the minute it would otherwise take to come up.
            "ES_JAVA_OPTS": f"-Xms{heap} -Xmx{heap} -XX:TieredStopAtLevel=1",
            "CLI_JAVA_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            "ES_TMPDIR": str(data / "tmp"),
            "ES_PATH_CONF": str(data / "config"),
        }, cwd=es_home)

    def _prepare_es_dirs(self) -> None:
        data = self.run_dir / "es"
        es_home = self.bins.elasticsearch.parent.parent
        for sub in ("data", "logs", "tmp"):
            (data / sub).mkdir(parents=True, exist_ok=True)
        if not (data / "config").exists():
            shutil.copytree(es_home / "config", data / "config")
        user = _ensure_es_user()
        if user is not None:
            self.elasticsearch.user = user
            shutil.chown(data, user)
            for path in data.rglob("*"):
                shutil.chown(path, user)
            # ES_USER must reach its data through the run directory's parents.
            for parent in [self.run_dir, *self.run_dir.parents]:
                if parent == Path("/"):
                    break
                parent.chmod(parent.stat().st_mode | 0o001)

    def start(self) -> None:
        """Start every component, in dependency order, overlapping the slow ones."""
        t0 = time.monotonic()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.events_dir.mkdir(exist_ok=True)
        self.pod_logs_dir.mkdir(exist_ok=True)
        try:
            self._prepare_es_dirs()
            self.elasticsearch.start()  # the JVM is the slowest; start it first
            self.etcd.start()
            self.etcd.wait_ready(lambda: answers_ok(f"{self.etcd_url}/health"), 60, "healthy")
            for c in self.clusters.values():
                c.start_apiserver()
            for c in self.clusters.values():
                c.wait_apiserver()
                c.start_controllers()
            log.info("apiservers ready after %.1fs", time.monotonic() - t0)
            for c in self.clusters.values():
                c.wait_controllers()
                c.bootstrap()
            log.info("clusters ready after %.1fs", time.monotonic() - t0)
            self.elasticsearch.wait_ready(self._es_ready, 180, "green/yellow")
            log.info("elasticsearch ready after %.1fs", time.monotonic() - t0)
            if self.settings.with_filebeat:
                self.es_shim = self._start_es_root_shim()
                self._setup_es_templates()
                self.filebeat = self._start_filebeat()
            self._write_manifest()
        except BaseException:
            self.stop()
            raise
        log.info("stack up in %.1fs (run dir %s)", time.monotonic() - t0, self.run_dir)

    def _es_ready(self) -> bool:
        health = get_json(f"{self.es_url}/_cluster/health?wait_for_status=yellow&timeout=1s")
        return health.get("status") in ("green", "yellow")

    def _setup_es_templates(self) -> None:
        """Index templates before the first document ships, so nothing is mapped dynamically."""
        import asyncio

        from elasticsearch import AsyncElasticsearch

        from cis_logging.es_setup import ensure_layout
        from cis_logging.layout import EsLayout

        async def setup() -> None:
            async with AsyncElasticsearch(self.es_url) as es:
                await ensure_layout(es, EsLayout())

        asyncio.run(setup())

    def _start_es_root_shim(self) -> Process:
        """The minimal ES distribution lacks the `rest-root` module, so `GET /` (which
        Filebeat asks before shipping) answers 405; this pass-through proxy answers it
        from the real node info and forwards everything else (cis_logging.root_shim)."""
        shim = Process("es-root-shim", [
            sys.executable, "-m", "cis_logging.root_shim",
            "--listen", f"{self.settings.ip(0)}:9201", "--upstream", self.es_url,
        ], self.logs)
        shim.start()
        shim.wait_ready(lambda: answers_ok(f"{self.es_shim_url}/"), 30, "answering")
        return shim

    def _start_filebeat(self) -> Process:
        from cis_logging.stack_config import render_stack_filebeat

        fb_dir = self.run_dir / "filebeat"
        fb_dir.mkdir(exist_ok=True)
        config = fb_dir / "filebeat.yml"
        config.write_text(render_stack_filebeat(
            es_url=self.es_shim_url, events_dir=self.events_dir, pod_logs_dir=self.pod_logs_dir))
        config.chmod(0o600)
        proc = Process("filebeat", [
            str(self.bins.filebeat), "-e", "-c", str(config), "--path.home", str(fb_dir),
            "--path.data", str(fb_dir / "data"), "--path.logs", str(fb_dir / "logs"),
        ], self.logs)
        proc.start()
        return proc

    @property
    def processes(self) -> list[Process]:
        procs = [self.etcd, self.elasticsearch]
        for c in self.clusters.values():
            procs += c.processes
        return procs + [p for p in (self.es_shim, self.filebeat) if p is not None]

    def stop(self) -> None:
        """Stop everything this stack started, dependants first."""
        for proc in reversed(self.processes):
            proc.stop()

    def _write_manifest(self) -> None:
        manifest = {
            "runDir": str(self.run_dir),
            "etcd": self.etcd_url,
            "elasticsearch": self.es_url,
            "eventsDir": str(self.events_dir),
            "podLogsDir": str(self.pod_logs_dir),
            "ca": str(self.pki.pair.cert),
            "kubectl": str(self.bins.kubectl),
            "clusters": [c.describe() for c in self.clusters.values()],
        }
        (self.run_dir / "stack.json").write_text(json.dumps(manifest, indent=2))


def find_java_home() -> Path:
    """A JDK Elasticsearch 8 accepts (17+): ES_JAVA_HOME, JAVA_HOME, or the system one."""
    for env in ("ES_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(env):
            return Path(os.environ[env])
    java = shutil.which("java")
    if java is None:
        raise ComponentFailed("elasticsearch", "no Java found (need 17+); install openjdk-17-jre-headless")
    return Path(java).resolve().parent.parent


def stack_status(run_dir: Path) -> dict[str, bool]:
    """Which components of the stack in `run_dir` are running, from their pid files."""
    return {p.stem: pid_file_alive(p) is not None for p in sorted(run_dir.glob("**/*.pid"))}


def stop_stack(run_dir: Path) -> list[str]:
    """Stop a stack started by another process; returns the components that were running."""
    stopped = []
    pids = sorted(run_dir.glob("**/*.pid"), key=_stop_order)
    for pid_file in pids:
        if stop_pid_file(pid_file):
            stopped.append(pid_file.stem)
    return stopped


def _stop_order(pid_file: Path) -> int:
    name = pid_file.stem
    order = ["cis", "vk", "filebeat", "kwok", "scheduler", "controller-manager", "apiserver",
             "elasticsearch", "etcd"]
    return next((i for i, k in enumerate(order) if k in name), 0)


def load_manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "stack.json").read_text()))
