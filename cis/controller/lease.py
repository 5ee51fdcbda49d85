"""Leader election on a coordination.k8s.io Lease, so one controller reconciles at a time.

Standby replicas retry until the holder stops renewing. A leader that cannot renew in
time stops leading (raises), and its process exits: half-led is worse than restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from kubeio.client import JSON, Conflict, KubeClient, KubeError, NotFound

log = logging.getLogger(__name__)


class LostLease(RuntimeError):
    pass


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


class LeaderElector:
    def __init__(self, kube: KubeClient, namespace: str, name: str, identity: str, *,
                 duration: float = 15.0, renew_every: float = 5.0, retry_every: float = 1.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if renew_every >= duration:
            raise ValueError("renew_every must be shorter than duration")
        self.kube = kube
        self.path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_every = renew_every
        self.retry_every = retry_every
        self.clock = clock
        self.leading = asyncio.Event()

    async def _try(self) -> bool:
        now = self.clock()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.duration),
                "renewTime": _fmt(now)}
        try:
            lease = await self.kube.get(f"{self.path}/{self.name}")
        except NotFound:
            try:
                await self.kube.create(self.path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                                   "metadata": {"name": self.name},
                                                   "spec": {**spec, "acquireTime": _fmt(now)}})
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
            await self.kube.replace(f"{self.path}/{self.name}", lease)
        except Conflict:
            return False
        return True

    async def run(self) -> None:
        last_renew = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                ok = await asyncio.wait_for(self._try(), self.renew_every)
            except (KubeError, TimeoutError) as exc:
                log.warning("lease %s: %s", self.name, exc)
                ok = False
            now = loop.time()
            if ok:
                if not self.leading.is_set():
                    log.info("lease %s: %s is now the leader", self.name, self.identity)
                self.leading.set()
                last_renew = now
            elif self.leading.is_set():
                if now - last_renew > self.duration - self.renew_every:
                    raise LostLease(f"lost lease {self.name}")
                await asyncio.sleep(self.retry_every)  # a leader retries a failed renewal soon
                continue
            await asyncio.sleep(self.renew_every)
