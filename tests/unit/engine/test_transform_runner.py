"""Transform URIs and the transform process protocol (real subprocesses, no database)."""

from __future__ import annotations

import io
import stat
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import pytest

from matchstream.ddl.ast import TransformSpec
from matchstream.engine.errors import TransformNotUsable
from matchstream.engine.transform_runner import (
    install_transform,
    resolve_transform,
    run_transform,
)
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


def _uri(path: Path) -> str:
    return f"file://{path}"


@pytest.mark.parametrize("form", ["file:///ABS", "file://localhost/ABS"])
def test_file_uris_install_a_copy(tmp_path: Path, form: str) -> None:
    """The documented URIs name the file; the engine runs its copy in the pipeline's dir."""
    script = _script(tmp_path / "t.py", ECHO)
    uri = form.replace("/ABS", str(script))
    resolved = resolve_transform(TransformSpec(uri), sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert resolved.executable == tmp_path / "u" / "t.py"
    assert resolved.executable.read_bytes() == script.read_bytes()


@pytest.mark.parametrize(("form", "hint"), [
    ("/ABS", "'file:///ABS'"), ("t.py", "'file:///ABS'"), ("./t.py", "'file:///ABS'"),
    ("file:t.py", "'file:///ABS'"), ("file:/ABS", "'file:///ABS'"),
    ("memsql://json", "http:// and file://"),
])
def test_undocumented_uris_are_refused_with_the_form_to_use(tmp_path: Path, form: str,
                                                            hint: str) -> None:
    script = _script(tmp_path / "t.py", ECHO)
    with pytest.raises(TransformNotUsable) as info:
        install_transform(TransformSpec(form.replace("/ABS", str(script))), sql_dir=tmp_path,
                          unpack_dir=tmp_path / "u")
    assert hint.replace("/ABS", str(script)) in info.value.reason
    assert not (tmp_path / "u").exists()


def test_the_copy_changes_only_when_installed_again(tmp_path: Path) -> None:
    """Edits to the original need RELOAD TRANSFORM (install), as on SingleStore."""
    script = _script(tmp_path / "my transform.py", "print(1)\n")
    spec = TransformSpec(_uri(script))
    first = install_transform(spec, sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert first.executable.name == "my_transform.py"  # names are sanitised
    _script(script, "print(2)\n")
    assert b"print(1)" in resolve_transform(spec, sql_dir=tmp_path,
                                            unpack_dir=tmp_path / "u").executable.read_bytes()
    again = install_transform(spec, sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert b"print(2)" in again.executable.read_bytes()
    assert sorted(p.name for p in (tmp_path / "u").iterdir()) == [".source.json",
                                                                   "my_transform.py"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".u.")] == []


def test_a_sibling_module_is_not_reachable(tmp_path: Path) -> None:
    """A leaf gets the one file: importing a module next to the original fails."""
    (tmp_path / "helper.py").write_text("VALUE = 1\n")
    script = _script(tmp_path / "uses_helper.py", "import helper\nprint(helper.VALUE)\n")
    resolved = install_transform(TransformSpec(_uri(script)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"x"], sink, timeout_s=30)
    assert not outcome.ok and "No module named 'helper'" in outcome.stderr_tail


def test_the_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHSTREAM_DB_PASSWORD", "secret")
    monkeypatch.setenv("MATCHSTREAM_TRAINER", "cold")
    script = _script(tmp_path / "env.py", "import os\nprint(sorted(os.environ))\n"
                     "print(os.environ['PATH'])\n")
    resolved = install_transform(TransformSpec(_uri(script)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        assert run_transform(resolved, [], sink, timeout_s=30,
                             extra_env={"MATCHSTREAM_DRY_RUN": "1"}).ok
    names, path = (tmp_path / "out").read_text().splitlines()
    assert "MATCHSTREAM_DB_PASSWORD" not in names
    assert "'MATCHSTREAM_TRAINER'" in names and "'MATCHSTREAM_DRY_RUN'" in names
    assert path.split(":")[0] == str(Path(sys.executable).parent)


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
    resolved = resolve_transform(TransformSpec(_uri(archive), "main.py", "a b"),
                                 sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    assert resolved.executable == tmp_path / "u" / "bundle" / "main.py"
    assert resolved.args == ("a", "b")
    with pytest.raises(TransformNotUsable, match="needs the program"):
        resolve_transform(TransformSpec(_uri(archive)), sql_dir=tmp_path, unpack_dir=tmp_path / "u")


def test_framed_stdin_argv_split_on_spaces_and_cwd(tmp_path: Path) -> None:
    script = _script(tmp_path / "echo.py", ECHO)
    resolved = resolve_transform(TransformSpec(_uri(script), "", "-a  b"), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    out = io.BytesIO()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"x", b"", b"yz"], sink, timeout_s=30)
    # All of stdin arrived: checked on the bytes the transform saw (data == frames) below.
    assert outcome.ok
    out.write((tmp_path / "out").read_bytes())
    args, cwd, data = eval(out.getvalue().decode())  # noqa: S307 - our own repr
    assert args == ["-a", "b"] and cwd == str(tmp_path / "u")  # the copy's directory
    assert data == encode_frames([b"x", b"", b"yz"])


def test_exit_status_signal_and_stderr(tmp_path: Path) -> None:
    failing = _script(tmp_path / "f.py", "import sys\nsys.stderr.write('boom\\n')\nsys.exit(2)\n")
    resolved = resolve_transform(TransformSpec(_uri(failing)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a"], sink, timeout_s=30)
    assert not outcome.ok and outcome.returncode == 2 and "boom" in outcome.stderr_tail
    assert outcome.failure_reason(30) == "transform exited with status 2"
    killed = _script(tmp_path / "k.py", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    resolved = resolve_transform(TransformSpec(_uri(killed)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [], sink, timeout_s=30)
    assert outcome.failure_reason(30) == "transform was killed by SIGSEGV"


def _assert_gone(pid: int, timeout_s: float = 10.0) -> None:
    """The process ``pid`` has died: gone, or a zombie its (dead) parent left to init."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with open(f"/proc/{pid}/stat") as stat_file:
                if stat_file.read().rsplit(") ", 1)[1].startswith("Z"):
                    return
        except FileNotFoundError:
            return
        assert time.monotonic() < deadline, f"process {pid} outlived its transform"
        time.sleep(0.05)


def _hang_with_a_child(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A transform that starts `sleep 600` (its grandchild, to the engine) and hangs; the
    grandchild's pid goes to a file before the hang."""
    pid_file = tmp_path / f"{name}.pid"
    script = _script(tmp_path / f"{name}.py", "import subprocess, time\n"
                     "child = subprocess.Popen(['sleep', '600'])\n"
                     f"with open({str(pid_file)!r}, 'w') as f:\n"
                     "    f.write(str(child.pid))\n"
                     "time.sleep(600)\n")
    return script, pid_file


def test_timeout_and_cancel_kill_the_process_group(tmp_path: Path) -> None:
    hang, pid_file = _hang_with_a_child(tmp_path, "timeout")
    resolved = resolve_transform(TransformSpec(_uri(hang)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    started = time.monotonic()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a" * 10_000_000], sink, timeout_s=1)
    assert outcome.timed_out and not outcome.ok and time.monotonic() - started < 10
    _assert_gone(int(pid_file.read_text()))
    hang, pid_file = _hang_with_a_child(tmp_path, "cancel")
    resolved = resolve_transform(TransformSpec(_uri(hang)), sql_dir=tmp_path,
                                 unpack_dir=tmp_path / "u")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [], sink, timeout_s=60, cancelled=cancel)
    assert outcome.cancelled and not outcome.ok
    _assert_gone(int(pid_file.read_text()))


ENDLESS = "import sys\nwhile True:\n    sys.stdout.buffer.write(b'x' * 65535 + b'\\n')\n"
READ_ONE = "import os\nos.read(0, 8)\nprint('one')\n"  # 8 bytes of stdin, exit 0


def test_output_beyond_the_cap_fails_the_run(tmp_path: Path) -> None:
    resolved = resolve_transform(TransformSpec(_uri(_script(tmp_path / "e.py", ENDLESS))),
                                 sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    started = time.monotonic()
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a"], sink, timeout_s=30, max_output_bytes=1_000_000)
    assert not outcome.ok and time.monotonic() - started < 10
    assert outcome.failure_reason(30) == (
        "transform output exceeded 1000000 bytes (transform_output_max_bytes); "
        "is it writing without end?")
    assert (tmp_path / "out").stat().st_size == 0  # nothing of it reaches the caller


def test_exit_0_with_input_left_unread_fails_the_run(tmp_path: Path) -> None:
    resolved = resolve_transform(TransformSpec(_uri(_script(tmp_path / "r.py", READ_ONE))),
                                 sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        outcome = run_transform(resolved, [b"a" * 992] * 20, sink, timeout_s=30)
    assert outcome.returncode == 0 and not outcome.ok
    assert outcome.failure_reason(30) == (
        "transform exited without reading all of its input: 8 of 20000 bytes read")
    assert (tmp_path / "out").read_bytes() == b"one\n"
    reads_all = resolve_transform(TransformSpec(_uri(_script(tmp_path / "a.py", ECHO))),
                                  sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    with (tmp_path / "out").open("wb") as sink:
        assert run_transform(reads_all, [b"a" * 992] * 5000, sink, timeout_s=30).ok


class _BrokenSink(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("case", ["success", "failure", "timeout", "cancel", "cap", "unread",
                                  "exception"])
def test_work_files_are_removed_on_every_outcome(tmp_path: Path, case: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "tmp"
    work.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(work))  # where run_transform cuts its output
    body = {"success": ECHO, "failure": "import sys\nprint('x' * 100)\nsys.exit(4)\n",
            "timeout": "print('x' * 100, flush=True)\nimport time\ntime.sleep(600)\n",
            "cancel": "print('x' * 100, flush=True)\nimport time\ntime.sleep(600)\n",
            "cap": ENDLESS, "unread": READ_ONE, "exception": ECHO}[case]
    resolved = resolve_transform(TransformSpec(_uri(_script(tmp_path / "t.py", body))),
                                 sql_dir=tmp_path, unpack_dir=tmp_path / "u")
    cancel = threading.Event()
    if case == "cancel":
        threading.Timer(0.5, cancel.set).start()
    sink: io.RawIOBase = _BrokenSink() if case == "exception" else io.BytesIO()
    try:
        outcome = run_transform(resolved, [b"a" * 992] * 100, sink,  # type: ignore[arg-type]
                                timeout_s=1 if case == "timeout" else 30, cancelled=cancel,
                                max_output_bytes=1_000_000)
    except OSError:
        assert case == "exception"
    else:
        assert outcome.ok == (case == "success") and case != "exception"
    assert list(work.iterdir()) == []


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
        f"t = resolve_transform(TransformSpec({_uri(sleeper)!r}), sql_dir=Path('/'), "
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
