"""Wiring of `cis serve`: one process, one root TaskGroup holding the HTTP site, the gRPC
server, the leader election, the controller and the informers. If any of them fails, the
rest are cancelled and the process exits non-zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop
import yaml
from aiohttp import web
from elasticsearch import AsyncElasticsearch

import cis_logging
from billing.prices import default_prices, load_prices
from cis.api.app import Services, create_app
from cis.api.grpc_server import serve_grpc
from cis.api.metrics import Metrics
from cis.api.routes_billing import BillingContext
from cis.controller.lease import LeaderElector
from cis.controller.reconciler import Controller, ControllerSettings
from cis.controller.sink import EventSink
from cis.decoded import DecodedInstances
from cis.domain.ids import TenantName
from cis.domain.model import Instance
from cis.gc_tuning import freeze_startup_objects, tune_for_large_caches
from cis.history import EventHistory
from cis.instances import InstanceService
from cis.lifecycle_log import LifecycleLog
from cis.logs_api import LogService
from cis.store import InstanceStore
from cis.tenants import SYSTEM_NAMESPACE, TenantDirectory
from cis.watch_hub import WatchHub
from kubeio.client import JSON, Conflict, KubeClient
from kubeio.informer import Informer

log = logging.getLogger(__name__)

CRD_DIR = Path(__file__).resolve().parents[1] / "deploy" / "crds"


@dataclass(frozen=True)
class InformerInstances:
    """The instance informer as the list endpoint's cache (see `cis.instances.InstanceCache`)."""

    informer: Informer
    # How long a list waits for the watch to deliver this process's own last write; past
    # it, the list is served as the cache stands.
    max_wait: float = 2.0

    @property
    def objects(self) -> dict[str, JSON]:
        return self.informer.cache

    async def reflects(self, resource_version: int) -> bool:
        if not self.informer.synced.is_set():
            return False
        if not await self.informer.wait_for(resource_version, self.max_wait):
            log.debug("instance cache behind revision %d after %.1fs; listing from it anyway",
                        resource_version, self.max_wait)
        return True


@dataclass(frozen=True)
class ServeSettings:
    kubeconfig: Path
    events_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    # The gRPC API (cis.v1) on the same host; None disables it. 8081 is what the virtual
    # kubelet dials by default (vk_provider.settings.CisSettings.target).
    grpc_port: int | None = 8081
    es_url: str | None = None
    # Price table (YAML/JSON); the shipped default when unset.
    prices_file: Path | None = None
    # Written once with a fresh admin key when no admin key exists yet (bootstrap).
    admin_key_file: Path | None = None
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    controller: ControllerSettings = field(default_factory=ControllerSettings)


async def ensure_crds(kube: KubeClient) -> None:
    """Install or update our CRDs and wait until they are served."""
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
        try:
            await kube.create(base, crd)
        except Conflict:
            current = await kube.get(f"{base}/{crd['metadata']['name']}")
            crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            await kube.replace(f"{base}/{crd['metadata']['name']}", crd)
        for _ in range(100):
            got = await kube.get(f"{base}/{crd['metadata']['name']}")
            conds = {c["type"]: c["status"] for c in (got.get("status") or {}).get("conditions") or []}
            if conds.get("Established") == "True":
                break
            await asyncio.sleep(0.1)


class Platform:
    """Everything `cis serve` runs, built from settings; `run()` does the I/O."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.site_started = asyncio.Event()
        self.grpc_started = asyncio.Event()
        self.kube: KubeClient | None = None
        self.controller: Controller | None = None
        self.tenants: TenantDirectory | None = None
        self.elector: LeaderElector | None = None
        self.services: Services | None = None
        self.instances: Informer | None = None
        self.hub: WatchHub | None = None
        # Stored instances decoded once per version, for the controller and the API alike.
        self.decoded = DecodedInstances()
        # Called with (kind, object) on every ContainerInstance change (gRPC watch streams).
        self.instance_listeners: list[Callable[[str, JSON], Awaitable[None]]] = []

    async def _instance_event(self, kind: str, obj: JSON) -> None:
        """Every instance change goes to the controller (if leading) and to watchers."""
        assert self.controller is not None
        await self.controller.instance_event(kind, obj)
        for listener in self.instance_listeners:
            await listener(kind, obj)

    async def _instance_exists(self, tenant: TenantName, instance_id: str) -> bool:
        assert self.instances is not None
        return f"tenant-{tenant}/{instance_id}" in self.instances.cache

    def _cluster_client(self, name: str) -> KubeClient | None:
        assert self.controller is not None
        rt = self.controller.clusters.get(name)
        return rt.client if rt is not None else None

    def _regions(self) -> list[dict[str, Any]]:
        assert self.controller is not None
        regions: dict[str, dict[str, Any]] = {}
        for rt in self.controller.clusters.values():
            r = regions.setdefault(rt.cfg.region, {"name": rt.cfg.region, "zones": [], "clusters": []})
            if rt.cfg.zone and rt.cfg.zone not in r["zones"]:
                r["zones"].append(rt.cfg.zone)
            r["clusters"].append({"name": rt.name, "healthy": rt.healthy})
        return sorted(regions.values(), key=lambda r: str(r["name"]))

    def _kube_requests(self) -> dict[tuple[tuple[str, str], ...], float]:
        clients = [self.kube] + [rt.client for rt in (self.controller.clusters.values() if self.controller else ())]
        return {
            (("cluster", client.name), ("method", method)): float(n)
            for client in clients if client is not None
            for method, n in client.requests.items()
        }

    def _ready(self) -> dict[str, bool]:
        assert self.controller and self.tenants and self.elector
        assert self.instances is not None
        return {"informers": self.instances.synced.is_set() and self.tenants.synced(),
                "leader-or-standby": True, "http": self.site_started.is_set(),
                "grpc": self.grpc_started.is_set() or self.settings.grpc_port is None}

    def _cached_instances(self, tenant: TenantName) -> list[Instance]:
        assert self.instances is not None
        prefix = f"tenant-{tenant}/"
        return [inst for key, raw in self.instances.cache.items() if key.startswith(prefix)
                and (inst := self.decoded.instance(raw)) is not None]

    @contextlib.asynccontextmanager
    async def _clients(self) -> AsyncIterator[tuple[KubeClient, KubeClient]]:
        """The management cluster's client, and one for the Lease alone: a renewal must
        never queue behind a burst of the controller's and the API's requests, or a busy
        leader loses its lease."""
        # Connections: a batch's creates (96), the controller's workers, the informers' watches.
        kube = await KubeClient.from_kubeconfig(self.settings.kubeconfig, "management", pool=160)
        try:
            lease_kube = await KubeClient.from_kubeconfig(self.settings.kubeconfig, "management-lease", pool=2)
            try:
                yield kube, lease_kube
            finally:
                await lease_kube.close()
        finally:
            await kube.close()

    async def run(self) -> None:
        s = self.settings
        async with self._clients() as (kube, lease_kube):
            self.kube = kube
            await ensure_crds(kube)
            store = InstanceStore(kube)
            self.tenants = TenantDirectory(kube)
            await self.tenants.ensure_system_namespace()
            sink = EventSink(LifecycleLog(s.events_dir))
            self.instances = Informer(kube, "/apis/cis.io/v1/containerinstances", self._instance_event)
            # Registered before the informer runs: the hub must see its first list.
            self.hub = WatchHub(self.instances)
            self.instance_listeners.append(self.hub.listener)
            self.elector = LeaderElector(lease_kube, SYSTEM_NAMESPACE, "cis-controller", s.identity)
            self.controller = Controller(kube, store, sink, self.instances, self.elector.leading,
                                         self.elector.standing_by, self.decoded, s.controller)
            instances = InstanceService(store, self.tenants, self._cached_instances,
                                        lambda: {r["name"] for r in self._regions()},
                                        cache=InformerInstances(self.instances), decoded=self.decoded)
            self.services = Services(instances=instances, tenants=self.tenants, metrics=self.metrics,
                                     regions=self._regions, ready=self._ready)
            self.metrics.counter("cis_kube_requests_total",
                                 "Requests to Kubernetes API servers by cluster and HTTP method",
                                 self._kube_requests)
            es = AsyncElasticsearch(s.es_url) if s.es_url else None
            if es is not None:
                await cis_logging.ensure_layout(es, cis_logging.EsLayout())
                self.services.instance_events = EventHistory(es, self._cluster_client)
                self.services.logs = LogService(es, self._instance_exists)
                prices = load_prices(s.prices_file) if s.prices_file else default_prices()
                self.services.billing = BillingContext(es, prices)
            app = create_app(self.services)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(sink.run(), name="event-sink")
                    tg.create_task(self.instances.run(), name="instances")
                    tg.create_task(self.tenants.tenants.run(), name="tenants")
                    tg.create_task(self.tenants.admin.run(), name="admin-keys")
                    tg.create_task(self.elector.run(), name="leader-election")
                    tg.create_task(self.controller.run(), name="controller")
                    await self.tenants.admin.synced.wait()
                    await self.tenants.tenants.synced.wait()
                    await self._bootstrap_admin_key()
                    site = web.TCPSite(runner, s.host, s.port)
                    await site.start()
                    self.site_started.set()
                    log.info("CIS API listening on http://%s:%d", s.host, s.port)
                    tg.create_task(self._freeze_when_synced(), name="gc-freeze")
                    if s.grpc_port is not None:
                        tg.create_task(serve_grpc(self.services, self.hub, s.host, s.grpc_port, self.grpc_started),
                                       name="grpc")
            finally:
                await runner.cleanup()
                if es is not None:
                    await es.close()

    async def _freeze_when_synced(self) -> None:
        assert self.instances is not None
        await self.instances.synced.wait()
        freeze_startup_objects()

    async def _bootstrap_admin_key(self) -> None:
        path = self.settings.admin_key_file
        assert self.tenants is not None
        if path is None or path.exists():
            return
        if self.tenants.has_admin_key():
            return
        _, key = await self.tenants.create_key(None)
        path.write_text(key + "\n")
        path.chmod(0o600)
        log.info("bootstrap admin key written to %s", path)


def add_serve_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("serve", help="run the CIS API and controller")
    p.add_argument("--kubeconfig", type=Path, required=True, help="management cluster")
    p.add_argument("--events-dir", type=Path, required=True, help="where lifecycle events are written")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--grpc-port", type=int, default=8081, help="gRPC API (cis.v1) port; 0 disables it")
    p.add_argument("--es", dest="es_url", default=None, help="Elasticsearch URL (logs, events, billing)")
    p.add_argument("--admin-key-file", type=Path, default=None)
    p.add_argument("--prices", type=Path, default=None, help="price table (default: the shipped one)")
    p.add_argument("--workers", type=int, default=16)
    p.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    settings = ServeSettings(kubeconfig=args.kubeconfig, events_dir=args.events_dir, host=args.host,
                             port=args.port, grpc_port=args.grpc_port or None, es_url=args.es_url,
                             admin_key_file=args.admin_key_file, prices_file=args.prices,
                             controller=ControllerSettings(workers=args.workers))
    t0 = time.monotonic()
    tune_for_large_caches()
    try:
        uvloop.run(Platform(settings).run())
    except KeyboardInterrupt:
        pass
    log.info("CIS stopped after %.0fs", time.monotonic() - t0)
    return 0
