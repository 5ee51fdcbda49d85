"""The CIS error tree: the only exceptions that cross layer boundaries.

Domain functions raise these; adapters translate library exceptions into them at their
edge (``raise NotFound("instance", name) from exc``); exactly one aiohttp middleware and one
gRPC interceptor turn them into responses. Each class carries a stable ``code`` (part of the
public API: clients switch on it, so never rename one) plus *hints* for the transport layer
(``http_status``, ``grpc_status`` as the name of a ``grpc.StatusCode`` member). The hints
live here so the mapping is one table instead of two diverging ones; the domain itself never
imports a transport.

Tree::

    CisError (code "internal", 500)
    ├── InvalidInput(field, message)   400  the request is wrong; ``field`` is a JSON path
    ├── Unauthenticated                401  no or unknown API key
    ├── Forbidden                      403  known key, not allowed (e.g. admin-only route)
    ├── NotFound(kind, name)           404  also used for another tenant's objects
    ├── Conflict                       409  e.g. clientToken reused with another body
    ├── QuotaExceeded                  403  tenant quota (instances, vCPU, memory)
    ├── RateLimited(retry_after)       429  tenant create rate (token bucket)
    ├── Temporary(retry_after)         503  dependency down / busy: retry later
    ├── Permanent                      500  dependency failed in a way retrying cannot fix
    └── NotImplementedCapability       501  an optional capability is not configured

Quota uses 403 as Kubernetes' ResourceQuota does: retrying the same request will not help
until the tenant frees something, unlike 429.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class CisError(Exception):
    """Base of every CIS error. ``message`` is safe to show to the caller."""

    code: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    grpc_status: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, Any]:
        """Extra JSON members of the error body (field, retryAfter, ...)."""
        return {}

    def to_json(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", ...details}}``."""
        return {"error": {"code": self.code, "message": self.message, **self.details()}}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class InvalidInput(CisError):
    """The request is malformed. ``field`` is a JSON path such as
    ``containers[0].resources.cpu`` (empty string: the body as a whole)."""

    code = "invalid_input"
    http_status = 400
    grpc_status = "INVALID_ARGUMENT"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message

    def details(self) -> dict[str, Any]:
        return {"field": self.field}

    def __repr__(self) -> str:
        return f"InvalidInput({self.field!r}, {self.reason!r})"


class Unauthenticated(CisError):
    code = "unauthenticated"
    http_status = 401
    grpc_status = "UNAUTHENTICATED"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message)


class Forbidden(CisError):
    code = "forbidden"
    http_status = 403
    grpc_status = "PERMISSION_DENIED"


class NotFound(CisError):
    """``kind`` is a noun of the public API ("instance", "tenant", "cluster")."""

    code = "not_found"
    http_status = 404
    grpc_status = "NOT_FOUND"

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"{kind} {name!r} not found")
        self.kind = kind
        self.name = name

    def details(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


class Conflict(CisError):
    code = "conflict"
    http_status = 409
    grpc_status = "ALREADY_EXISTS"


class QuotaExceeded(CisError):
    """``resource`` names the exhausted quota: "instances", "vcpu" or "memoryGiB"."""

    code = "quota_exceeded"
    http_status = 403
    grpc_status = "RESOURCE_EXHAUSTED"

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(message)
        self.resource = resource

    def details(self) -> dict[str, Any]:
        return {"resource": self.resource}


MAX_RETRY_AFTER = 86400.0


class _RetryAfter(CisError):
    """Shared shape of errors that tell the caller when to come back."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        if retry_after is not None:
            # negative means "now"; inf/nan (a request that can never pass) becomes a day
            retry_after = 0.0 if retry_after < 0 else retry_after
            retry_after = retry_after if math.isfinite(retry_after) else MAX_RETRY_AFTER
        self.retry_after = retry_after

    def retry_after_header(self) -> str | None:
        """The ``Retry-After`` header value: whole seconds, rounded up, at least 1."""
        if self.retry_after is None:
            return None
        return str(max(1, math.ceil(self.retry_after)))

    def details(self) -> dict[str, Any]:
        if self.retry_after is None:
            return {}
        return {"retryAfterSeconds": max(1, math.ceil(self.retry_after))}


class RateLimited(_RetryAfter):
    code = "rate_limited"
    http_status = 429
    grpc_status = "RESOURCE_EXHAUSTED"

    def __init__(self, retry_after: float, message: str = "create rate limit exceeded") -> None:
        super().__init__(message, retry_after)


class Temporary(_RetryAfter):
    code = "unavailable"
    http_status = 503
    grpc_status = "UNAVAILABLE"


class Permanent(CisError):
    code = "permanent_failure"
    http_status = 500
    grpc_status = "INTERNAL"


class NotImplementedCapability(CisError):
    """A route whose optional capability is missing (e.g. events without Elasticsearch)."""

    code = "not_implemented"
    http_status = 501
    grpc_status = "UNIMPLEMENTED"


ALL_ERRORS: tuple[type[CisError], ...] = (
    CisError,
    InvalidInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    QuotaExceeded,
    RateLimited,
    Temporary,
    Permanent,
    NotImplementedCapability,
)
"""Every class of the tree, for exhaustive mapping tests in the transport layers."""
