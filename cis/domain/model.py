"""The instance model and its two wire forms: the ContainerInstance CR and the REST JSON.

An ``Instance`` is what the API stores and the controller reconciles: id, tenant, the
validated ``InstanceSpec``, the rounded ``Size`` (fixed at creation: the size table may
change, a bill may not) and the observed ``InstanceStatus``.

Storage is a ``ContainerInstance`` (``cis.io/v1``) named by the instance id in namespace
``tenant-<tenant>`` of the management cluster::

    metadata: {name: <id>, namespace: tenant-<t>, finalizers: [cis.io/cleanup],
               labels: {cis.io/tenant, cis.io/managed-by: cis, ...user labels},
               annotations: {cis.io/spec-fingerprint}}
    spec:     <InstanceSpec.to_json()> + {size: {cpu: "0.5", memoryGiB: "1"}}
    status:   <status_to_json()>

User labels are copied onto the CR so list filters become label selectors. The finalizer
lets the controller delete the pod and emit ``instance.stopped``/``instance.deleted``
before the record goes. Secret values live in a separate Secret (``secret_resource``).
``spec`` and ``status`` are written through different endpoints (the status subresource):
``instance_to_resource`` includes both; the caller sends the part it means to write.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from cis.domain.ids import (
    ClusterName,
    InstanceId,
    RegionName,
    TenantName,
    ZoneName,
    tenant_from_namespace,
    tenant_namespace,
)
from cis.domain.sizes import Size
from cis.domain.spec import InstanceSpec, is_file_key, secret_data, spec_fingerprint, spec_from_json
from cis.domain.timestamps import format_optional, parse_optional

GROUP = "cis.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ContainerInstance"
PLURAL = "containerinstances"

LABEL_INSTANCE = "cis.io/instance"
LABEL_TENANT = "cis.io/tenant"
LABEL_MANAGED_BY = "cis.io/managed-by"
MANAGED_BY = "cis"
ANNOTATION_UID = "cis.io/instance-uid"
ANNOTATION_ATTEMPT = "cis.io/attempt"
# On a pod taken over by a later attempt (its cluster came back after the instance was
# declared lost): when that attempt began, which is where its billing starts.
ANNOTATION_ADOPTED_AT = "cis.io/adopted-at"
ANNOTATION_FINGERPRINT = "cis.io/spec-fingerprint"
FINALIZER = "cis.io/cleanup"


class Phase(StrEnum):
    QUEUED = "Queued"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    DELETING = "Deleting"

    @property
    def ended(self) -> bool:
        """Succeeded or Failed: the containers will not run again on this placement."""
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class ContainerState(StrEnum):
    WAITING = "Waiting"
    RUNNING = "Running"
    TERMINATED = "Terminated"


class StopReason(StrEnum):
    """Why an instance stopped; carried by ``instance.stopped`` (DESIGN §4)."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    DELETED = "Deleted"
    EVICTED = "Evicted"
    LOST = "Lost"


@dataclass(frozen=True)
class ContainerStatus:
    """One container, like a pod's containerStatuses entry (current + last termination)."""

    name: str
    state: ContainerState = ContainerState.WAITING
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    ready: bool = False
    last_exit_code: int | None = None
    last_reason: str | None = None
    last_finished_at: datetime | None = None


@dataclass(frozen=True)
class Condition:
    """A pod condition as observed (``PodScheduled``, ``Ready``, ...)."""

    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition_time: datetime | None = None


@dataclass(frozen=True)
class InstanceStatus:
    """Observed state. ``attempt`` counts placements (1 after the first pod is created);
    ``started_at``/``stopped_at`` belong to the current attempt and are what billing uses.
    ``event_seq`` is the number of lifecycle events emitted so far (``events.plan_events``)."""

    phase: Phase = Phase.QUEUED
    cluster: ClusterName | None = None
    region: RegionName | None = None
    zone: ZoneName | None = None
    pod_ip: str | None = None
    containers: tuple[ContainerStatus, ...] = ()
    conditions: tuple[Condition, ...] = ()
    reason: str | None = None
    message: str | None = None
    attempt: int = 0
    queued_at: datetime | None = None
    scheduled_at: datetime | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None
    stop_reason: StopReason | None = None
    event_seq: int = 0

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    def container(self, name: str) -> ContainerStatus | None:
        return next((c for c in self.containers if c.name == name), None)


@dataclass(frozen=True)
class Instance:
    id: InstanceId
    tenant: TenantName
    spec: InstanceSpec
    size: Size
    status: InstanceStatus = field(default_factory=InstanceStatus)
    uid: str = ""  # metadata.uid; empty until the CR exists
    created_at: datetime | None = None
    deleting: bool = False  # metadata.deletionTimestamp is set
    resource_version: str | None = None
    fingerprint: str | None = None

    @property
    def namespace(self) -> str:
        return tenant_namespace(self.tenant)

    def with_status(self, status: InstanceStatus) -> Instance:
        return replace(self, status=status)


def new_instance(instance_id: InstanceId, tenant: TenantName, spec: InstanceSpec, now: datetime) -> Instance:
    """A just-accepted instance: Queued and sized. One with a ``clientToken`` keeps its
    spec's fingerprint, so a retry can be told from another request under the same token;
    without a token the id is random, there is nothing to compare, and the stored object
    stays smaller (every write of it costs the apiserver in proportion to its size)."""
    return Instance(
        id=instance_id,
        tenant=tenant,
        spec=spec,
        size=spec.size,
        status=InstanceStatus(phase=Phase.QUEUED, queued_at=now),
        created_at=now,
        fingerprint=spec_fingerprint(spec) if spec.client_token else None,
    )


# --- status <-> JSON ------------------------------------------------------------------------


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _container_status_to_json(c: ContainerStatus) -> dict[str, Any]:
    out = _drop_none(
        {
            "name": c.name,
            "state": c.state.value,
            "reason": c.reason,
            "message": c.message,
            "exitCode": c.exit_code,
            "restartCount": c.restart_count,
            "ready": c.ready,
            "startedAt": format_optional(c.started_at),
            "finishedAt": format_optional(c.finished_at),
        }
    )
    if c.last_exit_code is not None or c.last_reason is not None:
        out["lastState"] = _drop_none(
            {
                "exitCode": c.last_exit_code,
                "reason": c.last_reason,
                "finishedAt": format_optional(c.last_finished_at),
            }
        )
    return out


def status_resource(instance: Instance) -> dict[str, Any]:
    """The body that replaces the CR's status (PUT to the status subresource): name,
    resourceVersion (optimistic concurrency) and the whole new status. The apiserver takes
    only ``status`` from it, so the spec is left out, and a field the new status cleared is
    simply absent. Cheaper for the apiserver than a merge patch, which it must first apply
    to the stored object."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": instance.id, "namespace": instance.namespace,
                     "resourceVersion": instance.resource_version},
        "status": status_to_json(instance.status),
    }


def status_to_json(status: InstanceStatus, *, public: bool = False) -> dict[str, Any]:
    """The CR ``status`` (``public=False``) or the REST form (without bookkeeping)."""
    out = _drop_none(
        {
            "phase": status.phase.value,
            "cluster": status.cluster,
            "region": status.region,
            "zone": status.zone,
            "podIP": status.pod_ip,
            "reason": status.reason,
            "message": status.message,
            "containers": [_container_status_to_json(c) for c in status.containers],
            "conditions": [
                _drop_none(
                    {
                        "type": c.type,
                        "status": c.status,
                        "reason": c.reason,
                        "message": c.message,
                        "lastTransitionTime": format_optional(c.last_transition_time),
                    }
                )
                for c in status.conditions
            ],
            "attempt": status.attempt,
            "queuedAt": format_optional(status.queued_at),
            "scheduledAt": format_optional(status.scheduled_at),
            "startedAt": format_optional(status.started_at),
            "stoppedAt": format_optional(status.stopped_at),
            "stopReason": status.stop_reason.value if status.stop_reason else None,
        }
    )
    if not public:
        out["eventSeq"] = status.event_seq
    return out


def _str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _int(raw: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


_E = TypeVar("_E", bound=StrEnum)


def _enum_or(kind: type[_E], raw: object, default: _E) -> _E:
    try:
        return kind(raw) if isinstance(raw, str) else default
    except ValueError:
        return default


def _enum_opt(kind: type[_E], raw: object) -> _E | None:
    try:
        return kind(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _container_status_from_json(raw: Mapping[str, Any]) -> ContainerStatus:
    last = raw.get("lastState") if isinstance(raw.get("lastState"), dict) else {}
    assert isinstance(last, dict)
    return ContainerStatus(
        name=_str(raw, "name") or "",
        state=_enum_or(ContainerState, raw.get("state"), ContainerState.WAITING),
        reason=_str(raw, "reason"),
        message=_str(raw, "message"),
        exit_code=_int(raw, "exitCode"),
        restart_count=_int(raw, "restartCount", 0) or 0,
        started_at=parse_optional(raw.get("startedAt")),
        finished_at=parse_optional(raw.get("finishedAt")),
        ready=raw.get("ready") is True,
        last_exit_code=_int(last, "exitCode"),
        last_reason=_str(last, "reason"),
        last_finished_at=parse_optional(last.get("finishedAt")),
    )


def status_from_json(raw: Any) -> InstanceStatus:
    """Lenient inverse of ``status_to_json``: a missing or empty status is Queued."""
    if not isinstance(raw, dict):
        return InstanceStatus()
    return InstanceStatus(
        phase=_enum_or(Phase, raw.get("phase"), Phase.QUEUED),
        cluster=ClusterName(v) if (v := _str(raw, "cluster")) else None,
        region=RegionName(v) if (v := _str(raw, "region")) else None,
        zone=ZoneName(v) if (v := _str(raw, "zone")) else None,
        pod_ip=_str(raw, "podIP"),
        containers=tuple(_container_status_from_json(c) for c in raw.get("containers") or [] if isinstance(c, dict)),
        conditions=tuple(
            Condition(
                type=_str(c, "type") or "",
                status=_str(c, "status") or "Unknown",
                reason=_str(c, "reason"),
                message=_str(c, "message"),
                last_transition_time=parse_optional(c.get("lastTransitionTime")),
            )
            for c in raw.get("conditions") or []
            if isinstance(c, dict)
        ),
        reason=_str(raw, "reason"),
        message=_str(raw, "message"),
        attempt=_int(raw, "attempt", 0) or 0,
        queued_at=parse_optional(raw.get("queuedAt")),
        scheduled_at=parse_optional(raw.get("scheduledAt")),
        started_at=parse_optional(raw.get("startedAt")),
        stopped_at=parse_optional(raw.get("stoppedAt")),
        stop_reason=_enum_opt(StopReason, raw.get("stopReason")),
        event_seq=_int(raw, "eventSeq", 0) or 0,
    )


# --- the custom resource --------------------------------------------------------------------


def instance_labels(instance: Instance) -> dict[str, str]:
    """CR labels: user labels first, ours last (user labels cannot use ``cis.io/``)."""
    return {**instance.spec.labels, LABEL_TENANT: instance.tenant, LABEL_MANAGED_BY: MANAGED_BY}


def instance_to_resource(instance: Instance) -> dict[str, Any]:
    """The full ``ContainerInstance`` body (POST it to create; status needs a second write
    to the status subresource)."""
    metadata: dict[str, Any] = {
        "name": instance.id,
        "namespace": instance.namespace,
        "labels": instance_labels(instance),
        "finalizers": [FINALIZER],
    }
    if instance.fingerprint:
        metadata["annotations"] = {ANNOTATION_FINGERPRINT: instance.fingerprint}
    if instance.uid:
        metadata["uid"] = instance.uid
    if instance.resource_version:
        metadata["resourceVersion"] = instance.resource_version
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {**instance.spec.to_json(), "size": instance.size.to_json()},
        "status": status_to_json(instance.status),
    }


def instance_from_resource(
    raw_resource: Mapping[str, Any],
    secrets: Mapping[str, str] | None = None,
    *,
    same_spec_as: Instance | None = None,
) -> Instance:
    """An ``Instance`` from a CR as the API server returns it.

    ``same_spec_as``: an earlier decoding of the same object whose spec is known to be
    unchanged (same uid and generation); its spec and size are reused instead of parsed,
    which is most of the cost of decoding a status change.

    Raises ``InvalidInput`` (from the spec parser) if the stored spec is not valid and
    ``ValueError`` if the object is not a ContainerInstance in a tenant namespace.
    """
    metadata = raw_resource.get("metadata") or {}
    tenant = tenant_from_namespace(str(metadata.get("namespace", "")))
    if raw_resource.get("kind", KIND) != KIND or tenant is None:
        raise ValueError("not a ContainerInstance in a tenant namespace")
    if same_spec_as is not None and secrets is None:
        spec, size = same_spec_as.spec, same_spec_as.size
    else:
        raw_spec = dict(raw_resource.get("spec") or {})
        raw_size = raw_spec.pop("size", None)
        spec = spec_from_json(raw_spec, secrets)
        size = Size.from_json(raw_size) if raw_size is not None else spec.size
    annotations = metadata.get("annotations") or {}
    return Instance(
        id=InstanceId(str(metadata.get("name", ""))),
        tenant=tenant,
        spec=spec,
        size=size,
        status=status_from_json(raw_resource.get("status")),
        uid=str(metadata.get("uid", "")),
        created_at=parse_optional(metadata.get("creationTimestamp")),
        deleting=metadata.get("deletionTimestamp") is not None,
        resource_version=metadata.get("resourceVersion"),
        fingerprint=annotations.get(ANNOTATION_FINGERPRINT),
    )


def instance_secret_name(instance_id: InstanceId) -> str:
    """Name of the management-cluster Secret holding an instance's secret values."""
    return f"{instance_id}-secrets"


def secret_resource(instance: Instance) -> dict[str, Any] | None:
    """The management-cluster Secret with the spec's secret values, or None if it has none.

    Create it before the CR; once the CR exists, add an ownerReference to it
    (``owner_reference(instance)``) so deleting the CR garbage-collects the Secret.
    """
    data = secret_data(instance.spec)
    if not data:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": instance_secret_name(instance.id),
            "namespace": instance.namespace,
            "labels": {
                LABEL_INSTANCE: instance.id,
                LABEL_TENANT: instance.tenant,
                LABEL_MANAGED_BY: MANAGED_BY,
            },
        },
        # File values are base64 already (files may be binary): stored as their bytes.
        "data": {k: v if is_file_key(k) else base64.b64encode(v.encode()).decode("ascii") for k, v in data.items()},
    }


def decode_secret_data(raw_secret: Mapping[str, Any]) -> dict[str, str]:
    """The values of a Secret as read back (base64 ``data``): text, except files, which
    stay base64 (the form ``secret_data`` gives them)."""
    data = raw_secret.get("data") or {}
    return {k: v if is_file_key(k) else base64.b64decode(v).decode() for k, v in data.items()}


def owner_reference(instance: Instance) -> dict[str, Any]:
    """An ownerReference to the instance's CR (needs ``instance.uid``)."""
    if not instance.uid:
        raise ValueError("the instance has no uid yet")
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": instance.id,
        "uid": instance.uid,
        "blockOwnerDeletion": True,
    }


def instance_to_public_json(instance: Instance) -> dict[str, Any]:
    """The REST representation of one instance (never secret values)."""
    return _drop_none(
        {
            "id": instance.id,
            "uid": instance.uid or None,
            "tenant": instance.tenant,
            "name": instance.spec.name,
            "labels": dict(instance.spec.labels),
            "createdAt": format_optional(instance.created_at),
            "size": instance.size.to_json(),
            "spec": instance.spec.to_public_json(),
            "status": status_to_json(
                replace(instance.status, phase=Phase.DELETING)
                if instance.deleting and instance.status.phase != Phase.DELETING
                else instance.status,
                public=True,
            ),
        }
    )
