"""The gRPC API (`cis.v1`, grpcio aio): the REST instance operations plus a server-streaming
watch, used by the virtual kubelet.

Handlers are thin: authenticate from the `authorization: Bearer <key>` metadata, turn the
request into the arguments of `InstanceService` (the same use cases and validation as
REST), and turn the result into messages. Specs and instance bodies travel as
`google.protobuf.Struct` in exactly the REST JSON shape. Errors are raised, never mapped
here: `cis.api.grpc_errors.ErrorMapping` is the one place that maps them.

`serve_grpc` runs the server until cancelled; `cis.main.Platform` owns it in its TaskGroup.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol, runtime_checkable

import grpc
import grpc.aio
from google.protobuf import struct_pb2

from cis.api.app import Services
from cis.api.grpc_errors import ErrorMapping
from cis.api.proto import cis_v1_pb2 as pb
from cis.api.proto import cis_v1_pb2_grpc
from cis.domain import errors
from cis.domain.ids import TenantName, tenant_namespace
from cis.domain.model import Instance, instance_from_resource, instance_to_public_json
from cis.domain.selectors import parse_label_selector
from cis.tenants import Principal, TenantDirectory
from cis.watch_hub import Change, WatchFilter, WatchHub, parse_resource_version

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SERVER_OPTIONS = [
    # Long watches: find dead peers, and let clients ping an idle stream.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    # The REST API accepts bodies up to 8 MiB; a page of 1,000 instances is a few MiB.
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.max_send_message_length", 32 * 1024 * 1024),
]

# --- wire conversion (pure) -------------------------------------------------------------------


def _plain(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_json(value.struct_value)
    if kind == "list_value":
        return [_plain(v) for v in value.list_value.values]
    if kind == "number_value":
        # Struct numbers are doubles; JSON integers must stay integers (ports, seconds).
        number = value.number_value
        return int(number) if math.isfinite(number) and number.is_integer() else number
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def struct_to_json(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as the JSON object it carries; integral numbers come back as ints."""
    return {key: _plain(value) for key, value in struct.fields.items()}


def json_to_struct(raw_object: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(raw_object)
    return struct


def instance_message(inst: Instance) -> pb.Instance:
    return pb.Instance(
        id=inst.id,
        tenant=inst.tenant,
        uid=inst.uid,
        body=json_to_struct(instance_to_public_json(inst)),
        resource_version=inst.resource_version or "",
    )


class InstanceMessages:
    """`pb.Instance` messages of stored objects, shared by every watcher of a change: parsing
    a stored instance costs about a millisecond, and N watchers of one change need the same
    message. Keyed by (namespace/name, resourceVersion); least recently used entries go."""

    def __init__(self, size: int = 2048) -> None:
        self._size = size
        self._cache: collections.OrderedDict[tuple[str, str], pb.Instance | None] = collections.OrderedDict()

    def get(self, change: Change) -> pb.Instance | None:
        """The message, or None (logged once) for a stored object CIS cannot read."""
        meta = change.raw_object.get("metadata") or {}
        key = (f"{meta.get('namespace')}/{meta.get('name')}", change.resource_version)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            message: pb.Instance | None = instance_message(instance_from_resource(change.raw_object))
        except (ValueError, errors.InvalidInput) as exc:
            log.warning("not sending %s to watchers: %s", key[0], exc)
            message = None
        self._cache[key] = message
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return message

    def event(self, change: Change) -> pb.InstanceEvent | None:
        message = self.get(change)
        if message is None:
            return None
        return pb.InstanceEvent(instance=message, deleted=change.deleted, initial=change.initial)


# --- request arguments -----------------------------------------------------------------------------


def principal_of(tenants: TenantDirectory, context: Any) -> Principal:
    metadata = dict(context.invocation_metadata() or ())
    return tenants.authenticate(metadata.get("authorization"))


def tenant_arg(principal: Principal, requested: str) -> str | None:
    """As REST's ?tenant=: admins name a tenant; a tenant key may only name its own."""
    if requested and not principal.is_admin and requested != principal.tenant:
        raise errors.NotFound("tenant", requested)
    return requested or None


def tenant_scope(principal: Principal, requested: str) -> TenantName:
    """The one tenant a call acts on (admins must name it)."""
    tenant = tenant_arg(principal, requested) or principal.tenant
    if not tenant:
        raise errors.InvalidInput("tenant", "an admin must name the tenant")
    return TenantName(tenant)


def list_limit(value: int) -> int:
    if value == 0:
        return DEFAULT_LIMIT
    if not 1 <= value <= MAX_LIMIT:
        raise errors.InvalidInput("limit", f"must be between 1 and {MAX_LIMIT}")
    return value


def watch_filter(principal: Principal, tenants: TenantDirectory, request: pb.WatchInstancesRequest) -> WatchFilter:
    selector = parse_label_selector(request.label_selector)
    tenant = tenant_arg(principal, request.tenant) or principal.tenant
    if tenant is None:
        return WatchFilter(None, selector)  # an admin watching every tenant
    tenants.tenant(tenant)  # NotFound for an unknown tenant, as REST answers
    return WatchFilter(tenant_namespace(TenantName(tenant)), selector)


def log_params(request: pb.GetLogsRequest) -> dict[str, str]:
    """GetLogs fields under their REST query names, so both APIs share one parser. The
    numbers are proto3 `optional`: a set 0 is passed on (tailLines=0 is "no past lines",
    sinceSeconds=0 is refused as REST refuses it), an unset one is left out."""
    params: dict[str, str] = {}
    if request.container:
        params["container"] = request.container
    for name, field in (
        ("tailLines", "tail_lines"),
        ("sinceSeconds", "since_seconds"),
        ("limitBytes", "limit_bytes"),
    ):
        if request.HasField(field):
            params[name] = str(getattr(request, field))
    if request.since_time:
        params["sinceTime"] = request.since_time
    if request.timestamps:
        params["timestamps"] = "true"
    if request.previous:
        params["previous"] = "true"
    return params


@runtime_checkable
class LogStreamer(Protocol):
    """The optional log capability as gRPC needs it (`Services.logs`, when it has it).

    Yields the bytes of the instance's log as `kubectl logs` would; with `follow`, keeps
    yielding until the caller stops. Raises `CisError`s (NotFound for another tenant's or
    an unknown instance). `params` uses the REST names (`tailLines`, `sinceTime`, ...).
    """

    def stream_logs(
        self, tenant: TenantName, instance_id: str, params: Mapping[str, str], *, follow: bool
    ) -> AsyncIterator[bytes]: ...


# --- the servicer -----------------------------------------------------------------------------


class InstancesServicer:
    """`cis.v1.Instances` (duck-typed: the generated base class adds nothing but UNIMPLEMENTED)."""

    def __init__(self, services: Services, hub: WatchHub) -> None:
        self._svc = services
        self._hub = hub
        self._messages = InstanceMessages()

    def _principal(self, context: Any) -> Principal:
        return principal_of(self._svc.tenants, context)

    async def CreateInstance(self, request: pb.CreateInstanceRequest, context: Any) -> pb.Instance:
        who = self._principal(context)
        inst, _ = await self._svc.instances.create(who, struct_to_json(request.spec), tenant_arg(who, request.tenant))
        return instance_message(inst)

    async def GetInstance(self, request: pb.GetInstanceRequest, context: Any) -> pb.Instance:
        who = self._principal(context)
        return instance_message(await self._svc.instances.get(who, request.id, tenant_arg(who, request.tenant)))

    async def ListInstances(self, request: pb.ListInstancesRequest, context: Any) -> pb.ListInstancesResponse:
        who = self._principal(context)
        page = await self._svc.instances.list(
            who,
            tenant=tenant_arg(who, request.tenant),
            phase=request.phase or None,
            region=None,
            labels=request.label_selector or None,
            limit=list_limit(request.limit),
            cont=request.continue_token or None,
        )
        return pb.ListInstancesResponse(
            items=[instance_message(i) for i in page.items], continue_token=page.continue_token or ""
        )

    async def DeleteInstance(self, request: pb.DeleteInstanceRequest, context: Any) -> pb.Instance:
        who = self._principal(context)
        return instance_message(await self._svc.instances.delete(who, request.id, tenant_arg(who, request.tenant)))

    async def WatchInstances(self, request: pb.WatchInstancesRequest, context: Any) -> AsyncIterator[pb.InstanceEvent]:
        who = self._principal(context)
        flt = watch_filter(who, self._svc.tenants, request)
        since = parse_resource_version(request.resource_version) if request.resource_version else None
        async with self._hub.watch(flt, since) as changes:
            async for change in changes:
                message = self._messages.event(change)
                if message is not None:
                    yield message

    async def GetLogs(self, request: pb.GetLogsRequest, context: Any) -> AsyncIterator[pb.LogChunk]:
        who = self._principal(context)
        tenant = tenant_scope(who, request.tenant)
        if not request.id:
            raise errors.InvalidInput("id", "is required")
        logs = self._svc.logs
        if not isinstance(logs, LogStreamer):
            raise errors.NotImplementedCapability("logs over gRPC need the log service (Elasticsearch)")
        async for data in logs.stream_logs(tenant, request.id, log_params(request), follow=request.follow):
            yield pb.LogChunk(data=data)


# --- the server -------------------------------------------------------------------------------


def build_server(services: Services, hub: WatchHub) -> Any:
    """A `grpc.aio.Server` with the servicer and the error interceptor; binds and starts nothing."""
    server = grpc.aio.server(interceptors=[ErrorMapping(services.metrics)], options=SERVER_OPTIONS)
    # The generated grpc module has no type annotations (protoc writes .pyi for messages only).
    cis_v1_pb2_grpc.add_InstancesServicer_to_server(  # type: ignore[no-untyped-call]
        InstancesServicer(services, hub), server
    )
    return server


async def serve_grpc(
    services: Services, hub: WatchHub, host: str, port: int, ready: asyncio.Event, *, grace: float = 3.0
) -> None:
    """Serve `cis.v1` on host:port until cancelled; `ready` is set once it listens. On the
    way out, open watches end with UNAVAILABLE (clients resume elsewhere) and other calls get
    `grace` seconds to finish."""
    server = build_server(services, hub)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)  # raises RuntimeError when it cannot bind
    try:
        await server.start()
        ready.set()
        log.info("CIS gRPC API listening on %s:%d", host, bound)
        await server.wait_for_termination()
    finally:
        ready.clear()
        hub.end_watches("the server is shutting down; resume the watch")
        await server.stop(grace)
