"""Authentication and authorization of the kubelet API, delegated to the apiserver.

As the kubelet (and the Go VK's `WebhookAuth`) does: a client certificate verified against
the cluster CA names the user (CN) and groups (O); otherwise a bearer token is checked with
a TokenReview; anything else is anonymous and gets 401. The user is then authorized with a
SubjectAccessReview on `nodes/<subresource>` of this node, the verb following the HTTP
method. `/pods` and `/healthz` ask for their fine-grained subresource first and fall back
to `proxy`, like kubelets since 1.33. Results are cached: authentication 2 min, allow
5 min, deny 30 s (the apiserver's delegating defaults).

`attributes` and `user_from_peercert` are pure; `Authorizer` does the I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kubeio.client import KubeClient

JSON = dict[str, Any]
Clock = Callable[[], float]

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
_SUBRESOURCES = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/checkpoint", "checkpoint"),
                 ("/pods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"))
_FINE_GRAINED = ("pods", "healthz", "configz")


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def attributes(method: str, path: str) -> tuple[str, list[str]]:
    """(verb, subresources to try in order) for a request, as the kubelet maps them."""
    verb = _VERBS.get(method.upper(), method.lower())
    for prefix, sub in _SUBRESOURCES:
        if _under(path, prefix):
            return verb, [sub, "proxy"] if sub in _FINE_GRAINED else [sub]
    return verb, ["proxy"]


def user_from_peercert(peercert: Any) -> User | None:
    """The user of a verified client certificate (`ssl.SSLSocket.getpeercert()` form)."""
    if not isinstance(peercert, dict) or not peercert.get("subject"):
        return None
    cn, orgs = "", []
    for rdn in peercert["subject"]:
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    return User(cn, tuple(orgs)) if cn else None


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def user_from_token_review(review: JSON) -> User | None:
    status = review.get("status") or {}
    if not status.get("authenticated"):
        return None
    u = status.get("user") or {}
    extra = tuple(sorted((k, tuple(v)) for k, v in (u.get("extra") or {}).items()))
    return User(str(u.get("username", "")), tuple(u.get("groups") or ()), str(u.get("uid", "")), extra)


def access_review(user: User, verb: str, subresource: str, node: str) -> JSON:
    spec: JSON = {"user": user.name, "groups": list(user.groups),
                  "resourceAttributes": {"verb": verb, "resource": "nodes", "subresource": subresource,
                                         "name": node, "version": "v1"}}
    if user.uid:
        spec["uid"] = user.uid
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


class _TtlCache:
    def __init__(self, clock: Clock, limit: int = 10_000) -> None:
        self._clock = clock
        self._limit = limit
        self._items: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._items.get(key)
        if hit is None or hit[0] < self._clock():
            return False, None
        return True, hit[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if len(self._items) >= self._limit:
            self._items.clear()
        self._items[key] = (self._clock() + ttl, value)


class Authorizer:
    """Delegated authn/authz for one node. Errors of the apiserver propagate (-> 500)."""

    def __init__(self, kube: KubeClient, node: str, *, authn_ttl: float = 120.0, allow_ttl: float = 300.0,
                 deny_ttl: float = 30.0, clock: Clock = time.monotonic) -> None:
        self._kube = kube
        self._node = node
        self._authn_ttl, self._allow_ttl, self._deny_ttl = authn_ttl, allow_ttl, deny_ttl
        self._tokens = _TtlCache(clock)
        self._decisions = _TtlCache(clock)

    async def authenticate(self, peercert: Any, authorization: str | None) -> User | None:
        user = user_from_peercert(peercert)
        if user is not None:
            return user
        token = bearer_token(authorization)
        if token is None:
            return None
        hit, cached = self._tokens.get(token)
        if hit:
            return cached  # type: ignore[no-any-return]
        review = await self._kube.create("/apis/authentication.k8s.io/v1/tokenreviews", {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}})
        user = user_from_token_review(review)
        self._tokens.put(token, user, self._authn_ttl)
        return user

    async def allowed(self, user: User, method: str, path: str) -> bool:
        verb, subresources = attributes(method, path)
        for sub in subresources:
            key = (user, verb, sub)
            hit, cached = self._decisions.get(key)
            if not hit:
                review = await self._kube.create("/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                                 access_review(user, verb, sub, self._node))
                cached = bool((review.get("status") or {}).get("allowed"))
                self._decisions.put(key, cached, self._allow_ttl if cached else self._deny_ttl)
            if cached:
                return True
        return False
