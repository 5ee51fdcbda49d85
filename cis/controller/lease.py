"""Leader election on a coordination.k8s.io Lease, so one controller reconciles at a time.

Standby replicas retry until the holder stops renewing. A leader that cannot renew in
time stands down at once (`leading` cleared, `standing_by` set, before anyone else may take
the lease over), then tries again like any standby; the process and its API keep running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubeio.client import JSON, Conflict, KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(s: str | None) -> datetime | None:
    if not s:
        return None
    return datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def lease_expired(spec: JSON, now: datetime) -> bool:
    renew = _parse(spec.get("renewTime"))
    duration = int(spec.get("leaseDurationSeconds") or 0)
    return renew is None or now > renew + timedelta(seconds=duration)


def renew_budget(now: float, last_renew: float, renew_deadline: float) -> float:
    """Seconds a leader may still spend renewing (monotonic clock); <= 0: the lease is lost.

    A renewal attempt is cut at this budget, so a leader never acts past
    `last_renew + renew_deadline`, which is `lease_duration - renew_deadline` before any
    other replica may take the lease over.
    """
    return last_renew + renew_deadline - now


class LeaderElector:
    """client-go's leader election: try every `retry_period`; a leader keeps the lease as
    long as one renewal succeeds within `renew_deadline` of the previous one, however slow
    each answer is (an apiserver under a burst of writes may take seconds per request)."""

    def __init__(self, kube: KubeClient, namespace: str, name: str, identity: str, *,
                 duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if not retry_period < renew_deadline < duration:
            raise ValueError("need retry_period < renew_deadline < duration")
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.leading = asyncio.Event()
        self.standing_by = asyncio.Event()
        self.standing_by.set()
        self._held: JSON | None = None  # the Lease as we last wrote it, while we hold it

    async def _try(self) -> bool:
        now = self.clock()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                "renewTime": _fmt(now)}
        if self._held is not None:
            # Renewing: one optimistic write on the version we wrote last (a busy apiserver
            # answers one request sooner than two); a conflict means someone else wrote it.
            self._held["spec"] = {**self._held.get("spec", {}), **spec}
            try:
                self._held = await self.kube.replace(f"{self.path}/{self.name}", self._held)
                return True
            except (Conflict, NotFound):
                self._held = None
        try:
            lease = await self.kube.get(f"{self.path}/{self.name}")
        except NotFound:
            try:
                body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name},
                        "spec": {**spec, "acquireTime": _fmt(now)}}
                self._held = await self.kube.create(self.path, body)
                return True
            except Conflict:
                return False
        current = lease.get("spec", {})
        mine = current.get("holderIdentity") == self.identity
        if not mine and not lease_expired(current, now):
            return False
        if not mine:
            spec["acquireTime"] = _fmt(now)
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        lease["spec"] = {**current, **spec}
        try:
            self._held = await self.kube.replace(f"{self.path}/{self.name}", lease)
        except Conflict:
            return False
        return True

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_renew = 0.0
        while True:
            started = loop.time()
            budget = self.renew_deadline
            if self.leading.is_set():
                budget = renew_budget(started, last_renew, self.renew_deadline)
                if budget <= 0:
                    log.warning("lease %s: not renewed for %.0fs; standing by", self.name, self.renew_deadline)
                    self.leading.clear()
                    self.standing_by.set()
                    self._held = None
                    budget = self.renew_deadline
            try:
                ok = await asyncio.wait_for(self._try(), budget)
            except TimeoutError:
                log.warning("lease %s: no answer within %.1fs", self.name, budget)
                ok = False
            except KubeError as exc:
                log.warning("lease %s: %s", self.name, exc)
                ok = False
            if ok:
                if not self.leading.is_set():
                    log.info("lease %s: %s is now the leader", self.name, self.identity)
                self.standing_by.clear()
                self.leading.set()
                last_renew = started  # the renewTime written is from the attempt's start
            await asyncio.sleep(self.retry_period)
