"""Shared test settings: the suite runs against real PostgreSQL and RabbitMQ on
loopback, in databases and a vhost of its own (so a running dev stack is untouched),
and starts the services on ports of its own."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from gozon.config import ENVIRONMENT, Settings

if TYPE_CHECKING:
    from tests.support import Stack

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

# GOZON_TEST_SLOT=N gives a test run ports, databases and a vhost of its own, so that
# several runs can share one machine.
SLOT = int(os.environ.get("GOZON_TEST_SLOT", "0"))
_PORT = 18080 + 10 * SLOT
_SUFFIX = f"_{SLOT}" if SLOT else ""
VHOST = f"gozon_test{_SUFFIX}"
TEST_SETTINGS = Settings(
    gateway_port=_PORT,
    orders_port=_PORT + 1,
    payments_port=_PORT + 2,
    orders_db=f"postgresql://postgres@127.0.0.1:5432/gozon_test{_SUFFIX}_orders",
    payments_db=f"postgresql://postgres@127.0.0.1:5432/gozon_test{_SUFFIX}_payments",
    amqp_url=f"amqp://guest:guest@127.0.0.1:5672/{VHOST}",
    orders_url=f"http://127.0.0.1:{_PORT + 1}",
    payments_url=f"http://127.0.0.1:{_PORT + 2}",
    log_format="json",
    outbox_poll_interval=0.5,
)


def environment(settings: Settings = TEST_SETTINGS) -> dict[str, str]:
    """The process environment that makes a service run with `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOZON_")}
    env.update({var: str(getattr(settings, field)) for field, var in ENVIRONMENT.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


@pytest.fixture(scope="session")
def settings() -> Settings:
    return TEST_SETTINGS


def package_stack():
    """A `stack` fixture for the package whose conftest assigns it: the three processes
    on a clean slate, stopped (and required to drain cleanly) after that package's last
    test, before another package resets the slate. (pytest ties a package fixture to
    the package that defines it, so each package defines its own.)"""

    @pytest.fixture(scope="package")
    def stack() -> Iterator[Stack]:
        from tests.support import Stack, reset_databases, reset_vhost

        anyio.run(reset_databases, TEST_SETTINGS)
        reset_vhost()
        stack = Stack(TEST_SETTINGS, ARTIFACTS / "e2e-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        stack.start()
        yield stack
        codes = stack.stop()
        assert codes == {"gateway": 0, "orders": 0, "payments": 0}, f"a process did not drain cleanly: {codes}"

    return stack


@pytest.fixture
def running(stack: Stack) -> Stack:
    """The stack with every process up (a fault test may have stopped one)."""
    stack.start()
    return stack
