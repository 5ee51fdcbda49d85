"""Small blocking helpers for integration tests: a CIS REST client and waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from cis.devstack.platform import CisProcess, api


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0, every: float = 0.3) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")
        time.sleep(every)


class Client:
    """The REST API as one tenant (or the admin) sees it."""

    def __init__(self, cis: CisProcess, key: str) -> None:
        self.url = cis.url
        self.key = key

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return api(self.url, method, path, self.key, body)

    def ok(self, method: str, path: str, body: Any = None, expect: int | tuple[int, ...] = (200, 201, 202)) -> Any:
        status, got = self.call(method, path, body)
        codes = expect if isinstance(expect, tuple) else (expect,)
        assert status in codes, f"{method} {path}: {status} {got}"
        return got

    def create(self, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.ok("POST", "/v1/instances", spec, 201))

    def get(self, instance_id: str) -> dict[str, Any]:
        return dict(self.ok("GET", f"/v1/instances/{instance_id}", expect=200))

    def phase(self, instance_id: str) -> str:
        return str(self.get(instance_id).get("status", {}).get("phase"))

    def wait_phase(self, instance_id: str, phase: str, timeout: float = 60.0) -> dict[str, Any]:
        return dict(wait_for(f"{instance_id} {phase}", lambda: (
            (inst := self.get(instance_id))["status"].get("phase") == phase and inst), timeout))

    def list_all(self, query: str = "") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cont = ""
        while True:
            sep = "&" if query else ""
            page = self.ok("GET", f"/v1/instances?limit=500{sep}{query}" + (f"&continue={cont}" if cont else ""))
            items += page["items"]
            cont = page.get("continue", "")
            if not cont:
                return items


def small(name: str = "app", **extra: Any) -> dict[str, Any]:
    """A minimal instance spec: one container, the smallest size."""
    return {"containers": [{"name": name, "image": "nginx:1.27",
                            "resources": {"cpu": 0.25, "memoryGiB": 0.5}}], **extra}
