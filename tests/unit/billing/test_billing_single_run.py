"""The single-run shortcut of metering gives exactly what the general path gives.

`meter_instance` meters most instances with `meter_single_run` and falls back to
`meter_runs` for everything else. Both must agree to the last digit and the last byte of
the usage document: on the hand-computed cases and on generated runs around every edge
(window bounds, midnight, a price change, missing stops and starts, clock skew).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from billing.errors import BillingError
from billing.events import InstanceId, InstanceUid, Region, TenantId
from billing.metering import (
    InstanceUsage,
    RunObservation,
    Window,
    meter_instance,
    meter_runs,
    meter_single_run,
    observe_events,
)
from billing.testing import parsed, prices, run_events, t
from tests.unit.billing.test_billing_metering import CASES, Case

DAY = Window(t("11-21 00:00:00"), t("11-22 00:00:00"))


def _same(fast: InstanceUsage, general: InstanceUsage) -> None:
    assert fast == general
    # Equal Decimals can print differently ("4593.0" vs "4593"); documents must not differ.
    assert [r.encode() for r in fast.records] == [r.encode() for r in general.records]
    assert [r.to_doc() for r in fast.records] == [r.to_doc() for r in general.records]


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_hand_computed_cases_agree_with_the_general_path(case: Case) -> None:
    observations = observe_events(parsed(case.events))
    general = meter_runs(observations, prices(), case.window, ended_at=case.ended_at)
    _same(meter_instance(observations, prices(), case.window, ended_at=case.ended_at), general)


def test_a_plain_run_takes_the_shortcut() -> None:
    (obs,) = observe_events(parsed(run_events(t("11-21 10:00:00"), t("11-21 10:30:00.2"))))
    usage = meter_single_run(obs, prices(), DAY)
    assert usage is not None
    assert [(r.seconds, r.amount) for r in usage.records] == [(1801, Decimal("0.010806"))]


@pytest.mark.parametrize(
    ("start", "stop", "region", "window"),
    [
        ("11-21 10:00:00", None, "r1", DAY),  # missing stop: flagged
        ("11-21 23:00:00", "11-22 01:00:00", "r1", Window(t("11-21 00:00:00"), t("11-23 00:00:00"))),
        ("11-21 11:30:00", "11-21 12:30:00", "r2", DAY),  # price change inside
    ],
    ids=["missing-stop", "two-days", "price-change"],
)
def test_complex_runs_go_the_general_way(start: str, stop: str | None, region: str, window: Window) -> None:
    (obs,) = observe_events(parsed(run_events(t(start), None if stop is None else t(stop), region=region)))
    assert meter_single_run(obs, prices(), window) is None


# --- generated runs ----------------------------------------------------------------------------

# Instants worth landing near: window bounds, midnights, r2's price change at noon.
_EDGES = [t(x) for x in ("11-20 23:00:00", "11-21 00:00:00", "11-21 12:00:00", "11-21 18:00:00", "11-22 00:00:00")]
_SIZES = [("0.25", "0.5"), ("0.5", "1"), ("2", "4"), ("1.50", "3.0"), ("0.125", "0.25")]
_WINDOWS = [
    DAY,
    Window(t("11-21 00:00:00"), t("11-21 12:00:00")),
    Window(t("11-21 00:00:00"), t("11-21 18:00:07")),
    Window(t("11-21 00:00:00"), t("11-23 00:00:00")),
]


def _near(rng: random.Random) -> datetime:
    offset = rng.choice([rng.randrange(-3_000, 3_000), rng.randrange(-7_200_000, 7_200_000)])
    return rng.choice(_EDGES) + timedelta(milliseconds=offset)


def _observation(rng: random.Random) -> RunObservation:
    started = _near(rng)
    stopped = rng.choice([None, _near(rng), started + timedelta(milliseconds=rng.randrange(0, 5_000_000))])
    cpu, memory = rng.choice(_SIZES)
    return RunObservation(
        uid=InstanceUid("uid-1"),
        instance_id=InstanceId("ci-one"),
        tenant=TenantId(rng.choice(["acme", 'q"uote', "é-tenant"])),
        region=Region(rng.choice(["r1", "r2", "r2", "nowhere"])),
        cluster="kind-a",
        cpu=Decimal(cpu),
        memory_gib=Decimal(memory),
        started_at=started,
        has_start=rng.random() < 0.8,
        stopped_at=stopped,
        last_seen=rng.choice([None, started + timedelta(seconds=rng.randrange(0, 90_000))]),
        reason=rng.choice([None, "Completed", "Failed"]),
    )


def test_generated_runs_agree_with_the_general_path() -> None:
    rng = random.Random(20261121)
    taken = 0
    for _ in range(5_000):
        obs, window = _observation(rng), rng.choice(_WINDOWS)
        try:
            general = meter_runs([obs], prices(), window)
        except BillingError as exc:  # no price: the shortcut fails the same way, or defers
            with pytest.raises(type(exc)):
                if meter_single_run(obs, prices(), window) is None:
                    raise exc
            continue
        fast = meter_single_run(obs, prices(), window)
        if fast is not None:
            taken += 1
            _same(fast, general)
        _same(meter_instance([obs], prices(), window), general)
    assert taken > 1_000  # the generator reaches the shortcut, not only the fallback
