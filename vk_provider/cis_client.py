"""CIS as the virtual kubelet sees it: a small protocol, and its gRPC adapter (cis.v1).

The provider knows CIS only through `Cis`; `GrpcCis` speaks the generated stubs and is the
one place where grpc exceptions become ours (`error_from_status`). Specs and instances
travel as google.protobuf.Struct holding the REST JSON; Struct numbers are doubles, so
integral values are turned back into ints on the way in (`plain_numbers`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
from google.protobuf import json_format, struct_pb2

from cis.api.proto import cis_v1_pb2, cis_v1_pb2_grpc

log = logging.getLogger(__name__)

JSON = dict[str, Any]
# Pings find a dead peer under a long watch; CIS's server accepts one every 10 s.
CHANNEL_OPTIONS = [("grpc.keepalive_time_ms", 30_000), ("grpc.keepalive_timeout_ms", 10_000),
                   ("grpc.keepalive_permit_without_calls", 1)]


class CisError(Exception):
    """A CIS call failed. `message` is CIS's own explanation, safe to show on a pod."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(CisError):
    pass


class InvalidInput(CisError):
    """CIS rejected the request itself; retrying the same request cannot help."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


class Conflict(CisError):
    """E.g. a clientToken reused with another body."""


class Temporary(CisError):
    """Unavailable, overloaded, over quota or rate-limited: retry after `retry_after` s."""

    def __init__(self, message: str, retry_after: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unimplemented(CisError):
    """The CIS server lacks this capability (kubelet API answers 501)."""


class Expired(CisError):
    """A watch's resume point is older than the server's history: watch without one."""


class Rejected(CisError):
    """Authentication or authorization failed: a configuration problem, not the pod's."""


@dataclass(frozen=True)
class Instance:
    id: str
    uid: str
    resource_version: str
    body: JSON = field(repr=False)

    @property
    def labels(self) -> dict[str, str]:
        raw = self.body.get("labels") or (self.body.get("spec") or {}).get("labels") or {}
        return {str(k): str(v) for k, v in raw.items()}

    @property
    def status(self) -> JSON:
        return dict(self.body.get("status") or {})

    @property
    def phase(self) -> str:
        return str(self.status.get("phase") or "Queued")


@dataclass(frozen=True)
class InstanceEvent:
    instance: Instance
    deleted: bool = False
    initial: bool = False


@dataclass(frozen=True)
class LogOptions:
    container: str
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: str | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False
    follow: bool = False


class Cis(Protocol):
    async def create(self, spec: JSON) -> Instance: ...
    async def get(self, instance_id: str) -> Instance: ...
    async def list(self, label_selector: str) -> list[Instance]: ...
    async def delete(self, instance_id: str) -> None: ...
    async def ping(self, label_selector: str) -> None: ...
    def watch(self, label_selector: str, resource_version: str) -> AsyncGenerator[InstanceEvent, None]: ...
    def logs(self, instance_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]: ...
    async def close(self) -> None: ...


def plain_numbers(value: Any) -> Any:
    """Struct turns every number into a double; give integral ones back as ints."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


def to_struct(obj: JSON) -> struct_pb2.Struct:
    msg = struct_pb2.Struct()
    msg.update(obj)
    return msg


def instance_from_message(msg: cis_v1_pb2.Instance) -> Instance:
    body = plain_numbers(json_format.MessageToDict(msg.body))
    return Instance(id=msg.id or str(body.get("id", "")), uid=msg.uid or str(body.get("uid", "")),
                    resource_version=msg.resource_version, body=body)


def error_from_status(code: str, details: str) -> CisError:
    """Our error for a gRPC status code name and its details (the REST error JSON)."""
    message, fld, retry_after = details, "", 0.0
    try:
        raw = json.loads(details)
        err = raw.get("error", {}) if isinstance(raw, dict) else {}
        message = str(err.get("message") or details)
        fld = str(err.get("field") or "")
        retry_after = float(err.get("retryAfter") or 0.0)
    except (ValueError, TypeError, AttributeError):
        pass
    message = message[:500]
    if code == "NOT_FOUND":
        return NotFound(message)
    if code == "OUT_OF_RANGE" and fld == "resource_version":
        return Expired(message)
    if code in ("INVALID_ARGUMENT", "OUT_OF_RANGE"):
        return InvalidInput(message, fld)
    if code in ("ALREADY_EXISTS", "ABORTED", "FAILED_PRECONDITION"):
        return Conflict(message)
    if code == "UNIMPLEMENTED":
        return Unimplemented(message)
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Rejected(message)
    # RESOURCE_EXHAUSTED (quota, rate), UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, ...
    return Temporary(f"{code}: {message}", retry_after)


class GrpcCis:
    """The cis.v1 Instances service. `tenant` is sent only when the key is an admin key."""

    def __init__(self, target: str, api_key: str, *, tenant: str = "", timeout: float = 15.0) -> None:
        if not target:
            raise ValueError("a CIS gRPC target is required")
        if not api_key:
            raise ValueError("a CIS API key is required")
        self._target = target
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self._tenant = tenant
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: cis_v1_pb2_grpc.InstancesStub | None = None

    def _instances(self) -> cis_v1_pb2_grpc.InstancesStub:
        if self._stub is None:  # channels bind to the running loop: create lazily
            self._channel = grpc.aio.insecure_channel(self._target, options=CHANNEL_OPTIONS)
            # The generated grpc module has no annotations (protoc writes .pyi for messages only).
            self._stub = cis_v1_pb2_grpc.InstancesStub(self._channel)  # type: ignore[no-untyped-call]
        return self._stub

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None

    async def create(self, spec: JSON) -> Instance:
        req = cis_v1_pb2.CreateInstanceRequest(spec=to_struct(spec), tenant=self._tenant)
        try:
            msg = await self._instances().CreateInstance(req, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        return instance_from_message(msg)

    async def get(self, instance_id: str) -> Instance:
        req = cis_v1_pb2.GetInstanceRequest(id=instance_id, tenant=self._tenant)
        try:
            msg = await self._instances().GetInstance(req, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        return instance_from_message(msg)

    async def list(self, label_selector: str) -> list[Instance]:
        out: list[Instance] = []
        token = ""
        while True:
            req = cis_v1_pb2.ListInstancesRequest(tenant=self._tenant, label_selector=label_selector,
                                                  limit=500, continue_token=token)
            try:
                page = await self._instances().ListInstances(req, metadata=self._metadata, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                raise _error(exc) from exc
            out += [instance_from_message(m) for m in page.items]
            token = page.continue_token
            if not token:
                return out

    async def ping(self, label_selector: str) -> None:
        """The cheapest authenticated call: a one-item list."""
        req = cis_v1_pb2.ListInstancesRequest(tenant=self._tenant, label_selector=label_selector, limit=1)
        try:
            await self._instances().ListInstances(req, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc

    async def delete(self, instance_id: str) -> None:
        """Idempotent: an instance already gone is not an error."""
        req = cis_v1_pb2.DeleteInstanceRequest(id=instance_id, tenant=self._tenant)
        try:
            await self._instances().DeleteInstance(req, metadata=self._metadata, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            err = _error(exc)
            if not isinstance(err, NotFound):
                raise err from exc

    async def watch(self, label_selector: str, resource_version: str) -> AsyncGenerator[InstanceEvent, None]:
        req = cis_v1_pb2.WatchInstancesRequest(tenant=self._tenant, label_selector=label_selector,
                                               resource_version=resource_version)
        call = self._instances().WatchInstances(req, metadata=self._metadata)
        try:
            async for ev in call:
                yield InstanceEvent(instance_from_message(ev.instance), deleted=ev.deleted, initial=ev.initial)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        finally:
            call.cancel()

    async def logs(self, instance_id: str, options: LogOptions) -> AsyncGenerator[bytes, None]:
        o = options
        # The numbers are proto3 `optional`: None leaves them unset, a 0 is sent as 0.
        req = cis_v1_pb2.GetLogsRequest(
            id=instance_id, tenant=self._tenant, container=o.container, tail_lines=o.tail_lines,
            since_seconds=o.since_seconds, since_time=o.since_time or "", timestamps=o.timestamps,
            limit_bytes=o.limit_bytes, previous=o.previous, follow=o.follow)
        call = self._instances().GetLogs(req, metadata=self._metadata,
                                         timeout=None if o.follow else self._timeout * 4)
        try:
            async for chunk in call:
                yield bytes(chunk.data)
        except grpc.aio.AioRpcError as exc:
            raise _error(exc) from exc
        finally:
            call.cancel()


def _error(exc: grpc.aio.AioRpcError) -> CisError:
    code = exc.code()
    return error_from_status(getattr(code, "name", str(code)), exc.details() or "")
