"""The transforms as one ``.tar.gz``: SingleStore's archive form of ``WITH TRANSFORM``.

SingleStore downloads ``WITH TRANSFORM ('URI.tar.gz', 'PROGRAM', 'ARGS')`` at CREATE PIPELINE,
unpacks it and runs ``PROGRAM``, a file name inside the archive. A single-file transform would be
copied alone, so ``train.py`` could not import the ``matchstream`` package beside it; in the
archive the programs sit at the top level next to ``matchstream/``, and Python puts a script's
own directory first on ``sys.path``, so the package comes from the archive on every leaf.
What the archive cannot carry is the leaf's Python 3.11+ with NumPy and TensorFlow (README,
"Bring your own SingleStore cluster").

Layout::

    train.py  score.py  outcomes.py  rejects.py      mode 0755, #!/usr/bin/env python3
    matchstream/__init__.py  matchstream/ml/...      every module of the package, mode 0644

The archive is reproducible: sorted members, fixed times and owners, so the same checkout packs
to the same bytes and a changed archive means changed code.
"""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

from matchstream.cluster.errors import ClusterPackError

__all__ = ["ARCHIVE_NAME", "PROGRAMS", "members", "pack", "source_root"]

ARCHIVE_NAME = "matchstream-transforms.tar.gz"
# The transforms sql/10_pipelines.sql runs; each is a program of the archive.
PROGRAMS = ("outcomes.py", "rejects.py", "score.py", "train.py")
# 2000-01-01T00:00:00Z: any fixed time keeps the archive reproducible; 0 upsets some tar tools.
_MTIME = 946684800


def source_root() -> Path:
    """The checkout the running ``matchstream`` package comes from (transforms/ is beside it)."""
    return Path(__file__).resolve().parents[2]


def members(root: Path) -> list[tuple[str, Path, int]]:
    """``(name in the archive, source file, mode)``, sorted by name."""
    package = root / "matchstream"
    result = [(name, root / "transforms" / name, 0o755) for name in PROGRAMS]
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" not in path.parts:
            result.append((path.relative_to(root).as_posix(), path, 0o644))
    missing = [src.relative_to(root).as_posix() for _, src, _ in result if not src.is_file()]
    if missing:
        raise ClusterPackError(str(root), missing)
    return sorted(result)


def pack(output: Path, root: Path | None = None) -> Path:
    """Write the archive to ``output`` (atomically: a partial file never has the final name)."""
    root = root or source_root()
    buffer = io.BytesIO()
    entries = members(root)
    # Directory entries too, so an unpacking tool that does not create parents still works.
    directories = sorted({str(Path(name).parents[i]) for name, _, _ in entries
                          for i in range(len(Path(name).parents) - 1)})
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in directories:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, _MTIME
            info.uname = info.gname = ""
            tar.addfile(info)
        for name, source, mode in entries:
            data = source.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, _MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                   filename="") as gz:
        gz.write(buffer.getvalue())
    partial.replace(output)
    return output
