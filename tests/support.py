"""Test support: a clean slate of databases and vhost, and the three real processes
started the way the Procfile starts them, with their logs kept in files."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import httpx
import pytest

from gozon.config import Settings
from gozon.db.database import ensure_database
from gozon.db.migrate import migrate
from gozon.orders import store as orders_store
from gozon.payments import store as payments_store
from tests.settings import ARTIFACTS, TEST_SETTINGS, VHOST, environment, rabbitmqctl

ROOT = Path(__file__).resolve().parent.parent
# name → command; `exec` (the shell honcho runs a line in gives way to the service,
# which gets honcho's SIGTERM itself) is the shell's business, not the command's.
PROCFILE = {
    name: command.strip().removeprefix("exec ")
    for name, command in (line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
}

# This checkout's `gozon` command (the venv's console script may point at another).
GOZON = [sys.executable, "-m", "gozon.cli"]


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(dsn.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def reset_databases(settings: Settings) -> None:
    """Drop and re-create both test databases, migrated."""
    for dsn, migrations in ((settings.orders_db, orders_store.MIGRATIONS),
                            (settings.payments_db, payments_store.MIGRATIONS)):
        await drop_database(dsn)
        await ensure_database(dsn)
        await migrate(dsn, migrations)


def reset_vhost(vhost: str = VHOST) -> None:
    """An empty vhost for the tests: no queue or message of an earlier run survives."""
    if vhost in rabbitmqctl("list_vhosts", "--quiet", "--no-table-headers").split():
        rabbitmqctl("delete_vhost", vhost)
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def wait_until(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Process:
    """One service, started from its Procfile line (or `command`) with the venv's python."""

    def __init__(self, name: str, settings: Settings, log_dir: Path, command: list[str] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.command = command or PROCFILE[name].split()
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.port = getattr(settings, f"{name}_port")

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        command = list(self.command)
        if command[0] == "python":
            command[0] = sys.executable
        env = environment(self.settings) | (extra_env or {})
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(lambda: self.running() and self.ready() or self._died(), timeout=timeout, what=f"{self.name} ready")

    def _died(self) -> bool:
        if not self.running():
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no drain, no goodbye."""
        if self.running():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait for the drain; returns the exit code."""
        if self.proc is None:
            return 0
        if self.running():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"{self.name} did not drain within {timeout}s") from None

    def tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_lines(self) -> list[str]:
        """The complete lines so far: one the process is still writing has no newline yet."""
        if not self.log_path.exists():
            return []
        text = self.log_path.read_text(errors="replace")
        # Split on newlines only: a JSON string may hold U+2028 or U+0085, which
        # `splitlines` would also split on.
        return text[: text.rfind("\n") + 1].split("\n")[:-1]


class Stack:
    """gateway, orders and payments as real processes on the test ports."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.log_dir = log_dir
        self.processes = {name: Process(name, settings, log_dir) for name in ("gateway", "orders", "payments")}
        self.gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
        self.ws_url = f"ws://127.0.0.1:{settings.gateway_port}/ws"

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def start(self) -> None:
        for process in self.processes.values():
            if not process.running():
                process.start()
        for process in self.processes.values():
            process.wait_ready()

    def stop(self) -> dict[str, int]:
        return {name: process.stop() for name, process in self.processes.items()}

    def errors(self) -> list[str]:
        """Log lines at level error (crashes, unhandled exceptions) of every process."""
        return [line for p in self.processes.values() for line in p.log_lines() if re.search(r'"level":"error"', line)]


def package_stack():
    """A `stack` fixture for the package whose conftest assigns it: the three processes
    on a clean slate, stopped (and required to drain cleanly) after that package's last
    test, before another package resets the slate. (pytest ties a package fixture to
    the package that defines it, so each package defines its own.)"""

    @pytest.fixture(scope="package")
    def stack() -> Iterator[Stack]:
        anyio.run(reset_databases, TEST_SETTINGS)
        reset_vhost()
        stack = Stack(TEST_SETTINGS, ARTIFACTS / "e2e-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
        stack.start()
        yield stack
        codes = stack.stop()
        assert codes == {"gateway": 0, "orders": 0, "payments": 0}, f"a process did not drain cleanly: {codes}"

    return stack
