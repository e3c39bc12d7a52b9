"""The test run's settings: the suite runs against real PostgreSQL and RabbitMQ on
loopback, in databases and a vhost of its own (so a running dev stack is untouched),
and starts the services on ports of its own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gozon.config import ENVIRONMENT, Settings

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
