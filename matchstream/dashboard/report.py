"""``matchstream report --out FILE``: the dashboard's charts in one file that needs nothing else."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from matchstream.dashboard.errors import DashboardError
from matchstream.dashboard.page import page_html
from matchstream.dashboard.snapshot import Snapshot, collect

__all__ = ["write_report"]


def write_report(out: Path, connect: Callable[[], Any], *, database: str,
                 catalog: str) -> Snapshot:
    """Write the report of the current data to ``out`` (atomically) and return its snapshot.

    A report of a database that cannot be read would be a page of error messages: that is an
    error here, not a file.
    """
    snapshot = collect(lambda: contextlib.closing(connect()), database=database, catalog=catalog)
    if "connection" in snapshot["errors"]:
        raise DashboardError(f"report of {database}: {snapshot['errors']['connection']}")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(page_html(snapshot), encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise DashboardError(f"{out}: cannot write the report: {exc.strerror or exc}") from exc
    return snapshot
