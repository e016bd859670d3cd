"""Read the container path's files the way Docker would, for the static guards in this package.

No Docker daemon answers on our machines, so these readers stand in for it: a small Dockerfile
reader (continuations, ARG defaults, COPY, RUN), the compose file as YAML, and the SQL that
scripts/docker_up.sh would send to SingleStore, rendered by that very script.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "singlestore" / "Dockerfile"
DOCKERIGNORE = DOCKER / "singlestore" / "Dockerfile.dockerignore"
VARS_FILE = DOCKER / "pipeline-vars.env"
DOCKER_UP = REPO / "scripts" / "docker_up.sh"
PIPELINES_SQL = REPO / "sql" / "10_pipelines.sql"

# The placeholder names of the contract between sql/10_pipelines.sql and the two paths.
# (sql/queries/ needs none: it is written against information_schema.)
VAR_NAMES = ("KAFKA", "TRANSFORMS", "MODEL_DIR", "FEATURES")

# Until the lead's sql/10_pipelines.sql exists, the pipeline statements as the contract in
# issue 5 describes them; tests use the real file as soon as it exists.
CONTRACT_PIPELINES_SQL = """\
CREATE OR REPLACE PIPELINE training AS
  LOAD DATA KAFKA '${KAFKA}/training'
  WITH TRANSFORM ('file://localhost${TRANSFORMS}/train.py', '',
                  '--model-dir ${MODEL_DIR} --spec ${FEATURES}')
  INTO TABLE training_metrics;
CREATE OR REPLACE PIPELINE scoring AS
  LOAD DATA KAFKA '${KAFKA}/scoring'
  WITH TRANSFORM ('file://localhost${TRANSFORMS}/score.py', '',
                  '--model-dir ${MODEL_DIR} --spec ${FEATURES}')
  INTO TABLE predictions;
"""

_ARG_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def read_vars(path: Path = VARS_FILE) -> dict[str, str]:
    """``NAME=VALUE`` lines; blank lines and ``#`` comments skipped; duplicates are an error."""
    result: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name or name in result:
            raise ValueError(f"{path.name}:{number}: not a new NAME=VALUE line: {raw!r}")
        result[name] = value
    return result


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolation_default(value: str) -> str:
    """``${NAME:-default}`` -> ``default`` (what Compose uses when NAME is unset); else as is."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, ARG, COPY, RUN, USER, ...
    text: str  # the rest of the instruction, continuations joined, ARG references expanded
    line: int


@dataclass(frozen=True)
class Dockerfile:
    instructions: tuple[Instruction, ...]
    arg_defaults: dict[str, str]

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def copies(self) -> dict[str, str]:
        """Image path -> build-context source, for every file a COPY puts into the image.

        A destination ending in ``/`` is a directory that receives each source by its base name.
        """
        result: dict[str, str] = {}
        for inst in self.of("COPY"):
            words = [w for w in shlex.split(inst.text) if not w.startswith("--")]
            *sources, dest = words
            for src in sources:
                target = (
                    PurePosixPath(dest) / PurePosixPath(src).name if dest.endswith("/") else dest
                )
                result[str(target)] = src
        return result

    def user_at_end(self) -> str | None:
        users = self.of("USER")
        return users[-1].text if users else None


def read_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """Parse a Dockerfile into instructions, expanding ``${ARG}``/``$ARG`` with ARG defaults
    (later ARGs may use earlier ones). Comments and blank lines inside continuations are
    skipped, as Docker does."""
    instructions: list[Instruction] = []
    defaults: dict[str, str] = {}
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(pending)
        pending = []
        keyword, _, rest = joined.partition(" ")

        def expand(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            return defaults.get(name, match.group(0))

        rest = _ARG_REF.sub(expand, rest.strip())
        if keyword.upper() == "ARG":
            name, _, value = rest.partition("=")
            defaults[name] = value
        instructions.append(Instruction(keyword.upper(), rest, start))
    return Dockerfile(tuple(instructions), defaults)


def render_sql(sql_dir: Path | None = None) -> str:
    """The SQL scripts/docker_up.sh would send to SingleStore (``--print-sql``): ``sql/*.sql``
    in order with ``docker/pipeline-vars.env`` substituted. Fails on an unknown placeholder."""
    env = None if sql_dir is None else {**os.environ, "MATCHSTREAM_SQL_DIR": str(sql_dir)}
    proc = subprocess.run(
        ["bash", str(DOCKER_UP), "--print-sql"], capture_output=True, text=True, env=env,
        check=False, timeout=60,
    )
    if proc.returncode != 0:
        raise AssertionError(f"docker_up.sh --print-sql failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def render_sql_file(path: Path) -> str:
    """One SQL file as scripts/docker_up.sh renders it (through ``--print-sql`` on a directory
    holding only that file), e.g. sql/alerts/publish.sql."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(path, Path(tmp) / f"{path.stem}.sql")
        return render_sql(Path(tmp))
