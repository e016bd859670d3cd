"""`matchstream watch DIR`: drop a CSV file into ``DIR/training/`` or ``DIR/scoring/`` and it is
produced to that topic, exactly once.

Protocol for each file:
  1. Wait until the file is complete: not hidden, not ``*.part``/``*.tmp``, and its size and
     mtime unchanged for ``settle_s`` seconds (a writer still copying keeps changing them).
  2. Claim it by renaming it into ``DIR/processing/`` (atomic on one file system): from then on
     no other scan sees it, so it can never be produced twice.
  3. Produce it (header checked, rows checked, every send acknowledged).
  4. Move it to ``DIR/done/`` when every row was sent, or to ``DIR/failed/`` with a
     ``<name>.reason.txt`` naming each rejected line or the error.
A file found in ``processing/`` at start-up was interrupted in step 3: some of its rows may
have been sent, so it goes to ``failed/`` with that reason instead of being sent again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import Event
from typing import Any

from matchstream.errors import MatchstreamError
from matchstream.producer import produce_files

__all__ = ["Watcher"]

TOPICS = ("training", "scoring")
IGNORED_SUFFIXES = (".part", ".tmp", ".swp", ".crdownload")


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


class Watcher:
    def __init__(
        self,
        root: Path,
        *,
        bootstrap: str,
        spec: Any,
        settle_s: float = 1.0,
        log: Callable[[str], None] = print,
    ) -> None:
        self.root, self.bootstrap, self.spec = root, bootstrap, spec
        self.settle_s, self.log = settle_s, log
        self._seen: dict[Path, _Seen] = {}
        for name in (*TOPICS, "processing", "done", "failed"):
            (root / name).mkdir(parents=True, exist_ok=True)
        self._recover()

    def _recover(self) -> None:
        for path in sorted((self.root / "processing").iterdir()):
            if path.is_file():
                self._finish(
                    path,
                    "failed",
                    "interrupted while it was being produced: some "
                    "rows may have been sent; check the topic before dropping it again",
                )

    def _stamp(self) -> str:
        return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")

    def _finish(self, path: Path, outcome: str, reason: str = "") -> Path:
        target = self.root / outcome / f"{self._stamp()}-{path.name}"
        os.replace(path, target)
        if reason:
            target.with_name(target.name + ".reason.txt").write_text(reason + "\n")
        self.log(f"{outcome}: {target}" + (f" ({reason.splitlines()[0]})" if reason else ""))
        return target

    def _complete_files(self) -> list[tuple[str, Path]]:
        now = time.monotonic()
        ready: list[tuple[str, Path]] = []
        present: set[Path] = set()
        for topic in TOPICS:
            for path in sorted((self.root / topic).iterdir()):
                if (
                    not path.is_file()
                    or path.name.startswith(".")
                    or path.name.endswith(IGNORED_SUFFIXES)
                ):
                    continue
                present.add(path)
                stat = path.stat()
                seen = self._seen.get(path)
                if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
                    self._seen[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
                elif now - seen.since >= self.settle_s:
                    ready.append((topic, path))
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return ready

    def scan_once(self) -> int:
        """One pass of steps 1-4; returns how many files were handled."""
        handled = 0
        for topic, path in self._complete_files():
            claimed = self.root / "processing" / path.name
            try:
                os.replace(path, claimed)
            except FileNotFoundError:
                continue  # another watcher claimed it first
            self._seen.pop(path, None)
            handled += 1
            try:
                report = produce_files(
                    topic,
                    [claimed],
                    bootstrap=self.bootstrap,
                    spec=self.spec,
                    role=topic,
                    progress=False,
                    log=lambda _text: None,
                )
            except MatchstreamError as exc:
                self._finish(claimed, "failed", str(exc))
                continue
            if report.rejected:
                lines = "\n".join(str(r) for r in report.rejected)
                self._finish(
                    claimed,
                    "failed",
                    f"{len(report.rejected)} row(s) rejected and not "
                    f"sent, {report.sent} sent:\n{lines}",
                )
            else:
                self._finish(claimed, "done")
        return handled

    def run(self, stop: Event, poll_s: float = 0.5) -> None:
        self.log(f"watching {self.root}/training and {self.root}/scoring (Ctrl-C stops)")
        while not stop.is_set():
            self.scan_once()
            stop.wait(poll_s)
