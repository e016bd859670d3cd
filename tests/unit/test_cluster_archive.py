"""The transforms archive of ``matchstream cluster pack``: its layout read with tarfile, and the
archive unpacked into a temporary directory and run the way a SingleStore leaf runs a
``.tar.gz`` transform: the program executed by its shebang, in an environment holding only
``PATH``, with a Python that has NumPy and TensorFlow but not matchstream, so every matchstream
module must come from the archive."""

from __future__ import annotations

import stat
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

from matchstream.cluster.archive import ARCHIVE_NAME, PROGRAMS, pack
from matchstream.cluster.errors import ClusterPackError
from tests.unit.cluster_files import write

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "docker" / "singlestore" / "smoke_transforms.py"


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack(tmp_path_factory.mktemp("pack") / ARCHIVE_NAME)


def test_programs_are_at_the_top_level_and_executable(archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        for name in PROGRAMS:
            info = tar.getmember(name)
            assert info.isfile() and info.mode == 0o755, name
            head = tar.extractfile(info).read().split(b"\n", 1)[0]  # type: ignore[union-attr]
            assert head == b"#!/usr/bin/env python3", name
            assert tar.extractfile(info).read() == (REPO / "transforms" / name).read_bytes()  # type: ignore[union-attr]


def test_the_package_is_beside_them_and_nothing_else(archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        members = tar.getmembers()
    names = {m.name for m in members}
    package = {p.relative_to(REPO).as_posix() for p in (REPO / "matchstream").rglob("*.py")
               if "__pycache__" not in p.parts}
    files = {m.name for m in members if m.isfile()}
    assert files == package | set(PROGRAMS)
    assert "matchstream/ml" in names and "matchstream/__init__.py" in names
    for member in members:
        # Nothing an unpacking tool could put outside its directory, nobody's files.
        assert not member.name.startswith(("/", "..")) and ".." not in member.name.split("/")
        assert member.isfile() or member.isdir()
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mode in (0o644, 0o755)


def test_packing_is_reproducible(archive: Path, tmp_path: Path) -> None:
    assert pack(tmp_path / "again.tar.gz").read_bytes() == archive.read_bytes()


def test_the_pack_command_writes_it(archive: Path, tmp_path: Path) -> None:
    out = tmp_path / "dist" / ARCHIVE_NAME
    result = subprocess.run([sys.executable, "-m", "matchstream.cli", "cluster", "pack",
                             "--output", str(out)], capture_output=True, text=True,
                            check=False, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == archive.read_bytes()
    assert not (out.parent / (ARCHIVE_NAME + ".partial")).exists()


def test_packing_outside_a_checkout_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "matchstream").mkdir()
    with pytest.raises(ClusterPackError, match=r"missing transforms/outcomes.py, "):
        pack(tmp_path / "x.tar.gz", root=tmp_path)
    assert not (tmp_path / "x.tar.gz").exists()


@pytest.fixture(scope="module")
def leaf_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bin/ whose python3 has the transforms' third-party packages (this venv's
    site-packages) but not matchstream: the venv's .pth files, among them the editable install
    of this checkout, are not processed for a directory a .pth line adds."""
    root = tmp_path_factory.mktemp("leaf-python")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True,
                   timeout=120)
    purelib = Path(sysconfig.get_paths(vars={"base": str(root), "platbase": str(root)})["purelib"])
    (purelib / "transform-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin"


@pytest.fixture(scope="module")
def unpacked(archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("leaf") / "transform"
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(target, filter="data")
    return target


def leaf_env(leaf_python: Path) -> dict[str, str]:
    return {"PATH": f"{leaf_python}:/usr/bin:/bin"}


def test_the_leaf_python_has_no_matchstream_of_its_own(leaf_python: Path, tmp_path: Path) -> None:
    # The control: without the archive beside it, the import fails.
    proc = subprocess.run(["env", "-i", f"PATH={leaf_python}:/usr/bin:/bin", "python3", "-c",
                           "import numpy, matchstream"], cwd=tmp_path, capture_output=True,
                          text=True, check=False, timeout=120)
    assert proc.returncode != 0 and "No module named 'matchstream'" in proc.stderr


def test_every_module_the_transforms_import_comes_from_the_archive(
        leaf_python: Path, unpacked: Path) -> None:
    code = ("import sys, runpy\n"
            "for name in ('train', 'score', 'outcomes', 'rejects'):\n"
            "    runpy.run_path(name + '.py', run_name='not_main')\n"
            "import matchstream.ml.training, matchstream.ml.trainer\n"
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items()\n"
            "                 if n.split('.')[0] == 'matchstream'))\n")
    (unpacked / "probe.py").write_text(code)
    try:
        proc = subprocess.run(["env", "-i", f"PATH={leaf_python}:/usr/bin:/bin", "python3",
                               "probe.py"], cwd=unpacked, capture_output=True, text=True,
                              check=False, timeout=300)
    finally:
        (unpacked / "probe.py").unlink()
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert len(files) > 10
    assert all(Path(f).resolve().is_relative_to(unpacked.resolve()) for f in files), files


def test_the_unpacked_programs_are_executable(unpacked: Path) -> None:
    for name in PROGRAMS:
        assert (unpacked / name).stat().st_mode & stat.S_IXUSR, name


@pytest.mark.slow
def test_the_unpacked_transforms_work_on_real_rows(leaf_python: Path, unpacked: Path) -> None:
    # The image build's smoke check (conformance on 200 real rows per transform, the warm and
    # the cold trainer, a retried batch), pointed at the unpacked archive and the leaf python.
    proc = subprocess.run(
        ["env", "-i", f"PATH={leaf_python}:/usr/bin:/bin", "python3", str(SMOKE),
         "--transforms", str(unpacked), "--features", str(REPO / "data" / "features.json"),
         "--data", str(REPO / "data"), "--path", f"{leaf_python}:/usr/bin:/bin"],
        capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr
    assert "smoke: ok" in proc.stderr


@pytest.mark.slow
def test_the_warm_trainer_starts_from_the_archive(leaf_python: Path, unpacked: Path,
                                                  tmp_path: Path) -> None:
    # train.py starts the trainer as `python3 -m matchstream.ml.trainer` in the model
    # directory, where only the archive has the package: it must not fall back to training
    # in-process for want of it.
    import struct

    lines = (REPO / "data" / "train.csv").read_text().splitlines()[1:101]
    payload = b"".join(struct.pack("<Q", len(b)) + b for b in (x.encode() for x in lines))
    model_dir = tmp_path / "models"
    proc = subprocess.run(
        [str(unpacked / "train.py"), "--model-dir", str(model_dir), "--spec",
         str(REPO / "data" / "features.json"), "--trainer-idle", "2"],
        input=payload, capture_output=True, env=leaf_env(leaf_python), cwd=tmp_path,
        check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert len(proc.stdout.splitlines()) == 1
    assert b"warm trainer unavailable" not in proc.stderr, proc.stderr.decode()
    assert "serving" in (model_dir / ".trainer.log").read_text()
    wait_trainer_gone(model_dir)


def wait_trainer_gone(model_dir: Path, timeout: float = 60.0) -> None:
    import fcntl
    import time

    deadline = time.monotonic() + timeout
    with open(model_dir / ".trainer.lock", "a+b") as lock:
        while True:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                assert time.monotonic() < deadline, "the warm trainer did not exit when idle"
                time.sleep(0.1)


def test_cluster_file_example_in_the_readme_loads(tmp_path: Path) -> None:
    from matchstream.cluster.config import load_config

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml\n[singlestore]")
    text = readme[start + len("```toml\n"): readme.index("```", start + 7)]
    config = load_config(write(tmp_path, text))
    assert config.archive_uri.endswith(ARCHIVE_NAME)
