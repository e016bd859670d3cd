"""TransformStream with real transform processes: output cut at line ends only, all of it
loaded in order, nothing left behind on a timeout, a STOP or a failing source; faults contained
(an output cap, stdin left unread, children that outlive the transform)."""

from __future__ import annotations

import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from matchstream.engine.transform_runner import ResolvedTransform
from matchstream.engine.transform_stream import TransformAborted, TransformStream

# Echo every framed message as a line, repeated N times (argv[1]); "sleep" messages hang.
ECHO = """\
import struct, sys, time
inp, out = sys.stdin.buffer, sys.stdout.buffer
times = int(sys.argv[1]) if len(sys.argv) > 1 else 1
while True:
    hdr = inp.read(8)
    if not hdr:
        break
    (n,) = struct.unpack('<Q', hdr)
    value = inp.read(n)
    if value == b"sleep":
        out.flush()  # a pipe is block-buffered (transforms get no PYTHONUNBUFFERED)
        time.sleep(60)
    if value == b"fail":
        sys.exit(3)
    out.write((value + b'\\n') * times)
"""


def transform(tmp_path: Path, *args: str) -> ResolvedTransform:
    path = tmp_path / "echo.py"
    path.write_text(f"#!{sys.executable}\n{ECHO}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return ResolvedTransform(str(path), path, args)


def stream(tmp_path: Path, *args: str, body: str = ECHO, **kw: object) -> TransformStream:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    options = {"terminator": b"\n", "escape": b"\\", "splittable": True, "timeout_s": 30.0,
               "target_bytes": 1000, **kw}
    resolved = transform(tmp_path, *args)
    if body is not ECHO:
        resolved.executable.write_text(f"#!{sys.executable}\n{body}")
    return TransformStream(resolved, work_dir=work, prefix="t-",
                           **options)  # type: ignore[arg-type]


def work_files(tmp_path: Path) -> list[Path]:
    return list((tmp_path / "work").iterdir())


def assert_gone(pid: int, timeout_s: float = 10.0) -> None:
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


def read_pid(path: Path, timeout_s: float = 10.0) -> int:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text().endswith("\n"):
        assert time.monotonic() < deadline, "the transform did not start its child"
        time.sleep(0.02)
    return int(path.read_text())


def spawn_child(pid_file: Path, **popen: str) -> str:
    """Transform code starting `sleep 600` in its process group and writing the child's pid."""
    options = "".join(f", {k}={v}" for k, v in popen.items())
    return ("import subprocess\n"
            f"child = subprocess.Popen(['sleep', '600']{options})\n"
            f"with open({str(pid_file)!r}, 'w') as f:\n"
            "    f.write(f'{child.pid}\\n')\n")


def run(s: TransformStream, chunks: list[list[bytes]]) -> tuple[list[bytes], list[int]]:
    assert s.start(chunks) is None
    contents, lines = [], []
    for output in s.outputs():
        contents.append(output.path.read_bytes())
        lines.append(output.lines)
        output.path.unlink()
    return contents, lines


def test_output_is_cut_at_line_ends_and_nothing_is_lost(tmp_path: Path) -> None:
    values = [f"row-{i:05d}".encode() for i in range(2000)]
    s = stream(tmp_path, "3")
    contents, lines = run(s, [values[:700], values[700:1500], values[1500:]])
    outcome = s.finish()
    s.close()
    assert outcome.ok
    assert len(contents) > 10  # cut into many files while it ran
    assert all(c.endswith(b"\n") for c in contents)
    assert b"".join(contents) == b"".join(v + b"\n" for v in values for _ in range(3))
    assert sum(lines) == 6000 and [c.count(b"\n") for c in contents] == lines
    assert list((tmp_path / "work").iterdir()) == []


def test_an_escaped_line_end_is_not_a_cut(tmp_path: Path) -> None:
    # Every value ends with the escape character, so each "\n" after it continues the line
    # (LOAD DATA reads "a\<newline>" as a field holding a newline); only the last is a line end.
    values = [b"x" * 50 + b"\\" for _ in range(100)] + [b"end"]
    s = stream(tmp_path)
    contents, lines = run(s, [values])
    s.finish()
    s.close()
    assert len(contents) == 1 and lines == [1]


def test_an_escaped_backslash_before_a_line_end_ends_the_line(tmp_path: Path) -> None:
    # "x\\" then a newline is a field ending in one backslash, and the line ends there: an
    # even run of escapes does not escape the terminator, so every line is a cut point.
    values = [b"x" * 50 + b"\\\\" for _ in range(100)]
    s = stream(tmp_path)
    contents, lines = run(s, [values])
    s.finish()
    s.close()
    assert len(contents) > 1 and sum(lines) == 100
    assert all(c.endswith(b"\\\\\n") for c in contents)


def test_not_splittable_gives_one_file(tmp_path: Path) -> None:
    s = stream(tmp_path, splittable=False)
    contents, _ = run(s, [[b"v" * 100] * 200])
    assert s.finish().ok
    s.close()
    assert len(contents) == 1 and contents[0].count(b"\n") == 200


def test_timeout_kills_the_process_and_removes_its_files(tmp_path: Path) -> None:
    s = stream(tmp_path, timeout_s=1.0)
    assert s.start([[b"a" * 2000, b"sleep"]]) is None
    taken = []
    with pytest.raises(TransformAborted):
        for output in s.outputs():
            taken.append(output.path)  # the caller takes the first file; the rest never
    outcome = s.finish()
    s.close()
    assert outcome.timed_out and not outcome.ok
    assert taken and sorted(work_files(tmp_path)) == sorted(taken)  # only the caller's left


def test_stop_kills_the_process(tmp_path: Path) -> None:
    stop = threading.Event()
    s = stream(tmp_path, cancelled=stop)
    assert s.start([[b"sleep"]]) is None
    threading.Timer(0.3, stop.set).start()
    with pytest.raises(TransformAborted):
        list(s.outputs())
    assert s.finish().cancelled
    s.close()
    assert list((tmp_path / "work").iterdir()) == []


def test_a_failing_source_kills_the_process(tmp_path: Path) -> None:
    class Broken(Exception):
        pass

    def chunks() -> Iterator[list[bytes]]:
        yield [b"first"]
        raise Broken("the broker went away")

    s = stream(tmp_path)
    assert s.start(chunks()) is None
    for output in s.outputs():
        output.path.unlink()
    outcome = s.finish()
    s.close()
    assert isinstance(s.source_error, Broken) and not outcome.ok
    assert work_files(tmp_path) == []


def test_exit_status_is_reported(tmp_path: Path) -> None:
    s = stream(tmp_path)
    run(s, [[b"ok", b"fail"]])
    outcome = s.finish()
    s.close()
    assert outcome.returncode == 3 and not outcome.ok
    assert work_files(tmp_path) == []


def test_files_not_taken_are_removed_when_the_caller_fails(tmp_path: Path) -> None:
    """The loader raises while files are still coming: close() leaves only the caller's."""
    s = stream(tmp_path, "50")
    assert s.start([[f"row-{i:05d}".encode() for i in range(2000)]]) is None
    outputs = s.outputs()
    first = next(outputs).path  # the caller takes one file, then fails loading it
    time.sleep(0.3)  # more files are written meanwhile
    s.close()
    assert work_files(tmp_path) == [first]


# -- faults contained -------------------------------------------------------------------------

ENDLESS = """\
import sys
{child}
while True:
    sys.stdout.buffer.write(b"x" * 999 + b"\\n")
"""


@pytest.mark.parametrize("splittable", [True, False])
def test_output_cap_kills_the_group_and_removes_its_files(tmp_path: Path,
                                                          splittable: bool) -> None:
    pid_file = tmp_path / "child.pid"
    s = stream(tmp_path, body=ENDLESS.format(child=spawn_child(pid_file)),
               max_output_bytes=200_000, target_bytes=10_000, splittable=splittable)
    started = time.monotonic()
    assert s.start([[b"a"]]) is None
    handed = 0
    with pytest.raises(TransformAborted):
        for output in s.outputs():
            handed += output.path.stat().st_size
            output.path.unlink()  # loaded
    outcome = s.finish()
    assert work_files(tmp_path) == []  # before close(): removed when the cap was hit
    s.close()
    assert time.monotonic() - started < 10  # killed at once, not at the timeout (30 s)
    assert not outcome.ok and outcome.returncode is None and not outcome.timed_out
    assert outcome.failure_reason(30.0) == (
        "transform output exceeded 200000 bytes (transform_output_max_bytes); "
        "is it writing without end?")
    assert handed <= 200_000  # what was loaded before the cap; the rest never reached disk
    assert_gone(read_pid(pid_file))


def test_output_up_to_the_cap_is_fine(tmp_path: Path) -> None:
    s = stream(tmp_path, "1", max_output_bytes=1000 * 11)  # 1000 lines of 10 bytes + "\n"
    contents, _ = run(s, [[b"0123456789"] * 1000])
    outcome = s.finish()
    s.close()
    assert outcome.ok and len(b"".join(contents)) == 11_000


# Read exactly argv[1] bytes of stdin (os.read: no read-ahead), print how many, exit 0.
PARTIAL = """\
import os, sys
want, got = int(sys.argv[1]), 0
while got < want:
    block = os.read(0, want - got)
    if not block:
        break
    got += len(block)
print(got)
"""


@pytest.mark.parametrize("size", [30_000, 3_000_000])  # in the pipe buffer; far beyond it
def test_exit_0_without_reading_all_input_fails(tmp_path: Path, size: int) -> None:
    s = stream(tmp_path, "100", body=PARTIAL)
    values = [b"v" * 992] * (size // 1000)  # 1000 bytes a frame
    contents, _ = run(s, [values[: len(values) // 2], values[len(values) // 2:]])
    outcome = s.finish()
    s.close()
    assert contents == [b"100\n"] and outcome.returncode == 0 and not outcome.ok
    if size < 64 * 1024:  # all of it was written: the total is known
        assert outcome.failure_reason(30.0) == (
            f"transform exited without reading all of its input: 100 of {size} bytes read")
    else:  # the feeder stopped when the process had gone
        assert outcome.failure_reason(30.0).startswith(
            "transform exited without reading all of its input: 100 of at least ")
    assert work_files(tmp_path) == []


def test_reading_exactly_all_input_passes_even_without_waiting_for_its_end(
        tmp_path: Path) -> None:
    """It exits as soon as it has the bytes it wants, maybe before the engine closed stdin."""
    values = [b"v" * 992] * 3000
    s = stream(tmp_path, str(3000 * 1000), body=PARTIAL)
    contents, _ = run(s, [values[:1000], values[1000:]])
    outcome = s.finish()
    s.close()
    assert outcome.ok, outcome.failure_reason(30.0)
    assert contents == [b"3000000\n"]


def test_exit_0_without_reading_stdin_at_all_fails(tmp_path: Path) -> None:
    s = stream(tmp_path, body="print('nothing read')\n")
    run(s, [[b"v" * 992] * 2000])
    outcome = s.finish()
    s.close()
    assert not outcome.ok and outcome.failure_reason(30.0).startswith(
        "transform exited without reading all of its input: 0 of ")


def test_a_transform_that_never_reads_ends_at_the_timeout(tmp_path: Path) -> None:
    """The input (4 MB) is far beyond the pipe buffer: the feeder blocks until the kill."""
    s = stream(tmp_path, body="import time\ntime.sleep(600)\n", timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(TransformAborted):
        run(s, [[b"v" * 992] * 4000])
    outcome = s.finish()
    s.close()
    assert outcome.timed_out and time.monotonic() - started < 10
    assert not s._threads[0].is_alive()  # the feeder is not left blocked on the pipe
    assert work_files(tmp_path) == []


def test_a_child_holding_stdout_after_the_exit_is_killed_at_the_timeout(tmp_path: Path) -> None:
    """The transform exits 0 but its child keeps stdout open: the timeout kills the child."""
    pid_file = tmp_path / "child.pid"
    s = stream(tmp_path, body=spawn_child(pid_file), timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(TransformAborted):
        run(s, [])
    outcome = s.finish()
    s.close()
    assert outcome.timed_out and not outcome.ok and time.monotonic() - started < 10
    assert_gone(read_pid(pid_file))
    assert work_files(tmp_path) == []


def test_a_child_out_of_the_group_holding_stdout_does_not_hang_the_engine(
        tmp_path: Path) -> None:
    """A child in a session of its own is out of reach of the group kill and keeps stdout and
    stderr open: the timeout still ends the run (before, closing stderr waited for the child)."""
    pid_file = tmp_path / "child.pid"
    s = stream(tmp_path, body=spawn_child(pid_file, start_new_session="True"), timeout_s=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(TransformAborted):
            run(s, [])
        outcome = s.finish()
        s.close()
        assert outcome.timed_out and time.monotonic() - started < 15
        assert work_files(tmp_path) == []
    finally:
        os.kill(read_pid(pid_file), signal.SIGKILL)


def test_children_left_behind_by_a_successful_transform_are_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    body = (spawn_child(pid_file, stdin="subprocess.DEVNULL", stdout="subprocess.DEVNULL",
                        stderr="subprocess.DEVNULL")
            + "import sys\nsys.stdout.buffer.write(b'%d\\n' % len(sys.stdin.buffer.read()))\n")
    s = stream(tmp_path, body=body)
    contents, _ = run(s, [[b"a", b"b"]])
    outcome = s.finish()
    s.close()
    assert outcome.ok and contents == [b"18\n"]
    assert_gone(read_pid(pid_file))
