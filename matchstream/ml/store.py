"""The versioned model store: a shared directory trainers write and scorers read.

Layout (see ``docs/model.md``)::

    MODEL_DIR/
      LATEST                    "v000042\\n", replaced atomically with os.replace
      .lock                     flock()ed by a trainer for its whole read-train-publish cycle
      versions/v000042/         complete before it is visible
        model.json  metadata.json  optimizer.npz
      .tmp-*/                   a version being written (left over only if a trainer died)

Publishing follows numbered steps so a reader never sees a partial version:
1. write every file into ``.tmp-*`` and fsync them; 2. rename the directory to ``versions/vN``;
3. write ``LATEST.tmp`` and ``os.replace`` it over ``LATEST``; 4. prune versions beyond ``keep``.
A scorer reads ``LATEST`` then ``versions/vN/model.json``; if pruning removed vN in between it
re-reads ``LATEST`` (pruning never touches the newest ``keep`` versions, and ``keep`` >= 2).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from matchstream.ml.errors import ModelStoreError, NoModelYet

__all__ = ["DEFAULT_KEEP", "ModelStore"]

DEFAULT_KEEP = 50
# Reading LATEST and then the version it names races with pruning at most once per published
# version; a handful of retries covers any realistic number of trainers publishing meanwhile.
_READ_RETRIES = 5


def version_name(version: int) -> str:
    return f"v{version:06d}"


class ModelStore:
    def __init__(self, path: Path | str, *, keep: int = DEFAULT_KEEP) -> None:
        if keep < 2:
            raise ValueError("keep must be at least 2 so a scorer never loses the version it read")
        self.path = Path(path)
        self.keep = keep

    @property
    def versions_dir(self) -> Path:
        return self.path / "versions"

    def ensure(self) -> None:
        """Create the store's directories; the model directory's parent must already exist."""
        try:
            self.path.mkdir(exist_ok=True)
            self.versions_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise ModelStoreError(f"cannot create: {exc.strerror or exc}", path=self.path) from exc

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise trainers (processes or threads) on ``.lock``."""
        lock_path = self.path / ".lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ModelStoreError(f"cannot open lock: {exc.strerror}", path=lock_path) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def latest_version(self) -> int | None:
        """The number in ``LATEST``, None if nothing was published yet."""
        pointer = self.path / "LATEST"
        if not self.path.is_dir():
            # A kind of "no model yet": the first trainer creates the directory, so a scorer
            # started with a wait keeps waiting; without one it fails naming the path.
            raise NoModelYet("model directory does not exist (has any training batch run?)",
                             path=self.path)
        try:
            text = pointer.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelStoreError(f"unreadable LATEST pointer: {exc}", path=pointer) from exc
        if not (text.startswith("v") and text[1:].isdigit()):
            raise ModelStoreError(f"corrupt LATEST pointer {text[:40]!r}", path=pointer)
        return int(text[1:])

    def version_dir(self, version: int) -> Path:
        return self.versions_dir / version_name(version)

    def read_json(self, version: int, name: str) -> dict[str, Any]:
        path = self.version_dir(version) / name
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelStoreError(f"corrupt JSON: {exc}", path=path) from exc
        if not isinstance(data, dict):
            raise ModelStoreError("corrupt JSON: not an object", path=path)
        return data

    def read_latest_model(self) -> tuple[int, dict[str, Any]]:
        """``(version, model.json)`` of the newest version; :class:`NoModelYet` if none."""
        for _ in range(_READ_RETRIES):
            version = self.latest_version()
            if version is None:
                raise NoModelYet("no model version yet (no training batch has completed)",
                                 path=self.path)
            try:
                return version, self.read_json(version, "model.json")
            except FileNotFoundError:
                if self.latest_version() == version:
                    raise ModelStoreError(
                        f"LATEST names {version_name(version)} but it has no model.json",
                        path=self.version_dir(version)) from None
        raise ModelStoreError("LATEST kept moving to pruned versions", path=self.path)

    def wait_latest_model(self, timeout: float, poll: float = 0.2) -> tuple[int, dict[str, Any]]:
        """Like :meth:`read_latest_model` but wait up to ``timeout`` seconds for a first one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.read_latest_model()
            except NoModelYet:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(poll)

    def publish(self, version: int, files: dict[str, bytes]) -> Path:
        """Make ``files`` visible as ``version`` (call under :meth:`lock`), then prune."""
        final = self.version_dir(version)
        if final.exists():
            raise ModelStoreError("version already exists; is a trainer running without the "
                                  "lock?", path=final)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.path))
        try:
            for name, content in files.items():  # 1. complete files, on disk
                with open(tmp / name, "wb") as fh:
                    fh.write(content)
                    fh.flush()
                    os.fsync(fh.fileno())
            os.rename(tmp, final)  # 2. the version appears whole
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        pointer_tmp = self.path / f"LATEST.tmp{os.getpid()}"
        with open(pointer_tmp, "w", encoding="ascii") as fh:  # 3. move the pointer
            fh.write(version_name(version) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, self.path / "LATEST")
        self._prune(version)  # 4. retention
        return final

    def _prune(self, newest: int) -> None:
        for entry in self.versions_dir.iterdir():
            name = entry.name
            if name.startswith("v") and name[1:].isdigit() and int(name[1:]) <= newest - self.keep:
                shutil.rmtree(entry, ignore_errors=True)

    def listed_versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in self.versions_dir.iterdir()
                      if p.name.startswith("v") and p.name[1:].isdigit())
