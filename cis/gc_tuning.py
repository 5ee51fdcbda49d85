"""Cyclic garbage collection tuned for a process that caches watched objects.

CIS keeps every watched object (its instances, every pod and node of every backing
cluster) as parsed JSON: hundreds of thousands of small dicts and lists, none of them in
a reference cycle, all freed by reference counting alone. The interpreter's default
thresholds start a young collection every 700 net allocations, so decoding one burst of
watch events runs hundreds of collections a second, and each older collection walks the
whole cache again. Measured on `bench/bench_instances.py` (2,000 instances): about 8% of
the process's CPU went to collections that found almost nothing.

Cycles do still arise (tracebacks of handled exceptions, some futures), and are still
collected: young collections run every `YOUNG_THRESHOLD` allocations, older ones as
the interpreter's own rules decide. `gc.freeze()` moves what start-up built (modules,
classes, the first full lists of the caches) out of every later collection.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000  # allocations between young collections (default 700)
MIDDLE_THRESHOLD = 20  # young collections between middle ones (default 10)
OLD_THRESHOLD = 20  # middle collections between full ones (default 10)


def tune_for_large_caches() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def freeze_startup_objects() -> None:
    """Call once start-up is done (caches filled): collect once, then exempt the survivors."""
    gc.collect()
    gc.freeze()
