from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from cis.domain.errors import InvalidInput
from cis.domain.ids import ClusterName, RegionName
from cis.domain.model import (
    ANNOTATION_FINGERPRINT,
    FINALIZER,
    Condition,
    ContainerState,
    ContainerStatus,
    InstanceStatus,
    Phase,
    StopReason,
    decode_secret_data,
    instance_from_resource,
    instance_to_public_json,
    instance_to_resource,
    owner_reference,
    secret_resource,
    status_from_json,
    status_resource,
    status_to_json,
)

from .builders import INSTANCE_ID, T0, at, container, make_instance, raw_spec
from .test_spec import FULL

RICH_STATUS = InstanceStatus(
    phase=Phase.FAILED,
    cluster=ClusterName("c1"),
    region=RegionName("eu-west"),
    pod_ip="10.244.0.7",
    containers=(
        ContainerStatus(
            name="web",
            state=ContainerState.TERMINATED,
            reason="Error",
            exit_code=3,
            restart_count=2,
            started_at=at(5),
            finished_at=at(9),
            last_exit_code=1,
            last_reason="Error",
            last_finished_at=at(4),
        ),
    ),
    conditions=(Condition("Ready", "False", "PodFailed", None, at(9)),),
    reason="Error",
    message="container 'web' exited with code 3",
    attempt=1,
    queued_at=T0,
    scheduled_at=at(1),
    started_at=at(2),
    stopped_at=at(9),
    stop_reason=StopReason.FAILED,
    event_seq=6,
)


def as_stored(resource: dict[str, Any]) -> dict[str, Any]:
    """What the API server returns: JSON round trip plus server-set metadata."""
    stored: dict[str, Any] = json.loads(json.dumps(resource))
    stored["metadata"].update(uid="uid-1", resourceVersion="42", creationTimestamp="2026-11-21T10:00:00Z")
    return stored


def test_resource_shape() -> None:
    inst = make_instance(FULL)
    res = instance_to_resource(inst)
    assert res["apiVersion"] == "cis.io/v1" and res["kind"] == "ContainerInstance"
    meta = res["metadata"]
    assert meta["name"] == INSTANCE_ID and meta["namespace"] == "tenant-acme"
    assert meta["finalizers"] == [FINALIZER]
    assert meta["labels"]["cis.io/tenant"] == "acme" and meta["labels"]["app"] == "web"
    assert meta["annotations"][ANNOTATION_FINGERPRINT].startswith("sha256:")
    assert res["spec"]["size"] == {"cpu": "1", "memoryGiB": "2"}
    assert res["status"]["phase"] == "Queued"
    assert "hunter2" not in json.dumps(res)


def test_resource_round_trip() -> None:
    inst = make_instance(FULL, status=RICH_STATUS)
    secrets = decode_secret_data(json.loads(json.dumps(secret_resource(inst))))
    back = instance_from_resource(as_stored(instance_to_resource(inst)), secrets)
    assert back.spec == inst.spec and back.size == inst.size
    assert back.status == inst.status
    assert back.uid == "uid-1" and back.resource_version == "42" and not back.deleting
    assert back.fingerprint == inst.fingerprint


def test_only_an_instance_with_a_client_token_keeps_a_fingerprint() -> None:
    with_token = make_instance({**raw_spec(), "clientToken": "retry-me"})
    assert with_token.fingerprint is not None
    assert instance_to_resource(with_token)["metadata"]["annotations"]
    without = make_instance()
    assert without.fingerprint is None and "annotations" not in instance_to_resource(without)["metadata"]


def test_size_is_kept_even_if_the_spec_would_round_differently() -> None:
    stored = as_stored(instance_to_resource(make_instance()))
    stored["spec"]["size"] = {"cpu": "1", "memoryGiB": "2"}
    assert instance_from_resource(stored).size.cpu_millis == 1000


def test_deleting_shows_in_public_json() -> None:
    stored = as_stored(instance_to_resource(make_instance()))
    stored["metadata"]["deletionTimestamp"] = "2026-11-21T10:05:00Z"
    inst = instance_from_resource(stored)
    assert inst.deleting
    assert instance_to_public_json(inst)["status"]["phase"] == "Deleting"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(kind="Pod"),
        lambda r: r["metadata"].update(namespace="default"),
    ],
    ids=["wrong-kind", "not-a-tenant-namespace"],
)
def test_from_resource_rejects_foreign_objects(mutate: Any) -> None:
    stored = as_stored(instance_to_resource(make_instance()))
    mutate(stored)
    with pytest.raises(ValueError):
        instance_from_resource(stored)


def test_from_resource_rejects_a_corrupt_spec() -> None:
    stored = as_stored(instance_to_resource(make_instance()))
    stored["spec"]["containers"][0]["image"] = "NOT VALID"
    with pytest.raises(InvalidInput):
        instance_from_resource(stored)


def test_status_json_round_trip_and_public_form() -> None:
    raw = json.loads(json.dumps(status_to_json(RICH_STATUS)))
    assert status_from_json(raw) == RICH_STATUS
    assert raw["startedAt"] == "2026-11-21T10:00:02.123Z"
    public = status_to_json(RICH_STATUS, public=True)
    assert "eventSeq" not in public and public["containers"][0]["lastState"]["exitCode"] == 1


@pytest.mark.parametrize(
    "raw", [None, {}, "garbage", {"phase": "Exploded", "attempt": "x", "containers": [1]}], ids=repr
)
def test_status_from_json_is_lenient(raw: Any) -> None:
    st = status_from_json(raw)
    assert st.phase is Phase.QUEUED and st.attempt == 0 and st.containers == ()


def test_public_json_has_no_secrets_and_no_bookkeeping() -> None:
    inst = make_instance(FULL, status=RICH_STATUS)
    public = instance_to_public_json(inst)
    text = json.dumps(public)
    assert "hunter2" not in text and "s3cret" not in text and "eventSeq" not in text
    assert public["id"] == INSTANCE_ID and public["tenant"] == "acme"
    assert public["size"] == {"cpu": "1", "memoryGiB": "2"}
    assert public["createdAt"] == "2026-11-21T10:00:00.123Z"


def test_secret_resource() -> None:
    assert secret_resource(make_instance()) is None
    inst = make_instance(raw_spec(containers=[container(env=[{"name": "K", "secretValue": "v"}])]))
    secret = secret_resource(inst)
    assert secret is not None and secret["metadata"]["name"] == f"{INSTANCE_ID}-secrets"
    assert decode_secret_data(secret) == {"env.web.K": "v"}


def test_owner_reference_needs_a_uid() -> None:
    assert owner_reference(make_instance())["uid"] == "uid-1"
    with pytest.raises(ValueError):
        owner_reference(replace(make_instance(), uid=""))


def test_status_resource_replaces_the_whole_status_under_the_read_version() -> None:
    inst = replace(make_instance(), resource_version="41")
    cleared = replace(RICH_STATUS, reason=None, message=None, stopped_at=None, stop_reason=None)
    body = status_resource(inst.with_status(cleared))
    assert body["metadata"] == {"name": inst.id, "namespace": inst.namespace, "resourceVersion": "41"}
    assert "spec" not in body  # the apiserver takes only status from a status write
    assert body["status"] == status_to_json(cleared)
    assert not {"reason", "message", "stoppedAt", "stopReason"} & set(body["status"])  # cleared: absent
    assert body["status"]["phase"] == "Failed" and body["status"]["eventSeq"] == 6
