"""Transform URIs and the transform process protocol (real subprocesses, no database)."""

from __future__ import annotations

import io
import stat
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from matchstream.ddl.ast import TransformSpec
from matchstream.engine.errors import TransformNotUsable
from matchstream.engine.transform_runner import resolve_transform, run_transform
from matchstream.framing import encode_frames


def _script(path: Path, body: str) -> Path:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


ECHO = (
    "import sys, os\n"
    "data = sys.stdin.buffer.read()\n"
    "sys.stdout.buffer.write(repr((sys.argv[1:], os.getcwd(), data)).encode())\n"
)


@pytest.mark.parametrize("form", ["file:///ABS", "file://localhost/ABS", "/ABS", "t.py",
                                  "file:t.py", "./t.py"])
def test_uri_forms_resolve_to_the_same_file(tmp_path: Path, form: str) -> None:
    """Absolute forms, and relative paths resolved against the SQL file's directory."""
    script = _script(tmp_path / "t.py", ECHO)
    uri = form.replace("/ABS", str(script))
    resolved = resolve_transform(TransformSpec(uri), sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert resolved.executable == script


@pytest.mark.parametrize("case", ["missing", "not-executable", "http", "remote-host"])
def test_unusable_transforms_are_rejected(tmp_path: Path, case: str) -> None:
    plain = tmp_path / "plain.py"
    plain.write_text("print(1)\n")
    uri = {
        "missing": f"file://{tmp_path}/nope.py",
        "not-executable": f"file://{plain}",
        "http": "http://example.com/t.py",
        "remote-host": "file://otherhost/t.py",
    }[case]
    with pytest.raises(TransformNotUsable):
        resolve_transform(TransformSpec(uri), sql_dir=tmp_path, unpack_dir=tmp_path / "u")


def test_archive_is_unpacked_and_program_found(tmp_path: Path) -> None:
    inner = _script(tmp_path / "main.py", ECHO)
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(inner, arcname="main.py")
    resolved = resolve_transform(TransformSpec(str(archive), "main.py", "a b"),
                                 sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert resolved.executable.parent.parent == tmp_path / "u"
    assert resolved.args == ("a", "b")
    with pytest.raises(TransformNotUsable, match="needs the program"):
        resolve_transform(TransformSpec(str(archive)), sql_dir=tmp_path, unpack_dir=tmp_path / "u")


def test_framed_stdin_argv_split_on_spaces_and_cwd(tmp_path: Path) -> None:
    script = _script(tmp_path / "echo.py", ECHO)
    resolved = resolve_transform(TransformSpec(str(script), "", "-a  b"), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    out = io.BytesIO()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"x", b"", b"yz"], sink, timeout_s=30)
    # All of stdin arrived: checked on the bytes the transform saw (data == frames) below.
    assert outcome.ok
    out.write((tmp_path / "out").read_bytes())
    args, cwd, data = eval(out.getvalue().decode())  # noqa: S307 - our own repr
    assert args == ["-a", "b"] and cwd == str(tmp_path)
    assert data == encode_frames([b"x", b"", b"yz"])


def test_exit_status_signal_and_stderr(tmp_path: Path) -> None:
    failing = _script(tmp_path / "f.py", "import sys\nsys.stderr.write('boom\\n')\nsys.exit(2)\n")
    resolved = resolve_transform(TransformSpec(str(failing)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a"], sink, timeout_s=30)
    assert not outcome.ok and outcome.returncode == 2 and "boom" in outcome.stderr_tail
    assert outcome.failure_reason(30) == "transform exited with status 2"
    killed = _script(tmp_path / "k.py", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    resolved = resolve_transform(TransformSpec(str(killed)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [], sink, timeout_s=30)
    assert outcome.failure_reason(30) == "transform was killed by SIGSEGV"


def test_timeout_and_cancel_kill_the_process_group(tmp_path: Path) -> None:
    hang = _script(tmp_path / "h.py", "import subprocess, time\n"
                   "subprocess.Popen(['sleep', '600'])\ntime.sleep(600)\n")
    resolved = resolve_transform(TransformSpec(str(hang)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    started = time.monotonic()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a" * 10_000_000], sink, timeout_s=1)
    assert outcome.timed_out and not outcome.ok and time.monotonic() - started < 10
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [], sink, timeout_s=60, cancelled=cancel)
    assert outcome.cancelled and not outcome.ok


def test_transform_dies_with_its_engine_without_loading_libc_after_fork(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: SIGKILL the process that started a transform and the transform dies.

    The helper makes ctypes.CDLL unusable after importing transform_runner, so the test also
    fails if the child still loads libc (dlopen after fork of a threaded process can deadlock):
    only the prctl pointer resolved at import may be used.
    """
    import os
    import signal
    import subprocess

    pid_file = tmp_path / "transform.pid"
    sleeper = _script(tmp_path / "s.py", f"import os, time\nopen({str(pid_file)!r}, 'w')"
                      ".write(str(os.getpid()))\ntime.sleep(600)\n")
    helper = (
        "import ctypes, io, threading, sys\n"
        "from pathlib import Path\n"
        "from matchstream.ddl.ast import TransformSpec\n"
        "from matchstream.engine.transform_runner import resolve_transform, run_transform\n"
        "def _no_dlopen(*a, **k):\n"
        "    raise OSError('dlopen after import')\n"
        "ctypes.CDLL = _no_dlopen\n"
        "threading.Thread(target=lambda: threading.Event().wait(600), daemon=True).start()\n"
        f"t = resolve_transform(TransformSpec({str(sleeper)!r}), sql_dir=Path('/'), "
        f"unpack_dir=Path({str(tmp_path / 'u')!r}))\n"
        "run_transform(t, [], open('/dev/null', 'wb'), timeout_s=600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", helper])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert proc.poll() is None, "the helper failed to start the transform"
            assert time.monotonic() < deadline, "the transform did not start"
            time.sleep(0.05)
        transform_pid = int(pid_file.read_text())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(transform_pid, 0)
        except ProcessLookupError:
            break  # gone (reaped by init once its parent died)
        with open(f"/proc/{transform_pid}/stat") as stat_file:
            if stat_file.read().split(") ")[1].startswith("Z"):
                break  # killed, waiting to be reaped
        assert time.monotonic() < deadline, "the transform outlived the killed engine"
        time.sleep(0.05)
