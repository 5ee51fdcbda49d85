"""The list endpoint's memo of decoded instances."""

from __future__ import annotations

import json
from typing import Any

from cis.decoded import DecodedInstances
from cis.domain.model import instance_to_public_json, instance_to_resource
from tests.unit.domain.builders import make_instance


def stored(rv: str, name: str | None = None, generation: int = 1) -> dict[str, Any]:
    raw = instance_to_resource(make_instance())
    raw["metadata"].update(resourceVersion=rv, uid="uid-1", generation=generation)
    if name is not None:
        raw["metadata"]["name"] = name
    return raw


def test_an_unchanged_object_is_decoded_once_and_a_new_version_again() -> None:
    memo = DecodedInstances()
    first = memo.of(stored("10"))
    assert first is not None
    inst, view = first
    assert json.loads(view) == instance_to_public_json(inst)
    again = memo.of(stored("10"))
    assert again is not None and again[0] is inst and again[1] is view
    newer = memo.of(stored("11"))
    assert newer is not None and newer[0] is not inst and newer[0].resource_version == "11"


def test_a_malformed_object_is_left_out() -> None:
    raw = stored("3")
    raw["metadata"]["namespace"] = "kube-system"  # not a tenant namespace
    assert DecodedInstances().of(raw) is None


def test_prune_forgets_deleted_instances_only_once_they_pile_up() -> None:
    memo = DecodedInstances()
    for i in range(1100):
        memo.of(stored("1", name=f"ci-{i}"))
    live = {"tenant-acme/ci-0": {}}
    memo.prune(live)
    assert list(memo._memo) == ["tenant-acme/ci-0"]
    memo.of(stored("1", name="ci-5"))
    memo.prune(live)  # below the threshold: nothing to do yet
    assert len(memo._memo) == 2


def test_instance_alone_skips_the_rest_view_until_asked() -> None:
    memo = DecodedInstances()
    inst = memo.instance(stored("7"))
    assert inst is not None and memo._memo["tenant-acme/" + inst.id].encoded is None
    both = memo.of(stored("7"))
    assert both is not None and both[0] is inst and memo._memo["tenant-acme/" + inst.id].encoded is both[1]


def test_a_status_change_reuses_the_parsed_spec_and_a_spec_change_does_not() -> None:
    memo = DecodedInstances()
    first = memo.instance(stored("1"))
    status_write = stored("2")
    status_write["status"]["phase"] = "Running"
    second = memo.instance(status_write)
    assert first is not None and second is not None
    assert second.spec is first.spec and second.status.phase.value == "Running"
    edited = stored("3", generation=2)
    edited["spec"]["restartPolicy"] = "Never"
    third = memo.instance(edited)
    assert third is not None and third.spec is not first.spec and third.spec.restart_policy.value == "Never"
    recreated = stored("4")
    recreated["metadata"]["uid"] = "uid-2"  # deleted and created again under the same name
    fourth = memo.instance(recreated)
    assert fourth is not None and fourth.spec is not third.spec
