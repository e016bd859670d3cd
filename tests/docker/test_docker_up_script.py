"""scripts/docker_up.sh without Docker: its pre-flight must stop with a clear message and a
non-zero exit before touching anything, for each way Docker can be missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docker.layout import DOCKER_UP

# What the script needs before and during its pre-flight, besides docker itself.
TOOLS = ("bash", "dirname", "sed", "uname", "python3", "grep")

FAKE_DOCKER = {
    "no-compose": 'case "$1" in compose) exit 1;; esac; exit 0',
    "no-daemon": 'case "$1" in info) echo "Cannot connect to the Docker daemon" >&2; exit 1;; '
    "esac; exit 0",
}


def isolated_path(tmp_path: Path, docker_body: str | None) -> str:
    """A PATH holding only TOOLS and, if given, a fake docker running ``docker_body``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed to run the script"
        (bin_dir / tool).symlink_to(found)
    if docker_body is not None:
        docker = bin_dir / "docker"
        docker.write_text(f"#!/bin/sh\n{docker_body}\n")
        docker.chmod(0o755)
    return str(bin_dir)


@pytest.mark.parametrize(
    "docker_body, message",
    [
        pytest.param(None, "docker not found", id="no-docker-cli"),
        pytest.param(FAKE_DOCKER["no-compose"], "Compose v2", id="no-compose-plugin"),
        pytest.param(FAKE_DOCKER["no-daemon"], "no Docker daemon answers", id="no-daemon"),
    ],
)
def test_preflight_stops_with_a_clear_message(tmp_path: Path, docker_body, message) -> None:
    env = {**os.environ, "PATH": isolated_path(tmp_path, docker_body)}
    result = subprocess.run(
        [shutil.which("bash") or "bash", str(DOCKER_UP)], env=env, capture_output=True,
        text=True, check=False, timeout=60,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    # Nothing was created on the way out (docker/.env is made only after the pre-flight).
    assert "creating docker/.env" not in result.stderr


def test_unknown_option_is_rejected() -> None:
    result = subprocess.run(
        ["bash", str(DOCKER_UP), "--bogus"], capture_output=True, text=True, check=False,
        timeout=60,
    )
    assert result.returncode != 0 and "unknown option '--bogus'" in result.stderr


def test_help_lists_every_option() -> None:
    result = subprocess.run(
        ["bash", str(DOCKER_UP), "--help"], capture_output=True, text=True, check=True,
        timeout=60,
    )
    for option in ("--no-demo", "--reset", "--down", "--print-sql", "--print-script-sql",
                   "--client"):
        assert option in result.stdout
