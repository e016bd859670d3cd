"""TransformStream with real transform processes: output cut at line ends only, all of it
loaded in order, nothing left behind on a timeout, a STOP or a failing source."""

from __future__ import annotations

import stat
import sys
import threading
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


def stream(tmp_path: Path, *args: str, **kw: object) -> TransformStream:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    options = {"terminator": b"\n", "escape": b"\\", "splittable": True, "timeout_s": 30.0,
               "target_bytes": 1000, **kw}
    return TransformStream(transform(tmp_path, *args), work_dir=work, prefix="t-",
                           **options)  # type: ignore[arg-type]


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


def test_not_splittable_gives_one_file(tmp_path: Path) -> None:
    s = stream(tmp_path, splittable=False)
    contents, _ = run(s, [[b"v" * 100] * 200])
    assert s.finish().ok
    s.close()
    assert len(contents) == 1 and contents[0].count(b"\n") == 200


def test_timeout_kills_the_process_and_removes_its_files(tmp_path: Path) -> None:
    s = stream(tmp_path, timeout_s=1.0)
    assert s.start([[b"a" * 2000, b"sleep"]]) is None
    with pytest.raises(TransformAborted):
        for _ in s.outputs():
            pass  # the caller takes the first file; the rest is never handed over
    outcome = s.finish()
    s.close()
    assert outcome.timed_out and not outcome.ok
    assert [p for p in (tmp_path / "work").iterdir() if p.stat().st_size == 0] == []


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


def test_exit_status_is_reported(tmp_path: Path) -> None:
    s = stream(tmp_path)
    run(s, [[b"ok", b"fail"]])
    outcome = s.finish()
    s.close()
    assert outcome.returncode == 3 and not outcome.ok
