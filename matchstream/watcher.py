"""`matchstream watch DIR`: drop a CSV file into ``DIR/training/``, ``DIR/scoring/`` or
``DIR/outcomes/`` and it is produced to that topic, exactly once.

Protocol for each file:
  1. Wait until the file is complete: not hidden, not ``*.part``/``*.tmp``, and its size and
     mtime unchanged for ``settle_s`` seconds (a writer still copying keeps changing them).
  2. Claim it by renaming it into ``DIR/processing/<topic>/`` (atomic on one file system): from
     then on no scan sees it, so it can never be produced twice.
  3. Produce it (header checked, rows checked, every send acknowledged).
  4. Move it to ``DIR/done/`` when every row was sent, or to ``DIR/failed/`` with a
     ``<name>.reason.txt`` naming each rejected line or the error. When the broker could not be
     reached before a single row went out, the file goes back to its folder and is retried.
One watcher per directory (a lock file says so). A file found in ``processing/`` at start-up was
interrupted in step 3: some of its rows may have been sent, so it goes to ``failed/`` with that
reason instead of being sent again.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import Event
from typing import IO, Any

from matchstream.errors import MatchstreamError
from matchstream.producer import KafkaUnavailable, produce_files

__all__ = ["Watcher", "WatcherBusy"]

TOPICS = ("training", "scoring", "outcomes")
IGNORED_SUFFIXES = (".part", ".tmp", ".swp", ".crdownload")


class WatcherBusy(MatchstreamError):
    """Another watcher already serves this directory."""

    def __init__(self, root: Path) -> None:
        super().__init__(f"another `matchstream watch` is already watching {root}")
        self.root = root


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
        for name in (*TOPICS, *(f"processing/{t}" for t in TOPICS), "done", "failed"):
            (root / name).mkdir(parents=True, exist_ok=True)
        # Held for the watcher's whole life: a second watcher on the directory fails at once.
        self._lock: IO[str] | None = open(root / ".watch.lock", "w")  # noqa: SIM115
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise WatcherBusy(root) from None
        self._recover()

    def close(self) -> None:
        """Release the directory for another watcher."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _recover(self) -> None:
        for topic in TOPICS:
            for path in sorted((self.root / "processing" / topic).iterdir()):
                if path.is_file():
                    self._finish(
                        path,
                        "failed",
                        "interrupted while it was being produced: some rows may have been "
                        "sent; check the topic before dropping it again",
                    )

    def _finish(self, path: Path, outcome: str, reason: str = "") -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.root / outcome / f"{stamp}-{path.name}"
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
            claimed = self.root / "processing" / topic / path.name
            os.replace(path, claimed)
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
            except KafkaUnavailable as exc:
                if exc.sent == 0:
                    os.replace(claimed, path)  # nothing went out: try again on a later scan
                    self.log(f"retry later: {path} ({exc})")
                else:
                    self._finish(claimed, "failed", str(exc))
                continue
            except MatchstreamError as exc:
                self._finish(claimed, "failed", str(exc))
                continue
            if report.rejected:
                lines = "\n".join(str(r) for r in report.rejected)
                self._finish(
                    claimed,
                    "failed",
                    f"{len(report.rejected)} row(s) rejected and not sent, "
                    f"{report.sent} sent:\n{lines}",
                )
            else:
                self._finish(claimed, "done")
        return handled

    def run(self, stop: Event, poll_s: float = 0.5) -> None:
        self.log(f"watching {self.root}/training and {self.root}/scoring (Ctrl-C stops)")
        try:
            while not stop.is_set():
                self.scan_once()
                stop.wait(poll_s)
        finally:
            self.close()
