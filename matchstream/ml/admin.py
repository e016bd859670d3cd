"""What an operator does to a model directory: list, show, roll back, pin and unpin versions.

Every change is also a row in ``model_actions`` (through an :class:`ActionLog`), so every version
stays explained in SQL: a learned version by its ``training_metrics`` row, a rollback's by its
action row. A change and its row go together. In order:

1. Check the version asked for: it exists, was not pruned, and its files load (a corrupt version
   is refused before anything changes).
2. Take the store lock (training waits), finish any publish a killed trainer left.
3. Write the action row inside an open transaction.
4. Change the directory: a rollback publishes a new version, a copy of the old one (every file
   it has: weights, Adam state, totals, whatever an estimator saves), so training continues
   from them and scoring (which reads ``LATEST`` per batch) follows within one batch; a pin
   writes ``PINNED``; unpin removes it.
5. Commit the row. If that fails, step 4 is undone and the error raised: nothing changed.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from matchstream.ml.errors import ModelStoreError
from matchstream.ml.model_json import parse_model
from matchstream.ml.rows import METRICS_COLUMNS, timestamp
from matchstream.ml.store import Lineage, ModelStore, version_name

__all__ = ["Action", "ActionLog", "VersionInfo", "list_versions", "pin", "rollback", "show",
           "unpin"]


@dataclass(frozen=True)
class Action:
    """One ``model_actions`` row."""

    action: str  # rollback | pin | unpin
    model_version: int | None  # rollback: the new version; pin: the pinned one
    source_version: int | None  # rollback: the version copied
    live_before: int | None  # what scoring used before
    note: str | None = None


class ActionLog(Protocol):
    """Where action rows go; ``record`` yields once the row is written and commits on exit."""

    def record(self, action: Action) -> contextlib.AbstractContextManager[None]: ...


@dataclass(frozen=True)
class VersionInfo:
    version: int
    kind: str
    parent_version: int | None
    rows_seen_total: int | None
    auc: float | None
    created_at: str | None
    marks: tuple[str, ...]  # head, live, pinned


def list_versions(store: ModelStore) -> list[VersionInfo]:
    head, pinned, live = store.latest_version(), store.pinned_version(), store.live_version()
    infos = []
    for version in store.listed_versions():
        try:
            metadata = store.read_json(version, "metadata.json")
            lineage = store.lineage(version)
        except (OSError, ModelStoreError):
            infos.append(VersionInfo(version, "corrupt", None, None, None, None, ()))
            continue
        metrics = metadata.get("batch_metrics") or {}
        marks = tuple(name for name, at in (("head", head), ("live", live), ("pinned", pinned))
                      if at == version)
        infos.append(VersionInfo(
            version, lineage.kind if lineage else "learned", metadata.get("parent_version"),
            metadata.get("rows_seen_total"), metrics.get("auc"), metadata.get("created_at"),
            marks))
    return infos


def show(store: ModelStore, version: int) -> dict[str, Any]:
    """Lineage, totals, threshold and the metrics of one version."""
    check(store, version)
    metadata = store.read_json(version, "metadata.json")
    lineage = store.lineage(version)
    row = None
    if lineage is not None and lineage.metrics_row:
        last = lineage.metrics_row.splitlines()[-1].split("\t")
        # strict=False: a row printed before the drift columns existed is shorter.
        row = dict(zip(METRICS_COLUMNS, last, strict=False))
    return {
        "version": version,
        "kind": lineage.kind if lineage else "learned",
        "parent_version": metadata.get("parent_version"),
        "input_fingerprint": lineage.input_fingerprint if lineage else None,
        "created_at": metadata.get("created_at"),
        "rows_seen_total": metadata.get("rows_seen_total"),
        "threshold": metadata.get("threshold"),
        "metrics_row": row,
        "head": store.latest_version() == version,
        "pinned": store.pinned_version() == version,
        "live": store.live_version() == version,
    }


def check(store: ModelStore, version: int) -> None:
    """Step 1: ModelStoreError unless ``version`` is retained and loads."""
    listed = store.listed_versions()
    if version not in listed:
        if listed and 1 <= version < listed[0]:
            raise ModelStoreError(f"version {version} was pruned (retained: {listed[0]} to "
                                  f"{listed[-1]})", path=store.path)
        where = f"versions {listed[0]} to {listed[-1]}" if listed else "no versions"
        raise ModelStoreError(f"no version {version} (the directory has {where})",
                              path=store.path)
    directory = store.version_dir(version)
    try:
        parse_model(store.read_json(version, "model.json"))
        store.read_json(version, "metadata.json")
        import numpy as np

        with np.load(directory / "optimizer.npz") as npz:
            for key in npz.files:
                npz[key]  # noqa: B018 - reading each array is the check
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ModelStoreError(f"version {version} is corrupt: {exc}", path=directory) from exc


def rollback(store: ModelStore, version: int, log: ActionLog, note: str | None = None) -> int:
    """Steps 1-5 for a rollback to ``version``; returns the new version's number."""
    check(store, version)
    with store.lock():
        store.recover()
        new = store.next_version()
        source = store.version_dir(version)
        model = store.read_json(version, "model.json")
        metadata = store.read_json(version, "metadata.json")
        created = timestamp()
        model["version"] = new
        copy = {**metadata, "version": new, "parent_version": version, "created_at": created,
                "batch_metrics": None, "rollback_of": version}
        lineage = Lineage(new, version, "rollback", None, None, created)
        # Every file of the version as it is, then the three that name the version rewritten.
        files = {path.name: path.read_bytes() for path in sorted(source.iterdir())
                 if path.is_file()}
        files.update({"model.json": _json(model), "metadata.json": _json(copy),
                      "lineage.json": lineage.to_json()})
        previous = store.latest_version()
        with _undo_on_failure(lambda: _unpublish(store, new, previous)), \
                log.record(Action("rollback", new, version, store.live_version(), note)):
            store.publish(new, files)
    return new


def pin(store: ModelStore, version: int, log: ActionLog, note: str | None = None) -> None:
    check(store, version)
    with store.lock():
        before = store.pinned_version()
        with _undo_on_failure(lambda: _restore_pin(store, before)), \
                log.record(Action("pin", version, None, store.live_version(), note)):
            store.pin(version)


def unpin(store: ModelStore, log: ActionLog, note: str | None = None) -> bool:
    """False (and no row) if nothing was pinned."""
    with store.lock():
        before = store.pinned_version()
        if before is None:
            return False
        with _undo_on_failure(lambda: _restore_pin(store, before)), \
                log.record(Action("unpin", None, None, before, note)):
            store.unpin()
    return True


@contextlib.contextmanager
def _undo_on_failure(undo: Any) -> Iterator[None]:
    """Step 5: the row's commit is the last thing in the block; if anything fails, undo."""
    try:
        yield
    except BaseException:
        undo()
        raise


def _unpublish(store: ModelStore, version: int, previous: int | None) -> None:
    if previous is not None:
        store.write_pointer("LATEST", previous)
    shutil.rmtree(store.version_dir(version), ignore_errors=True)


def _restore_pin(store: ModelStore, version: int | None) -> None:
    if version is None:
        store.unpin()
    else:
        store.pin(version)


def _json(data: Any) -> bytes:
    buf = io.StringIO()
    json.dump(data, buf, indent=2)
    return (buf.getvalue() + "\n").encode("utf-8")


def describe(info: VersionInfo) -> str:
    """One line of ``matchstream model list``."""
    auc = "-" if info.auc is None else f"{info.auc:.3f}"
    parent = "-" if info.parent_version is None else version_name(info.parent_version)
    marks = f"  [{', '.join(info.marks)}]" if info.marks else ""
    return (f"{version_name(info.version)}  {info.kind:<8}  parent {parent:<7}  rows "
            f"{info.rows_seen_total if info.rows_seen_total is not None else '-':>7}  auc {auc:>5}"
            f"  {info.created_at or '-'}{marks}")
