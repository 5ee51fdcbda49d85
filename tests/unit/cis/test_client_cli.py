"""The CLI's account of instances that are not running yet."""

from __future__ import annotations

from cis.client_cli import waiting_summary


def test_waiting_summary_counts_states_most_common_first() -> None:
    states = {"a": "Queued (InsufficientCapacity)", "b": "Scheduled", "c": "Queued (InsufficientCapacity)"}
    assert waiting_summary(states) == "2 Queued (InsufficientCapacity), 1 Scheduled"
    assert waiting_summary({}) == ""
