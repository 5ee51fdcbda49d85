"""The kubelet API's routes and status codes, over real HTTP, with the instant CIS and an
auth fake that knows two tokens (TLS and the delegated reviews are covered elsewhere)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.vk_provider.builders import pod
from vk_provider.auth import User
from vk_provider.cis_client import LogOptions, Unimplemented
from vk_provider.instant import InstantCis
from vk_provider.kubelet_api import KubeletView, create_app
from vk_provider.log_options import BadLogOptions, parse_log_options
from vk_provider.translate import LABEL_POD_UID


class TwoTokens:
    async def authenticate(self, peercert: Any, authorization: str | None) -> User | None:
        return {"Bearer admin": User("admin"), "Bearer viewer": User("viewer")}.get(authorization or "")

    async def allowed(self, user: User, method: str, path: str) -> bool:
        return user.name == "admin"


class NoLogsCis(InstantCis):
    async def logs(self, instance_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        raise Unimplemented("no log service")
        yield b""  # pragma: no cover


@pytest.fixture(params=["instant", "no-logs"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def client(backend: str) -> AsyncIterator[TestClient[Any, Any]]:
    cis = InstantCis() if backend == "instant" else NoLogsCis()
    web_pod = pod("web-1", uid="uid-1")
    inst = await cis.create({"containers": [{"name": "main"}], "clientToken": "t", "labels": {LABEL_POD_UID: "uid-1"}})
    pods = {"default/web-1": web_pod, "default/waiting": pod("waiting", uid="uid-2")}
    view = KubeletView(node="vnode", started=datetime(2026, 11, 21, tzinfo=UTC), pods=lambda: list(pods.values()),
                       pod=lambda ns, name: pods.get(f"{ns}/{name}"),
                       instance_for=lambda uid: inst if uid == "uid-1" else None, cis=cis, auth=TwoTokens())
    async with TestClient(TestServer(create_app(view))) as c:
        yield c


ADMIN = {"Authorization": "Bearer admin"}


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"Authorization": "Bearer nobody"}, 401),
                                                 ({"Authorization": "Bearer viewer"}, 403), (ADMIN, 200)],
                         ids=["anonymous", "unknown-token", "not-allowed", "allowed"])
async def test_auth_statuses(client: TestClient[Any, Any], headers: dict[str, str], status: int) -> None:
    resp = await client.get("/pods", headers=headers)
    assert resp.status == status


async def test_unknown_paths_need_auth_too(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/exec/default/web-1/main")).status == 401
    assert (await client.get("/nope", headers=ADMIN)).status == 404
    assert (await client.post("/exec/default/web-1/main?command=ls", headers=ADMIN)).status == 501
    assert (await client.get("/portForward/default/web-1", headers=ADMIN)).status == 501


async def test_pods_runningpods_stats_healthz(client: TestClient[Any, Any]) -> None:
    pods = await (await client.get("/pods", headers=ADMIN)).json()
    assert (pods["kind"], len(pods["items"])) == ("PodList", 2)
    running = await (await client.get("/runningpods/", headers=ADMIN)).json()
    assert [p["metadata"]["name"] for p in running["items"]] == ["web-1"]
    summary = await (await client.get("/stats/summary", headers=ADMIN)).json()
    assert summary["node"]["nodeName"] == "vnode"
    assert [p["podRef"]["name"] for p in summary["pods"]] == ["web-1", "waiting"]
    assert await (await client.get("/healthz", headers=ADMIN)).text() == "ok"


async def test_container_logs_or_501(client: TestClient[Any, Any], backend: str) -> None:
    resp = await client.get("/containerLogs/default/web-1/main?tailLines=10", headers=ADMIN)
    if backend == "no-logs":
        assert resp.status == 501 and "not implemented" in await resp.text()
    else:
        assert resp.status == 200
        assert (await resp.text()).endswith("main: running in the instant backend\n")


@pytest.mark.parametrize(("path", "status"), [
    ("/containerLogs/default/nope/main", 404),
    ("/containerLogs/default/web-1/other", 404),
    ("/containerLogs/default/waiting/main", 400),
    ("/containerLogs/default/web-1/main?tailLines=-1", 400),
    ("/containerLogs/default/web-1/main?follow=maybe", 400),
], ids=["no-pod", "no-container", "not-started", "negative-tail", "bad-bool"])
async def test_container_log_errors(client: TestClient[Any, Any], path: str, status: int) -> None:
    assert (await client.get(path, headers=ADMIN)).status == status


async def test_tail_zero_is_empty(client: TestClient[Any, Any], backend: str) -> None:
    resp = await client.get("/containerLogs/default/web-1/main?tailLines=0", headers=ADMIN)
    assert (resp.status, await resp.text()) == ((501, "not implemented by CIS: no log service")
                                                if backend == "no-logs" else (200, ""))


@pytest.mark.parametrize(("query", "expected"), [
    ({}, LogOptions("c")),
    ({"tailLines": "5", "timestamps": "true", "follow": "1", "previous": "false", "limitBytes": "100"},
     LogOptions("c", tail_lines=5, timestamps=True, follow=True, limit_bytes=100)),
    ({"sinceSeconds": "30"}, LogOptions("c", since_seconds=30)),
    ({"sinceTime": "2026-11-21T10:00:00Z"}, LogOptions("c", since_time="2026-11-21T10:00:00Z")),
], ids=["defaults", "all", "since-seconds", "since-time"])
def test_parse_log_options(query: dict[str, str], expected: LogOptions) -> None:
    assert parse_log_options("c", query) == expected


@pytest.mark.parametrize("query", [
    {"sinceSeconds": "0"}, {"limitBytes": "0"}, {"tailLines": "x"}, {"sinceTime": "yesterday"},
    {"sinceTime": "2026-11-21T10:00:00Z", "sinceSeconds": "5"}, {"timestamps": "yes"}],
    ids=["since-zero", "limit-zero", "tail-nan", "bad-time", "both-since", "bad-bool"])
def test_bad_log_options(query: dict[str, str]) -> None:
    with pytest.raises(BadLogOptions):
        parse_log_options("c", query)


async def test_follow_streams_until_the_client_goes_away() -> None:
    cis = InstantCis()
    inst = await cis.create({"containers": [{"name": "main"}], "clientToken": "t"})
    web_pod = pod("web-1", uid="uid-1")
    view = KubeletView(node="vnode", started=datetime(2026, 11, 21, tzinfo=UTC), pods=lambda: [web_pod],
                       pod=lambda ns, name: web_pod, instance_for=lambda uid: inst, cis=cis, auth=TwoTokens())
    async with TestClient(TestServer(create_app(view), handler_cancellation=True)) as c:
        resp = await c.get("/containerLogs/default/web-1/main?follow=true", headers=ADMIN)
        assert resp.status == 200
        line = await resp.content.readline()
        assert line.endswith(b"running in the instant backend\n")
        resp.close()
