"""The versioned model store: a shared directory trainers write and scorers read.

Layout (see ``docs/model.md``)::

    MODEL_DIR/
      LATEST                    "v000042\\n", replaced atomically with os.replace
      PINNED                    optional: the version scoring uses instead of LATEST
      .lock                     flock()ed by a trainer for its whole read-train-publish cycle
      .trainer.lock             flock()ed by the warm trainer for its whole life
      versions/v000042/         complete before it is visible
        model.json  metadata.json  optimizer.npz  lineage.json
      .tmp-*/                   a version being written (left over only if a trainer died)

Publishing follows numbered steps so a reader never sees a partial version:
1. write every file into ``.tmp-*`` and fsync them; 2. rename the directory to ``versions/vN``
(the commit point: a renamed version is published); 3. write ``LATEST.tmp`` and ``os.replace``
it over ``LATEST``; 4. prune versions beyond ``keep``. A trainer killed between 2 and 3 leaves
``LATEST`` one behind; the next cycle's :meth:`ModelStore.recover` moves it forward.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matchstream import faults
from matchstream.ml.errors import ModelStoreError, NoModelYet

__all__ = ["DEFAULT_KEEP", "Lineage", "ModelStore", "version_name"]

DEFAULT_KEEP = 50
# Reading LATEST and then the version it names races with pruning at most once per published
# version; a handful of retries covers any realistic number of trainers publishing meanwhile.
_READ_RETRIES = 5


def version_name(version: int) -> str:
    """The directory name of a version.

    >>> version_name(42)
    'v000042'
    """
    return f"v{version:06d}"


def _parse_name(text: str) -> int | None:
    return int(text[1:]) if text.startswith("v") and text[1:].isdigit() else None


@dataclass(frozen=True)
class Lineage:
    """Where a version came from: ``lineage.json`` of every version.

    ``kind`` is ``learned`` (a training batch; ``input_fingerprint`` is the SHA-256 of its framed
    input, ``messages`` the number of messages in it and ``metrics_row`` the exact text train.py
    printed for it) or ``rollback`` (a copy of ``parent_version`` made by ``matchstream model
    rollback``; no fingerprint, no metrics row).
    """

    version: int
    parent_version: int | None
    kind: str
    input_fingerprint: str | None
    metrics_row: str | None
    created_at: str
    messages: int | None = None

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Lineage:
        parent = data["parent_version"]
        messages = data.get("messages")
        return cls(int(data["version"]), None if parent is None else int(parent),
                   str(data["kind"]), data.get("input_fingerprint"), data.get("metrics_row"),
                   str(data["created_at"]), None if messages is None else int(messages))


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
        """The number in ``LATEST`` (the head training continues from), None if none yet."""
        return self._read_pointer("LATEST")

    def pinned_version(self) -> int | None:
        """The number in ``PINNED``, None when scoring follows ``LATEST``."""
        return self._read_pointer("PINNED")

    def live_version(self) -> int | None:
        """The version scoring uses: the pinned one if any, else the head."""
        pinned = self.pinned_version()
        return pinned if pinned is not None else self.latest_version()

    def _read_pointer(self, name: str) -> int | None:
        pointer = self.path / name
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
            raise ModelStoreError(f"unreadable {name} pointer: {exc}", path=pointer) from exc
        version = _parse_name(text)
        if version is None:
            raise ModelStoreError(f"corrupt {name} pointer {text[:40]!r}", path=pointer)
        return version

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

    def read_live_model(self) -> tuple[int, dict[str, Any]]:
        """``(version, model.json)`` of the live version (pinned, else newest); NoModelYet if
        there is none."""
        for _ in range(_READ_RETRIES):
            version = self.live_version()
            if version is None:
                raise NoModelYet("no model version yet (no training batch has completed)",
                                 path=self.path)
            try:
                return version, self.read_json(version, "model.json")
            except FileNotFoundError:
                if self.live_version() == version:
                    raise ModelStoreError(
                        f"the live pointer names {version_name(version)} but it has no "
                        "model.json", path=self.version_dir(version)) from None
        raise ModelStoreError("LATEST kept moving to pruned versions", path=self.path)

    def wait_live_model(self, timeout: float, poll: float = 0.2) -> tuple[int, dict[str, Any]]:
        """Like :meth:`read_live_model` but wait up to ``timeout`` seconds for a first one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.read_live_model()
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
            faults.hit("store.after_files")
            os.rename(tmp, final)  # 2. the version appears whole: published
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _fsync_dir(self.versions_dir)
        faults.hit("store.after_rename")
        self.write_pointer("LATEST", version)  # 3. move the pointer
        self._prune(version)  # 4. retention
        return final

    def recover(self) -> None:
        """Finish what a killed trainer left (call under :meth:`lock`): a version renamed into
        place but not yet named by ``LATEST`` is published, so ``LATEST`` moves forward to it;
        ``.tmp-*`` directories are removed (under the lock nobody else is writing one)."""
        for leftover in self.path.glob(".tmp-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        listed = self.listed_versions()
        if listed and (self.latest_version() or 0) < listed[-1]:
            self.write_pointer("LATEST", listed[-1])

    def next_version(self) -> int:
        return max([self.latest_version() or 0, *self.listed_versions()]) + 1

    def write_pointer(self, name: str, version: int) -> None:
        pointer_tmp = self.path / f"{name}.tmp{os.getpid()}"
        with open(pointer_tmp, "w", encoding="ascii") as fh:
            fh.write(version_name(version) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(pointer_tmp, self.path / name)
        _fsync_dir(self.path)

    def pin(self, version: int) -> None:
        """Make scoring use ``version`` until :meth:`unpin` (call under :meth:`lock`)."""
        self.write_pointer("PINNED", version)

    def unpin(self) -> None:
        (self.path / "PINNED").unlink(missing_ok=True)
        _fsync_dir(self.path)

    def _prune(self, newest: int) -> None:
        pinned = self.pinned_version()
        for entry in self.versions_dir.iterdir():
            version = _parse_name(entry.name)
            if version is not None and version <= newest - self.keep and version != pinned:
                shutil.rmtree(entry, ignore_errors=True)

    def listed_versions(self) -> list[int]:
        if not self.versions_dir.is_dir():
            return []
        return sorted(v for p in self.versions_dir.iterdir()
                      if (v := _parse_name(p.name)) is not None)

    # -- lineage -------------------------------------------------------------------------------

    def lineage(self, version: int) -> Lineage | None:
        """The version's ``lineage.json``; None for a version written before lineage existed."""
        try:
            return Lineage.from_dict(self.read_json(version, "lineage.json"))
        except FileNotFoundError:
            return None
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelStoreError(f"corrupt lineage.json: {exc!r}",
                                  path=self.version_dir(version) / "lineage.json") from exc

    def learned_lineages(self) -> list[Lineage]:
        """The lineage of every retained learned version, newest first."""
        found = []
        for version in reversed(self.listed_versions()):
            try:
                lineage = self.lineage(version)
            except ModelStoreError:
                continue  # pruned or torn meanwhile: not a version that can answer
            if lineage is not None and lineage.kind == "learned" and lineage.metrics_row:
                found.append(lineage)
        return found

    def find_learned(self, fingerprint: str) -> Lineage | None:
        """The retained version that learned the batch with this input fingerprint, if any
        (a batch is learned at most once, so there is at most one)."""
        return next((x for x in self.learned_lineages() if x.input_fingerprint == fingerprint),
                    None)


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a crash of the machine could otherwise undo it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

