from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from matchstream.stack.process import ManagedProcess


def test_a_recycled_pid_is_not_taken_for_ours(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        proc = ManagedProcess("x", tmp_path, tmp_path)
        # A record naming a live pid with another start time: the pid was reused.
        proc.pid_file.write_text(json.dumps({"pid": other.pid, "start_time": "1", "argv": ["x"]}))
        assert proc.running_pid() is None
        assert proc.stop() is False
        assert other.poll() is None, "a process that is not ours must never be signalled"
    finally:
        other.kill()
        other.wait()


def test_start_and_stop_record_and_remove_the_pid(tmp_path: Path) -> None:
    proc = ManagedProcess("sleeper", tmp_path / "run", tmp_path / "logs")
    pid = proc.start(
        [sys.executable, "-c", "print('hello', flush=True); import time; time.sleep(30)"]
    )
    assert proc.running_pid() == pid
    deadline = time.monotonic() + 10
    while "hello" not in proc.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "hello" in proc.log_tail(), "the child's output goes to its log"
    assert proc.stop(grace_s=5) is True
    assert proc.running_pid() is None
    assert not proc.pid_file.exists()
