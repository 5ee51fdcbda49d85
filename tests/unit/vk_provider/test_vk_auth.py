"""Kubelet API auth: request attributes, identities from certificates and tokens, and the
delegated reviews with their caches (a fake apiserver at the client seam, a fake clock)."""

from __future__ import annotations

from typing import Any

import pytest

from vk_provider.auth import (
    Authorizer,
    User,
    access_review,
    attributes,
    bearer_token,
    user_from_peercert,
    user_from_token_review,
)


@pytest.mark.parametrize(("method", "path", "verb", "subs"), [
    ("GET", "/containerLogs/ns/p/c", "get", ["proxy"]),
    ("GET", "/stats/summary", "get", ["stats"]),
    ("GET", "/metrics/resource", "get", ["metrics"]),
    ("GET", "/logs/", "get", ["log"]),
    ("GET", "/pods", "get", ["pods", "proxy"]),
    ("GET", "/healthz", "get", ["healthz", "proxy"]),
    ("POST", "/exec/ns/p/c", "create", ["proxy"]),
    ("GET", "/podsx", "get", ["proxy"]),
], ids=["logs", "stats", "metrics", "node-logs", "pods", "healthz", "exec", "prefix-is-not-a-path"])
def test_attributes(method: str, path: str, verb: str, subs: list[str]) -> None:
    assert attributes(method, path) == (verb, subs)


def test_user_from_a_verified_client_certificate() -> None:
    cert = {"subject": ((("organizationName", "system:masters"),), (("commonName", "kube-apiserver-kubelet-client"),))}
    assert user_from_peercert(cert) == User("kube-apiserver-kubelet-client", ("system:masters",))
    assert user_from_peercert(None) is None
    assert user_from_peercert({}) is None


@pytest.mark.parametrize(("header", "token"), [
    ("Bearer abc", "abc"), ("bearer abc", "abc"), ("Basic abc", None), ("Bearer ", None), (None, None)],
    ids=["bearer", "case", "basic", "empty", "none"])
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_review_results() -> None:
    ok = {"status": {"authenticated": True, "user": {"username": "sa", "uid": "1", "groups": ["g"],
                                                     "extra": {"k": ["v"]}}}}
    assert user_from_token_review(ok) == User("sa", ("g",), "1", (("k", ("v",)),))
    assert user_from_token_review({"status": {"authenticated": False}}) is None


def test_access_review_names_this_node() -> None:
    review = access_review(User("u", ("g",), "7", (("k", ("v",)),)), "get", "proxy", "vnode")
    assert review["spec"] == {"user": "u", "groups": ["g"], "uid": "7", "extra": {"k": ["v"]},
                              "resourceAttributes": {"verb": "get", "resource": "nodes", "subresource": "proxy",
                                                     "name": "vnode", "version": "v1"}}


class FakeApiserver:
    """Answers TokenReviews for one token and SubjectAccessReviews for listed subresources."""

    def __init__(self, allowed: set[str]) -> None:
        self.allowed = allowed
        self.calls: list[str] = []

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(path.rsplit("/", 1)[-1])
        if body["kind"] == "TokenReview":
            good = body["spec"]["token"] == "good"
            return {"status": {"authenticated": good, "user": {"username": "sa", "groups": ["g"]}}}
        return {"status": {"allowed": body["spec"]["resourceAttributes"]["subresource"] in self.allowed}}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_authentication_prefers_certificates_and_caches_tokens() -> None:
    api, clock = FakeApiserver(set()), Clock()
    authz = Authorizer(api, "vnode", clock=clock)  # type: ignore[arg-type]
    cert = {"subject": ((("commonName", "admin"),),)}
    assert await authz.authenticate(cert, "Bearer good") == User("admin")
    assert api.calls == []
    assert await authz.authenticate(None, None) is None
    assert await authz.authenticate(None, "Bearer good") == User("sa", ("g",))
    assert await authz.authenticate(None, "Bearer good") == User("sa", ("g",))
    assert await authz.authenticate(None, "Bearer bad") is None
    assert api.calls == ["tokenreviews", "tokenreviews"]
    clock.now = 121.0
    await authz.authenticate(None, "Bearer good")
    assert api.calls.count("tokenreviews") == 3


async def test_authorization_falls_back_to_proxy_and_caches_allow_longer_than_deny() -> None:
    api, clock = FakeApiserver({"proxy"}), Clock()
    authz = Authorizer(api, "vnode", clock=clock)  # type: ignore[arg-type]
    user = User("u")
    assert await authz.allowed(user, "GET", "/pods")
    assert api.calls == ["subjectaccessreviews", "subjectaccessreviews"]  # pods denied, proxy allowed
    assert not await authz.allowed(user, "GET", "/stats/summary")
    calls = len(api.calls)
    clock.now = 31.0  # deny expired, allow still cached
    await authz.allowed(user, "GET", "/pods")
    assert len(api.calls) == calls + 1  # only the "pods" denial was asked again
    await authz.allowed(user, "GET", "/stats/summary")
    assert len(api.calls) == calls + 2
