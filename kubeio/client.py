"""A thin JSON client for the Kubernetes API on top of kubernetes-asyncio.

kubernetes-asyncio loads kubeconfigs (certificates, tokens, exec plugins) and owns the
aiohttp session; we talk to it in plain JSON dicts instead of generated models, because
deserialising thousands of Pod models per second costs more than the whole controller.
Library and HTTP errors become the small error tree below, at this edge and only here.

Shared by `cis` (management and backing clusters) and `vk_provider` (the user's cluster).
"""

from __future__ import annotations

import collections
import importlib.metadata
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import config as k8s_config

log = logging.getLogger(__name__)

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class KubeError(Exception):
    """An API call failed; `status` is the HTTP status (0 when the server was unreachable)."""

    def __init__(self, status: int, reason: str, message: str, body: JSON | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


class NotFound(KubeError):
    pass


class Conflict(KubeError):
    """409: AlreadyExists on create, or a stale resourceVersion on update."""


class Gone(KubeError):
    """410: the resourceVersion a watch asked for was compacted away; relist."""


class Unreachable(KubeError):
    pass


def _error(status: int, body: JSON | None, text: str = "") -> KubeError:
    reason = str((body or {}).get("reason", ""))
    message = str((body or {}).get("message", text[:300]))
    cls = {404: NotFound, 409: Conflict, 410: Gone}.get(status, KubeError)
    return cls(status, reason, message, body)


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, NO_PROXY), if any."""
    parts = urllib.parse.urlsplit(url)
    if urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return urllib.request.getproxies().get(parts.scheme)


def user_agent(program: str) -> str:
    """`program/version`, the form Kubernetes clients send (kubectl/v1.36.3)."""
    try:
        version = importlib.metadata.version("cis")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return f"{program}/{version}"


DEFAULT_USER_AGENT = user_agent("cis")


class KubeClient:
    """JSON verbs against one cluster. Construct with `from_kubeconfig`; close when done.

    `user_agent` names the program to the apiserver: its part before "/" is the field
    manager of every write (managedFields) and the user agent of audit records.
    """

    def __init__(self, api: k8s_client.ApiClient, name: str = "", user_agent: str = DEFAULT_USER_AGENT) -> None:
        self._api = api
        self.name = name
        api.user_agent = user_agent
        cfg = api.configuration
        self._base = str(cfg.host).rstrip("/")
        # The library's connection pool and TLS setup, without its per-request overhead
        # (model sanitising, and proxy/netrc lookups in a thread for every request):
        # proxies are decided once here, as client-go does, from the environment.
        library_session: aiohttp.ClientSession = api.rest_client.pool_manager
        self._session = aiohttp.ClientSession(connector=library_session.connector, connector_owner=False,
                                              trust_env=False, read_bufsize=2**21)
        self._proxy = _proxy_for(self._base) or cfg.proxy
        self._server_hostname = cfg.tls_server_name
        # Requests sent, by HTTP method (for metrics and benchmarks).
        self.requests: collections.Counter[str] = collections.Counter()

    @classmethod
    async def from_kubeconfig(cls, path: Path | str, name: str = "", pool: int = 64,
                              user_agent: str = DEFAULT_USER_AGENT) -> KubeClient:
        cfg = k8s_client.Configuration()
        await k8s_config.load_kube_config(config_file=str(path), client_configuration=cfg)
        cfg.connection_pool_maxsize = pool
        return cls(k8s_client.ApiClient(configuration=cfg), name or Path(path).stem, user_agent)

    @classmethod
    async def from_kubeconfig_dict(cls, config: dict[str, Any], name: str, pool: int = 64,
                                   user_agent: str = DEFAULT_USER_AGENT) -> KubeClient:
        cfg = k8s_client.Configuration()
        await k8s_config.load_kube_config_from_dict(config, client_configuration=cfg)
        cfg.connection_pool_maxsize = pool
        return cls(k8s_client.ApiClient(configuration=cfg), name, user_agent)

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    async def close(self) -> None:
        await self._session.close()
        await self._api.close()

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | None = 30.0,
    ) -> aiohttp.ClientResponse:
        headers = {**self._api.default_headers, "Accept": "application/json", "Content-Type": content_type}
        await self._api.update_params_for_auth(headers, [], ["BearerToken"])  # refreshes expiring tokens
        query = [
            (k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (params or {}).items() if v is not None
        ]
        data = body if body is None or isinstance(body, (bytes, str)) else orjson.dumps(body)
        self.requests[method] += 1
        extra: dict[str, Any] = {"server_hostname": self._server_hostname} if self._server_hostname else {}
        try:
            resp = await self._session.request(
                method,
                self._base + path,
                params=query,
                data=data,
                headers=headers,
                proxy=self._proxy,
                timeout=aiohttp.ClientTimeout(total=timeout),
                **extra,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unreachable(0, "Unreachable", f"{self.name}: {exc!r}") from exc
        if resp.status >= 300:
            text = await resp.text()
            resp.release()
            try:
                raw = json.loads(text)
            except ValueError:
                raw = None
            raise _error(resp.status, raw if isinstance(raw, dict) else None, text)
        return resp

    async def call(self, method: str, path: str, **kw: Any) -> JSON:
        resp = await self._request(method, path, **kw)
        try:
            raw = await resp.read()
            # orjson: the objects of every request and watch pass through here; it parses
            # them in well under half the time of the standard library.
            data: Any = orjson.loads(raw) if raw and not raw.isspace() else None  # None: an empty body
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(0, "Unreachable", f"{self.name}: {exc!r}") from exc
        finally:
            resp.release()
        return cast(JSON, data)

    async def text(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """GET a non-JSON endpoint (/readyz, container logs)."""
        resp = await self._request("GET", path, params=params)
        try:
            return await resp.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(0, "Unreachable", f"{self.name}: {exc!r}") from exc
        finally:
            resp.release()

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> JSON:
        return await self.call("GET", path, params=params)

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.call("POST", path, body=body)

    async def replace(self, path: str, body: JSON) -> JSON:
        return await self.call("PUT", path, body=body)

    async def patch(self, path: str, body: JSON, content_type: str = MERGE_PATCH) -> JSON:
        return await self.call("PATCH", path, body=body, content_type=content_type)

    async def delete(self, path: str, body: JSON | None = None) -> JSON | None:
        """Delete; a missing object is not an error (deletion is idempotent)."""
        try:
            return await self.call("DELETE", path, body=body)
        except NotFound:
            return None

    async def stream_lines(
        self, path: str, params: Mapping[str, Any], timeout: float | None
    ) -> AsyncGenerator[bytes, None]:
        """Yield raw lines of a streaming response (watch, follow logs)."""
        resp = await self._request("GET", path, params=params, timeout=timeout)
        try:
            async for line in resp.content:
                if line.strip():
                    yield line
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unreachable(0, "Unreachable", f"{self.name}: {exc!r}") from exc
        finally:
            resp.release()
