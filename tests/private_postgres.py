"""A throw-away PostgreSQL cluster of a test's own, on its own port, so that "PostgreSQL
is down", restarting or out of connection slots can be staged without touching the
shared server (which other runs use meanwhile)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

import pytest

from tests.settings import TEST_SETTINGS

# The slot's port for it, next to the three services' (gateway_port + 0..2) and the
# AMQP proxy's (+5).
PRIVATE_PG_PORT = TEST_SETTINGS.gateway_port + 6


class PrivateCluster:
    """`initdb` into a temporary directory, `pg_ctl` to start, stop and restart it.
    `options` are server settings (`-c name=value`), e.g. `max_connections=8`."""

    def __init__(self, port: int = PRIVATE_PG_PORT, **options: object) -> None:
        bins = sorted(glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            pytest.fail("no initdb in /usr/lib/postgresql/*/bin: deploy/services.sh installs PostgreSQL")
        self.bin = Path(bins[-1]).parent
        self.port = port
        self.options = options
        self.dir = Path(tempfile.mkdtemp(prefix=f"gozon-pg-{port}-"))
        self.data = self.dir / "data"
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
            self.prefix = ["runuser", "-u", "postgres", "--"]
        else:
            self.prefix = []
        self.dsn = f"postgresql://postgres@127.0.0.1:{port}"

    def database(self, name: str) -> str:
        """The URL of database `name` on this cluster."""
        return f"{self.dsn}/{name}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([*self.prefix, *args], check=False, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")

    def _server_options(self) -> str:
        settings = {"listen_addresses": "127.0.0.1", "fsync": "off", **self.options}
        return " ".join([f"-p {self.port} -k {self.dir}", *(f"-c {k}={v}" for k, v in settings.items())])

    def start(self) -> None:
        self._pg_ctl("-l", str(self.dir / "postgres.log"), "-o", self._server_options(), "-w", "-t", "30", "start")

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` drops every connection at once; `fast` sends each backend an
        admin shutdown (57P01) first."""
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-m", mode, "-w", "-t", "30", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-l", str(self.dir / "postgres.log"), "-o", self._server_options(), "-m", mode,
                     "-w", "-t", "30", "restart")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def private_cluster(port: int = PRIVATE_PG_PORT, **options: object) -> Iterator[PrivateCluster]:
    """A started private cluster, stopped and removed on exit."""
    cluster = PrivateCluster(port, **options)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            cluster.remove()
