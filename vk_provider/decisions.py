"""What the pod controller should do next (pure): the provider's `podShouldEnqueue` and
`syncPodInProvider` decisions, without clients or clocks.

The deletion rules answer the Go VK's best-known complaints: a graceful delete reaches CIS
at once and the pod object is removed (grace 0) as soon as CIS reports the instance gone;
if CIS has not confirmed by the pod's deletionTimestamp (now + grace period) the pod is
removed anyway and the orphaned instance is swept later, so no pod stays Terminating
because of the provider. A pod whose instance vanished is re-created if CIS never ran it,
and failed (like a lost node's pod) if it did, so nothing is silently run twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from kubeio.informer import backoff_delay
from vk_provider.cis_client import Instance
from vk_provider.podstatus import MANAGED, is_terminal, normalized, started_by_provider

JSON = dict[str, Any]


class Action(StrEnum):
    NOTHING = "nothing"
    WAIT = "wait"  # the instance cache has not synced: requeue shortly
    CREATE = "create"
    PUSH_STATUS = "push-status"
    DELETE_INSTANCE = "delete-instance"
    AWAIT_DELETION = "await-deletion"  # CIS is deleting; requeue at the pod's deadline
    DELETE_POD = "delete-pod"
    MARK_LOST = "mark-lost"


def parse_time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None


def deletion_deadline(pod: JSON) -> datetime | None:
    """The apiserver sets deletionTimestamp to now + grace period: the pod's deadline."""
    return parse_time(pod.get("metadata", {}).get("deletionTimestamp"))


def decide(pod: JSON, inst: Instance | None, *, instances_synced: bool, delete_requested: bool,
           now: datetime) -> Action:
    deadline = deletion_deadline(pod)
    if deadline is not None:
        if inst is None:
            return Action.DELETE_POD if instances_synced else Action.WAIT
        if now >= deadline:
            return Action.DELETE_POD
        if inst.phase == "Deleting" or delete_requested:
            return Action.AWAIT_DELETION
        return Action.DELETE_INSTANCE
    if is_terminal(pod):
        return Action.NOTHING
    if inst is not None:
        return Action.PUSH_STATUS
    if not instances_synced:
        return Action.WAIT
    if started_by_provider(pod):
        return Action.MARK_LOST
    return Action.CREATE


def managed_status(pod: JSON) -> Any:
    status = pod.get("status") or {}
    return normalized({k: status.get(k) for k in MANAGED})


def needs_sync(old: JSON | None, new: JSON, last_written: Any) -> bool:
    """Whether an informer update is worth a sync: new pods, deletions, spec changes, and
    status changes we did not write ourselves (e.g. the node lifecycle controller marking
    pods not Ready). Our own status writes come back as updates and are skipped."""
    if old is None:
        return True
    om, nm = old.get("metadata", {}), new.get("metadata", {})
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "generation", "uid"):
        if om.get(key) != nm.get(key):
            return True
    if old.get("spec") != new.get("spec"):
        return True
    status = managed_status(new)
    return bool(status != managed_status(old) and status != last_written)


def retry_delay(attempt: int, *, base: float, cap: float, retry_after: float = 0.0) -> float:
    """Capped exponential backoff, never shorter than the server's Retry-After. The
    provider never gives up on a pod (the Go VK drops it after 20 tries: VK#1257)."""
    return max(retry_after, backoff_delay(attempt, base=base, cap=cap))
