"""A pass-through proxy that answers `GET /` for the minimal Elasticsearch distribution.

Filebeat's Elasticsearch output reads the cluster version from `GET /` before it sends
anything, and refuses to ship while that fails. The integ-test distribution CIS runs
locally lacks the `rest-root` module, so it answers `GET /` with 405. This shim answers
that one request from `GET /_nodes/_local` (which the distribution does serve) and
forwards every other request byte for byte. Production clusters have `rest-root` and need
no shim. Tests also stop and restart it to make Elasticsearch unreachable for Filebeat.

Usage: python -m cis_logging.root_shim --listen 127.0.0.1:9201 --upstream http://127.0.0.1:9200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from cis_logging.params import check_url

log = logging.getLogger(__name__)

# Hop-by-hop headers (RFC 9110 §7.6.1) and those aiohttp recomputes.
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                  "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length"})


def root_document(raw_nodes: dict[str, Any]) -> dict[str, Any] | None:
    """The `GET /` body built from a `GET /_nodes/_local` response (pure)."""
    nodes = raw_nodes.get("nodes") or {}
    for node_id, node in nodes.items():
        version = node.get("version")
        if not isinstance(version, str):
            continue
        return {
            "name": node.get("name", node_id),
            "cluster_name": raw_nodes.get("cluster_name", "elasticsearch"),
            "cluster_uuid": "_na_",
            "version": {"number": version, "build_flavor": "default", "build_type": "zip"},
            "tagline": "You Know, for Search",
        }
    return None


class RootShim:
    """Constructing validates; `run()` serves until cancelled. `ready` is set once listening."""

    def __init__(self, upstream: str, host: str, port: int) -> None:
        self.upstream = check_url("upstream", upstream).rstrip("/")
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range")
        self.host = host
        self.port = port
        self.ready = asyncio.Event()
        self._root: dict[str, Any] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def run(self) -> None:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # Bodies pass through compressed as Filebeat sent them (Content-Encoding kept).
        runner = web.AppRunner(app, auto_decompress=False, access_log=None)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
            self._session = session
            await runner.setup()
            try:
                await web.TCPSite(runner, self.host, self.port).start()
                self.ready.set()
                log.info("root shim on %s:%s -> %s", self.host, self.port, self.upstream)
                await asyncio.Event().wait()
            finally:
                await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        try:
            if request.path == "/" and request.method in ("GET", "HEAD"):
                return await self._answer_root()
            return await self._forward(request)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("upstream %s unreachable: %s", self.upstream, exc)
            return web.json_response({"error": f"upstream unreachable: {exc}"}, status=502)

    async def _answer_root(self) -> web.Response:
        assert self._session is not None
        if self._root is None:
            async with self._session.get(f"{self.upstream}/_nodes/_local?filter_path="
                                         "cluster_name,nodes.*.version,nodes.*.name",
                                         headers={"Accept-Encoding": "identity"}) as resp:
                raw = await resp.json(content_type=None) if resp.status == 200 else {}
            self._root = root_document(raw)
            if self._root is None:
                return web.json_response({"error": "upstream has no node version"}, status=502)
        return web.json_response(self._root, headers={"X-Elastic-Product": "Elasticsearch"})

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs,
                                         headers=headers, data=body or None) as resp:
            payload = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            return web.Response(status=resp.status, body=payload, headers=out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cis_logging.root_shim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", required=True, help="HOST:PORT to listen on")
    parser.add_argument("--upstream", required=True, help="Elasticsearch URL")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    try:
        shim = RootShim(args.upstream, host or "127.0.0.1", int(port))
    except ValueError as exc:
        parser.error(str(exc))

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        await shim.run()

    try:
        asyncio.run(serve())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
