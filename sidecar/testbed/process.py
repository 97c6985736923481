"""Server processes the test bed starts, watches and stops."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ManagedProcess:
    """One server process in its own session, logging to a file, with a scratch directory.

    The process leads its own process group, so stopping it also stops whatever it forked, and
    a `testbed up` from the CLI leaves it running after the CLI exits.
    """

    name: str
    pid: int
    log_path: Path
    scratch_dir: Path | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        scratch_dir: Path | None = None,
        user: str | None = None,
    ) -> ManagedProcess:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=_primary_group(user) if user else None,
            )
        return cls(name, popen.pid, log_path, scratch_dir, popen)

    def is_running(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not _is_zombie(self.pid)

    def exit_code(self) -> int | None:
        return self.popen.poll() if self.popen is not None else None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``, then drop the scratch dir."""
        if self.is_running():
            self._signal_group(signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while self.is_running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if self.is_running():
                self._signal_group(signal.SIGKILL)
                if self.popen is not None:
                    self.popen.wait(timeout=10)
        if self.popen is not None and self.popen.poll() is not None:
            self.popen.wait()
        if self.scratch_dir is not None:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the process group at once: a crash, with no chance to clean up."""
        self._signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=10)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def to_state(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": self.pid,
            "log_path": str(self.log_path),
            "scratch_dir": str(self.scratch_dir) if self.scratch_dir else None,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ManagedProcess:
        scratch = state.get("scratch_dir")
        return cls(
            name=str(state["name"]),
            pid=int(state["pid"]),
            log_path=Path(state["log_path"]),
            scratch_dir=Path(scratch) if scratch else None,
        )


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
