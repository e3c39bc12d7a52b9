"""The container files as the tools that judge them see them: the compose file against
the Compose specification's schema and through a compose implementation's parser, the
Dockerfile through hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.compose import COMPOSE_FILE, ROOT, load

BIN = Path(sys.executable).parent


def run(*command: str | Path) -> None:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60, check=False)
    assert done.returncode == 0, f"{Path(command[0]).name} says:\n{done.stdout}{done.stderr}"


def test_compose_file_follows_the_compose_specification() -> None:
    run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE)


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is missing (deploy/test.sh installs it when run as root)")
def test_compose_file_parses_with_docker_compose() -> None:
    # Compose v1 parses offline, and checks what a schema cannot: that `depends_on`,
    # volumes and anchors name things that exist.
    run("docker-compose", "--file", COMPOSE_FILE, "config", "--quiet")


def test_dockerfile_passes_hadolint() -> None:
    run(BIN / "hadolint", "--no-color", ROOT / "Dockerfile")


def test_every_service_has_a_healthcheck_and_a_restart_policy() -> None:
    for name, service in load()["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), f"{name} is not restarted"
