"""Background processes recorded by pid file, so `down` stops exactly what `up` started.

A pid alone is not an identity: after a reboot or a crash the number may belong to another
program. Each record therefore keeps the process's start time (field 22 of /proc/PID/stat), and a
pid counts as ours only while both match. Nothing is ever looked up or killed by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from matchstream.stack.errors import StackError

__all__ = ["ManagedProcess", "ProcessRecord"]

# How long a process gets to exit after SIGTERM before SIGKILL. MariaDB flushes InnoDB on a clean
# shutdown; cutting that short only costs crash recovery on the next start, never data.
STOP_GRACE_S = 30.0
# After SIGKILL only a process stuck in the kernel (state D) survives; say so instead of hanging.
KILL_WAIT_S = 10.0


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    start_time: str
    argv: list[str]


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    after_name = stat.rsplit(")", 1)[1].split()
    state = after_name[0]
    if state == "Z":  # a zombie has exited; only its parent's wait() is missing
        return None
    return after_name[19]


class ManagedProcess:
    """One named background process of the stack."""

    def __init__(self, name: str, run_dir: Path, log_dir: Path) -> None:
        self.name = name
        self.pid_file = run_dir / f"{name}.pid"
        self.log_file = log_dir / f"{name}.log"

    def record(self) -> ProcessRecord | None:
        try:
            data = json.loads(self.pid_file.read_text())
            return ProcessRecord(int(data["pid"]), str(data["start_time"]), list(data["argv"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def running_pid(self) -> int | None:
        """The recorded pid if that very process is still alive, else None."""
        rec = self.record()
        if rec is None:
            return None
        return rec.pid if _start_time(rec.pid) == rec.start_time else None

    def start(
        self, argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> int:
        """Start ``argv`` detached (own session, output appended to the log) and record it."""
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            proc = subprocess.Popen(  # argv is built by us, never by a shell
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the CLI; a Ctrl-C there does not reach it
                env=env,
                cwd=cwd,
            )
        started = _start_time(proc.pid) or ""
        tmp = self.pid_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(ProcessRecord(proc.pid, started, list(argv)))))
        os.replace(tmp, self.pid_file)
        return proc.pid

    def exited_early(self) -> bool:
        """True when the recorded process is gone (used while waiting for readiness)."""
        return self.running_pid() is None

    def stop(self, grace_s: float = STOP_GRACE_S) -> bool:
        """SIGTERM, wait, then SIGKILL the recorded process. True if something was stopped."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        # The process may exit on its own between the check and the signal: that is a success.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_gone(pid, grace_s):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if not self._wait_gone(pid, KILL_WAIT_S):
                raise StackError(
                    f"{self.name} (pid {pid}) survived SIGKILL for {KILL_WAIT_S:.0f} s; "
                    f"it is probably stuck in the kernel (see `ps -o stat -p {pid}`)"
                )
        self.pid_file.unlink(missing_ok=True)
        return True

    def _wait_gone(self, pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.running_pid() is not None:
            self._reap(pid)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    @staticmethod
    def _reap(pid: int) -> None:
        # When this very process started the child (tests, `up` then `down` in one process), the
        # child lingers as a zombie until waited for.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
