"""What the pod controller does next, as a table; when an update is worth a sync; backoff."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.vk_provider.builders import instance, pod, with_meta
from vk_provider.cis_client import Instance
from vk_provider.decisions import Action, decide, needs_sync, retry_delay
from vk_provider.podstatus import status_from_instance

NOW = datetime(2026, 11, 21, 10, 0, 30, tzinfo=UTC)
RUNNING_STATUS = status_from_instance(pod(), instance(), "192.0.2.1", NOW)
DELETING = with_meta(pod(), deletionTimestamp="2026-11-21T10:01:00Z", deletionGracePeriodSeconds=30)
OVERDUE = with_meta(pod(), deletionTimestamp="2026-11-21T10:00:00Z", deletionGracePeriodSeconds=30)


@pytest.mark.parametrize(("p", "inst", "synced", "requested", "action"), [
    (pod(), None, True, False, Action.CREATE),
    (pod(), None, False, False, Action.WAIT),
    (pod(), instance(), True, False, Action.PUSH_STATUS),
    (pod(status=RUNNING_STATUS), None, True, False, Action.MARK_LOST),
    (pod(status={"phase": "Succeeded"}), None, True, False, Action.NOTHING),
    (pod(status={"phase": "Failed"}), instance(phase="Failed"), True, False, Action.NOTHING),
    (DELETING, instance(), True, False, Action.DELETE_INSTANCE),
    (DELETING, instance(), True, True, Action.AWAIT_DELETION),
    (DELETING, instance(phase="Deleting"), True, False, Action.AWAIT_DELETION),
    (DELETING, None, True, False, Action.DELETE_POD),
    (DELETING, None, False, False, Action.WAIT),
    (OVERDUE, instance(phase="Deleting"), True, True, Action.DELETE_POD),
], ids=["new-pod", "new-pod-unsynced", "has-instance", "instance-lost", "terminal", "terminal-with-instance",
        "graceful-delete", "delete-requested", "cis-deleting", "instance-gone", "gone-unsynced", "deadline-passed"])
def test_decide(p: dict[str, object], inst: Instance | None, synced: bool, requested: bool, action: Action) -> None:
    assert decide(p, inst, instances_synced=synced, delete_requested=requested, now=NOW) is action


def test_new_pods_deletions_and_spec_changes_need_a_sync() -> None:
    p = pod()
    assert needs_sync(None, p, None)
    assert needs_sync(p, DELETING, None)
    assert needs_sync(p, with_meta(p, uid="other"), None)
    changed = pod(containers=[{"name": "main", "image": "nginx:1.28"}])
    assert needs_sync(p, changed, None)


def test_our_own_status_write_coming_back_is_no_news() -> None:
    from vk_provider.decisions import managed_status

    before = pod(status={"phase": "Pending"})
    after = pod(status=RUNNING_STATUS)
    assert not needs_sync(before, after, managed_status(after))
    assert needs_sync(before, after, None)  # someone else wrote it: re-derive ours
    assert not needs_sync(after, with_meta(after, resourceVersion="11"), None)


@pytest.mark.parametrize(("attempt", "retry_after", "delay"), [
    (1, 0.0, 0.5), (2, 0.0, 1.0), (5, 0.0, 8.0), (20, 0.0, 60.0), (100, 0.0, 60.0), (1, 7.0, 7.0),
], ids=["first", "second", "fifth", "capped", "never-gives-up", "retry-after-wins"])
def test_retry_delay(attempt: int, retry_after: float, delay: float) -> None:
    assert retry_delay(attempt, base=0.5, cap=60.0, retry_after=retry_after) == delay
