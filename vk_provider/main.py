"""`cis-vk`: the virtual kubelet process. Parses settings, wires the parts, runs them in one
root TaskGroup (node controller, pod controller, event recorder, kubelet API): if one ends
with an error the others are cancelled and the process exits non-zero.

Flags follow the Go VK's where they exist (`--nodename`, `--kubeconfig`,
`--pod-sync-workers`), with its environment variables as defaults where it has them
(`KUBELET_PORT`, `VKUBELET_POD_IP`, `APISERVER_CERT_LOCATION`, `APISERVER_KEY_LOCATION`,
`APISERVER_CA_CERT_LOCATION`); the CIS API key comes from `--cis-api-key-file` or `CIS_API_KEY`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from cis.gc_tuning import tune_for_large_caches
from kubeio.client import KubeClient, user_agent
from vk_provider.auth import Authorizer
from vk_provider.cis_client import Cis, GrpcCis
from vk_provider.events import EventRecorder
from vk_provider.instant import InstantCis
from vk_provider.kubelet_api import KubeletView, serve, tls_context
from vk_provider.node_controller import NodeController
from vk_provider.pod_controller import PodController
from vk_provider.settings import (
    DEFAULT_NODE_NAME,
    TAINT_KEY,
    ApiSettings,
    CisSettings,
    NodeSettings,
    PodSettings,
    Settings,
    Taint,
)
from vk_provider.translate import node_selector

log = logging.getLogger("vk_provider")


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cis-vk", description="virtual kubelet offloading a cluster's pods to CIS")
    p.add_argument("--kubeconfig", type=Path,
                   default=env.get("KUBECONFIG") or Path.home() / ".kube" / "config")
    p.add_argument("--nodename", default=env.get("DEFAULT_NODE_NAME", DEFAULT_NODE_NAME))
    p.add_argument("--node-ip", default=env.get("VKUBELET_POD_IP", "127.0.0.1"),
                   help="InternalIP the apiserver dials for logs (default: $VKUBELET_POD_IP)")
    p.add_argument("--port", type=int, default=int(env.get("KUBELET_PORT", "10250")))
    p.add_argument("--listen-host", default=None, help="address to bind (default: the node IP)")
    p.add_argument("--tls-cert", type=Path, default=env.get("APISERVER_CERT_LOCATION"))
    p.add_argument("--tls-key", type=Path, default=env.get("APISERVER_KEY_LOCATION"))
    p.add_argument("--client-ca", type=Path, default=env.get("APISERVER_CA_CERT_LOCATION"),
                   help="CA whose client certificates authenticate (the cluster CA)")
    p.add_argument("--cis-target", default="127.0.0.1:8081", help='CIS gRPC host:port, or "instant:"')
    p.add_argument("--cis-api-key-file", type=Path, default=None)
    p.add_argument("--cis-tenant", default="", help="tenant of the instances (admin keys only)")
    p.add_argument("--cpu", default=NodeSettings.cpu)
    p.add_argument("--memory", default=NodeSettings.memory)
    p.add_argument("--pods", default=NodeSettings.pods)
    p.add_argument("--taint", action="append", default=None,
                   help=f"key[=value]:Effect, repeatable (default {TAINT_KEY}=cis:NoSchedule)")
    p.add_argument("--disable-taint", action="store_true")
    p.add_argument("--pod-sync-workers", type=int, default=PodSettings.workers)
    p.add_argument("--log-level", default="info")
    return p


def settings_from_args(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    api_key = args.cis_api_key_file.read_text().strip() if args.cis_api_key_file else env.get("CIS_API_KEY", "")
    if args.disable_taint:
        taints: tuple[Taint, ...] = ()
    elif args.taint:
        taints = tuple(Taint.parse(t) for t in args.taint)
    else:
        taints = NodeSettings.taints
    node = NodeSettings(name=args.nodename, internal_ip=args.node_ip, port=args.port, cpu=args.cpu,
                        memory=args.memory, pods=args.pods, taints=taints)
    if not api_key and not args.cis_target.startswith("instant:"):
        raise ValueError("a CIS API key is required: --cis-api-key-file or $CIS_API_KEY")
    if args.tls_cert is None or args.tls_key is None:
        raise ValueError("--tls-cert and --tls-key are required: the apiserver reaches the kubelet API over TLS")
    return Settings(
        kubeconfig=args.kubeconfig, node=node,
        cis=CisSettings(target=args.cis_target, api_key=api_key, tenant=args.cis_tenant),
        api=ApiSettings(listen_host=args.listen_host or args.node_ip, tls_cert=args.tls_cert,
                        tls_key=args.tls_key, client_ca=args.client_ca),
        pods=replace(PodSettings(), workers=args.pod_sync_workers),
    )


def make_cis(s: CisSettings) -> Cis:
    if s.target.startswith("instant:"):
        return InstantCis(tenant=s.tenant or "instant")
    return GrpcCis(s.target, s.api_key, tenant=s.tenant, timeout=s.call_timeout_seconds)


async def run(settings: Settings) -> None:
    """Everything the process does; returns only by cancellation or raises."""
    s = settings
    assert s.api.tls_cert is not None and s.api.tls_key is not None
    ssl_ctx = tls_context(s.api.tls_cert, s.api.tls_key, s.api.client_ca)
    kube = await KubeClient.from_kubeconfig(s.kubeconfig, "user-cluster", user_agent=user_agent("cis-vk"))
    cis = make_cis(s.cis)
    try:
        recorder = EventRecorder(kube, s.node.name)
        pods = PodController(kube, cis, recorder, s.node, s.pods)
        node = NodeController(kube, s.node, lambda: cis.ping(node_selector(s.node.name)), pods.ready)
        authz = Authorizer(kube, s.node.name, authn_ttl=s.api.authn_cache_seconds,
                           allow_ttl=s.api.allow_cache_seconds, deny_ttl=s.api.deny_cache_seconds)
        view = KubeletView(
            node=s.node.name, started=datetime.now(UTC),
            pods=lambda: list(pods.pods.cache.values()),
            pod=lambda ns, name: pods.pods.cache.get(f"{ns}/{name}"),
            instance_for=pods.instances.for_pod, cis=cis, auth=authz,
        )
        async with asyncio.TaskGroup() as tg:
            tg.create_task(recorder.run(), name="event-recorder")
            tg.create_task(pods.run(), name="pod-controller")
            tg.create_task(node.run(), name="node-controller")
            tg.create_task(serve(view, s.api.listen_host, s.node.port, ssl_ctx), name="kubelet-api")
    finally:
        await cis.close()
        await kube.close()


async def _run_until_signal(settings: Settings) -> None:
    """SIGTERM/SIGINT cancel `run`; that cancellation (and only that one) is a clean exit."""
    task = asyncio.current_task()
    assert task is not None
    signalled: list[int] = []

    def stop(sig: int) -> None:
        signalled.append(sig)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await run(settings)
    except asyncio.CancelledError:
        if not signalled:
            raise
        log.info("stopping on signal %d", signalled[0])


def main(argv: Sequence[str] | None = None) -> int:
    env = dict(os.environ)
    args = build_parser(env).parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args, env)
    except (ValueError, OSError) as exc:
        print(f"cis-vk: {exc}", file=sys.stderr)
        return 2
    log.info("node %s (%s:%d) -> CIS %s", settings.node.name, settings.node.internal_ip, settings.node.port,
             settings.cis.target)
    tune_for_large_caches()
    try:
        asyncio.run(_run_until_signal(settings))
    except Exception:
        log.exception("virtual kubelet failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
