"""Leader election timing: client-go's renew deadline, in monotonic seconds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cis.controller.lease import LeaderElector, lease_expired, renew_budget


def test_a_leader_may_keep_renewing_until_the_deadline_after_its_last_renewal() -> None:
    assert renew_budget(now=102.0, last_renew=100.0, renew_deadline=10.0) == 8.0
    # One slow answer may use the whole remaining budget ...
    assert renew_budget(now=109.5, last_renew=100.0, renew_deadline=10.0) == 0.5
    # ... and past the deadline the lease is lost, before any standby may take it (15 s).
    assert renew_budget(now=110.0, last_renew=100.0, renew_deadline=10.0) <= 0


def test_a_standby_takes_over_only_after_the_lease_duration() -> None:
    spec = {"renewTime": "2026-11-22T10:00:00.000000Z", "leaseDurationSeconds": 15}
    assert not lease_expired(spec, datetime(2026, 11, 22, 10, 0, 15, tzinfo=UTC))
    assert lease_expired(spec, datetime(2026, 11, 22, 10, 0, 15, 1000, tzinfo=UTC))
    assert lease_expired({}, datetime(2026, 11, 22, tzinfo=UTC))  # never renewed


@pytest.mark.parametrize(("retry", "deadline", "duration"), [(2, 10, 10), (10, 10, 15), (3, 2, 15)])
def test_timings_must_leave_margins(retry: float, deadline: float, duration: float) -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < duration"):
        LeaderElector(None, "ns", "lease", "me", retry_period=retry, renew_deadline=deadline,  # type: ignore[arg-type]
                      duration=duration)
