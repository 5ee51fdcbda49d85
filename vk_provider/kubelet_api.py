"""The kubelet HTTPS API on :10250, what the apiserver proxies `kubectl logs` and friends to.

Routes (one table, as `node/api/server.go` of the Go VK): `/containerLogs/{ns}/{pod}/{container}`
(from CIS's GetLogs stream, `follow` included, see `log_stream`; 501 if CIS lacks it),
`/pods`, `/runningpods/`, `/stats/summary`, `/healthz`. One middleware authenticates and
authorizes every request (`auth`), one maps errors to statuses: NotFound 404, bad input
400, a missing capability 501, else 500.
exec, attach, run and port-forward answer 501: CIS has no such capability.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from kubeio.client import KubeError
from vk_provider import cis_client, stats
from vk_provider.auth import User
from vk_provider.cis_client import Cis, CisError, Instance
from vk_provider.log_options import BadLogOptions, parse_log_options
from vk_provider.log_stream import StreamTimings, container_ended, stream_logs

log = logging.getLogger(__name__)

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Auth(Protocol):
    async def authenticate(self, peercert: Any, authorization: str | None) -> User | None: ...
    async def allowed(self, user: User, method: str, path: str) -> bool: ...


@dataclass(frozen=True)
class KubeletView:
    """What the API reads: this node's pods (informer cache), their instances, and CIS."""

    node: str
    started: datetime
    pods: Callable[[], list[JSON]]
    pod: Callable[[str, str], JSON | None]
    instance_for: Callable[[str], Instance | None]
    cis: Cis
    auth: Auth
    log_timings: StreamTimings = field(default_factory=StreamTimings)


VIEW = web.AppKey("kubelet_view", KubeletView)


@web.middleware
async def authenticate_and_map_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    view = request.app[VIEW]
    try:
        peercert = request.transport.get_extra_info("peercert") if request.transport else None
        user = await view.auth.authenticate(peercert, request.headers.get("Authorization"))
        if user is None:
            return web.Response(status=401, text="Unauthorized")
        if not await view.auth.allowed(user, request.method, request.path):
            return web.Response(status=403, text=f"Forbidden (user={user.name}, path={request.path})")
        return await handler(request)
    except web.HTTPException:
        raise
    except BadLogOptions as exc:
        return web.Response(status=400, text=str(exc))
    except cis_client.NotFound as exc:
        return web.Response(status=404, text=exc.message)
    except cis_client.InvalidInput as exc:
        return web.Response(status=400, text=exc.message)
    except cis_client.Unimplemented as exc:
        return web.Response(status=501, text=f"not implemented by CIS: {exc.message}")
    except (CisError, KubeError) as exc:
        log.warning("%s %s: %s", request.method, request.path, exc)
        return web.Response(status=500, text=str(exc))


async def not_offered(request: web.Request) -> web.Response:
    return web.Response(status=501, text=f"{request.path.split('/')[1]} is not supported by CIS instances")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def pods(request: web.Request) -> web.Response:
    return web.json_response(stats.pod_list(request.app[VIEW].pods()))


async def running_pods(request: web.Request) -> web.Response:
    view = request.app[VIEW]
    return web.json_response(stats.running_pods(view.pods(), view.instance_for))


async def stats_summary(request: web.Request) -> web.Response:
    view = request.app[VIEW]
    return web.json_response(stats.stats_summary(view.node, view.started, view.pods()))


async def container_logs(request: web.Request) -> web.StreamResponse:
    view = request.app[VIEW]
    ns, name, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
    pod = view.pod(ns, name)
    if pod is None:
        raise cis_client.NotFound(f"pod {ns}/{name} not found on node {view.node}")
    if container not in {c.get("name") for c in pod.get("spec", {}).get("containers") or []}:
        raise cis_client.NotFound(f"container \"{container}\" is not in pod {ns}/{name}")
    options = parse_log_options(container, request.query)
    uid = pod["metadata"]["uid"]
    inst = view.instance_for(uid)
    if inst is None:
        raise cis_client.InvalidInput(f"container \"{container}\" in pod \"{name}\" is waiting to start")

    def ended() -> bool:
        return container_ended(view.instance_for(uid), container)

    if options.follow and ended():
        options = replace(options, follow=False)  # as the kubelet: what there is, then EOF
    chunks = view.cis.logs(inst.id, options)
    return await stream_logs(request, chunks, ended=ended if options.follow else None, timings=view.log_timings)


def create_app(view: KubeletView) -> web.Application:
    app = web.Application(middlewares=[authenticate_and_map_errors])
    app[VIEW] = view
    app.router.add_routes([
        web.get("/healthz", healthz),
        web.get("/pods", pods),
        web.get("/pods/", pods),
        web.get("/runningpods/", running_pods),
        web.get("/runningpods", running_pods),
        web.get("/stats/summary", stats_summary),
        web.get("/stats/summary/", stats_summary),
        web.get("/containerLogs/{namespace}/{pod}/{container}", container_logs),
        *(web.route(method, f"/{verb}/{{tail:.*}}", not_offered)
          for verb in ("exec", "attach", "run", "portForward") for method in ("GET", "POST")),
    ])
    return app


def tls_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """TLS >= 1.2 with our serving certificate; client certificates are verified against the
    cluster CA when offered, and optional so bearer-token clients can connect too."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    if client_ca is not None:
        ctx.load_verify_locations(cafile=str(client_ca))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def serve(view: KubeletView, host: str, port: int, ssl_context: ssl.SSLContext | None,
                started: asyncio.Event | None = None) -> None:
    """Run the API until cancelled (a task of the root TaskGroup)."""
    runner = web.AppRunner(create_app(view), access_log=None, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
        log.info("kubelet API listening on %s://%s:%d", "https" if ssl_context else "http", host, port)
        if started is not None:
            started.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
