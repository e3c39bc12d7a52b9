"""The services as docker-compose.yml runs them — each one's `command` and `environment`,
started in `depends_on` order once what it depends on passes its healthcheck — then the
page and the original's scenario 1 through the gateway's published port. How the
compose network is emulated on this machine: tests/deploy/compose.py."""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from tests.deploy.compose import SMOKE_VHOST, App, Network, load
from tests.e2e.scenarios import paid_order
from tests.e2e.shopper import Shopper
from tests.support import Process, drop_database, reset_vhost, wait_until

pytestmark = pytest.mark.e2e


def wait_healthy(network: Network, app: App, process: Process) -> None:
    """Until the service's own healthcheck passes, as `condition: service_healthy` does."""
    command = [sys.executable if part == "python" else part for part in network.healthcheck(app)]

    def healthy() -> bool:
        if not process.running():
            raise AssertionError(f"{app.name} exited with {process.proc.returncode}:\n{process.tail()}")
        return subprocess.run(command, capture_output=True, timeout=10, check=False).returncode == 0

    wait_until(healthy, timeout=30, interval=0.3, what=f"{app.name}'s healthcheck")


def test_page_and_scenario_1_through_the_services_as_compose_runs_them(tmp_path) -> None:
    network = Network(load())
    for dsn in network.databases.values():  # fresh, as after `docker compose down -v`
        anyio.run(drop_database, dsn)
    reset_vhost(SMOKE_VHOST)
    processes: list[Process] = []
    try:
        for app in network.start_order():
            waits = network.depends_on(app)
            assert all(waits.get(name) == "service_healthy" for name in app.reaches), (
                f"{app.name} talks to {sorted(app.reaches)} but waits for {waits}")
            process = Process(app.name, app.settings, tmp_path, command=app.command)
            processes.append(process)
            process.start()
            wait_healthy(network, app, process)
        [gateway] = network.published()
        base = f"127.0.0.1:{gateway.local_port}"
        shopper = Shopper(f"http://{base}", f"ws://{base}/ws")
        try:
            page = shopper.http.get("/")
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), page.text
            paid_order(shopper)
        finally:
            shopper.http.close()
    finally:
        codes = {process.name: process.stop() for process in processes}
    assert set(codes.values()) == {0}, f"a service did not drain cleanly: {codes}"
