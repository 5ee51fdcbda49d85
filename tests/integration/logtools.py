"""Helpers for log-pipeline tests that need no stack fixture: run Filebeat and the root shim
as subprocesses, write kubelet CRI log files and controller event files, wait for documents.

Every process here is started by the test that owns it and stopped by pid, never by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elasticsearch import AsyncElasticsearch

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_filebeat() -> Path:
    """$CIS_FILEBEAT, else the installer's cache location for the pinned build."""
    env = os.environ.get("CIS_FILEBEAT")
    if env:
        return Path(env)
    caches = [Path(os.environ.get("CIS_CACHE", "")), Path("/var/cache/cis"), Path.home() / ".cache" / "cis"]
    for cache in caches:
        for candidate in sorted(cache.glob("filebeat-*/bin/filebeat")) if cache.name else []:
            return candidate
    return Path("filebeat")


@dataclass
class Filebeat:
    """One Filebeat process with its own home, data (registry) and log directories."""

    binary: Path
    workdir: Path
    config_text: str
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.workdir / "filebeat.yml"

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def log_file(self) -> Path:
        return self.workdir / "filebeat.log"

    def _args(self, *command: str) -> list[str]:
        return [
            str(self.binary),
            *command,
            "-c",
            str(self.config),
            "--path.home",
            str(self.workdir),
            "--path.data",
            str(self.data),
            "--path.logs",
            str(self.workdir / "logs"),
        ]

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(self.config_text)
        self.config.chmod(0o600)  # Filebeat refuses configs others can write

    def test_config(self) -> subprocess.CompletedProcess[str]:
        self.write_config()
        return subprocess.run(
            self._args("test", "config"), capture_output=True, text=True, timeout=60, env={**os.environ, **self.env}
        )

    def start(self) -> None:
        assert self.proc is None, "already running"
        self.write_config()
        log = self.log_file.open("ab")
        self.proc = subprocess.Popen(
            [*self._args(), "-e"], stdout=log, stderr=log, env={**os.environ, **self.env}, start_new_session=True
        )
        log.close()

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (or SIGKILL: unacknowledged events are then re-sent after a restart)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def wipe_registry(self) -> None:
        assert self.proc is None, "stop Filebeat first"
        shutil.rmtree(self.data, ignore_errors=True)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@dataclass
class RootShim:
    """`python -m cis_logging.root_shim` in front of Elasticsearch (see its docstring)."""

    upstream: str
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None
        out = self.log_path.open("ab") if self.log_path else None
        try:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cis_logging.root_shim",
                    "--listen",
                    f"{self.host}:{self.port}",
                    "--upstream",
                    self.upstream,
                ],
                stdout=out or subprocess.DEVNULL,
                stderr=out or subprocess.DEVNULL,
                cwd=REPO_ROOT,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.5):
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"root shim exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise TimeoutError("root shim did not start listening")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@contextlib.contextmanager
def running(*procs: Filebeat | RootShim) -> Iterator[None]:
    try:
        for p in procs:
            p.start()
        yield
    finally:
        for p in reversed(procs):
            p.stop()


# ----------------------------------------------------------------------------- files


def cri_timestamp(when: datetime) -> str:
    """The kubelet's RFC3339Nano timestamp (9 fraction digits, UTC)."""
    when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond:06d}123Z"


def pod_log_file(root: Path, *, namespace: str, pod: str, uid: str, container: str, run: int = 0) -> Path:
    """`<root>/<namespace>_<pod>_<uid>/<container>/<run>.log`, directories created."""
    path = root / f"{namespace}_{pod}_{uid}" / container / f"{run}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append_cri(path: Path, lines: Sequence[tuple[datetime, str, str]], *, partial: bool = False) -> None:
    """Append (time, stream, message) lines as the kubelet does, one write per call."""
    tag = "P" if partial else "F"
    text = "".join(f"{cri_timestamp(t)} {stream} {tag} {msg}\n" for t, stream, msg in lines)
    with path.open("a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def append_events(path: Path, events: Sequence[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in events))
        f.flush()
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- waiting


async def delete_indices(es: AsyncElasticsearch, pattern: str) -> None:
    """By name: clusters refuse wildcard deletes (action.destructive_requires_name)."""
    names = list((await es.indices.get(index=pattern, allow_no_indices=True, ignore_unavailable=True)).body)
    if names:
        await es.indices.delete(index=",".join(names), ignore_unavailable=True)


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.5,
    diagnostics: Callable[[], str] | None = None,
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await check():
            return
        if asyncio.get_running_loop().time() > deadline:
            extra = f"\n{diagnostics()}" if diagnostics else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        await asyncio.sleep(interval)


async def count_docs(es: AsyncElasticsearch, index: str, query: dict[str, Any] | None = None) -> int:
    await es.indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
    resp = await es.count(index=index, query=query or {"match_all": {}}, allow_no_indices=True, ignore_unavailable=True)
    return int(resp["count"])


async def wait_for_count(
    es: AsyncElasticsearch,
    index: str,
    expected: int,
    *,
    query: dict[str, Any] | None = None,
    timeout: float = 60.0,
    diagnostics: Callable[[], str] | None = None,
) -> None:
    """Until exactly `expected` documents match (fails early if more appear)."""
    last = -1

    async def check() -> bool:
        nonlocal last
        last = await count_docs(es, index, query)
        if last > expected:
            raise AssertionError(f"{index}: {last} documents, expected {expected}")
        return last == expected

    await wait_until(
        check,
        timeout=timeout,
        what=f"{expected} documents in {index}",
        diagnostics=lambda: f"last count {last}\n" + (diagnostics() if diagnostics else ""),
    )
