"""The collector stays on with higher thresholds, and freezing exempts what exists."""

from __future__ import annotations

import gc

from cis.gc_tuning import (
    MIDDLE_THRESHOLD,
    OLD_THRESHOLD,
    YOUNG_THRESHOLD,
    freeze_startup_objects,
    tune_for_large_caches,
)


def test_thresholds_are_raised_and_collection_stays_on() -> None:
    before = gc.get_threshold()
    try:
        tune_for_large_caches()
        assert gc.get_threshold() == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
        assert YOUNG_THRESHOLD > 700  # far fewer young collections than the default
        assert gc.isenabled()
    finally:
        gc.set_threshold(*before)


def test_freezing_moves_existing_objects_out_of_collections() -> None:
    cache = [{"metadata": {"name": f"pod-{i}"}} for i in range(1000)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(cache)
    finally:
        gc.unfreeze()
