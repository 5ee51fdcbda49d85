"""Child processes of the local stack: start with a log file and a pid file, wait, stop.

Each process runs in its own session, so stopping it also stops anything it forked.
Pid files let `cis dev down` stop a stack started by another `cis dev up` process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# The Go components (etcd, apiservers, controller-managers, schedulers, KWOK) collect
# garbage when their heap has grown by 200% instead of the default 100%: on a 2-core,
# 24 GiB machine CPU is the scarce resource and memory is not. Measured on the
# management apiserver: about 17% fewer instructions per ContainerInstance status write.
GO_RUNTIME_ENV: Mapping[str, str] = {"GOGC": "200"}


class ComponentFailed(RuntimeError):
    """A component did not start or did not become ready; names it and points at its log."""

    def __init__(self, name: str, reason: str, log_file: Path | None = None) -> None:
        tail = ""
        if log_file is not None and log_file.exists():
            lines = log_file.read_text(errors="replace").splitlines()[-15:]
            tail = "\n  | " + "\n  | ".join(lines) if lines else ""
        where = f" (log: {log_file})" if log_file else ""
        super().__init__(f"{name}: {reason}{where}{tail}")
        self.name = name


@dataclass
class Process:
    """One named child process whose output goes to `<log_dir>/<name>.log`."""

    name: str
    argv: Sequence[str]
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.log_dir / f"{self.name}.pid"

    def start(self) -> None:
        argv = list(self.argv)
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(self.popen.pid))
        log.info("started %s (pid %d)", self.name, self.popen.pid)

    def exited(self) -> int | None:
        """The exit code if the process has ended, else None."""
        return None if self.popen is None else self.popen.poll()

    def wait_ready(self, check: Callable[[], bool], timeout: float, what: str = "ready") -> None:
        """Poll `check` until true; fail fast, with the log tail, if the process dies."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.exited()
            if code is not None:
                raise ComponentFailed(self.name, f"exited with code {code} before {what}", self.log_file)
            with contextlib.suppress(Exception):
                if check():
                    return
            if time.monotonic() > deadline:
                raise ComponentFailed(self.name, f"not {what} after {timeout:.0f}s", self.log_file)
            time.sleep(0.25)

    def stop(self, grace: float = 10.0) -> None:
        if self.popen is None:
            stop_pid_file(self.pid_file, grace)
            return
        _terminate_group(self.popen.pid, grace, self.popen.poll)
        self.popen.wait()
        self.pid_file.unlink(missing_ok=True)


def _terminate_group(pid: int, grace: float, ended: Callable[[], object]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if ended() is not None:
                return
            time.sleep(0.1)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def pid_file_alive(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file` if that process still runs."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def stop_pid_file(pid_file: Path, grace: float = 10.0) -> bool:
    """Stop the process group recorded in a pid file; True if something was running."""
    pid = pid_file_alive(pid_file)
    if pid is not None:
        _terminate_group(pid, grace, lambda: None if _pid_alive(pid) else True)
    pid_file.unlink(missing_ok=True)
    return pid is not None
