"""`./deploy/run.sh` as the README has a newcomer start it — in a terminal, or piped into
`tee` — then Ctrl-C: every process it started is gone within the drain time and the
ports are free for the next run; the log file tells an order's story to `gozon trace`
while the terminal shows readable lines."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from gozon.runtime.process import DRAIN_TIMEOUT, PARENT_POLL
from tests.deploy.foreground import ForegroundJob, port_free
from tests.e2e.scenarios import paid_order
from tests.e2e.shopper import Shopper
from tests.settings import TEST_SETTINGS, environment
from tests.support import ROOT, reset_vhost, wait_until

pytestmark = pytest.mark.e2e

PORTS = (TEST_SETTINGS.gateway_port, TEST_SETTINGS.orders_port, TEST_SETTINGS.payments_port)
GATEWAY = f"http://127.0.0.1:{TEST_SETTINGS.gateway_port}"
# run.sh runs setup first: pip, the first time in a checkout, takes minutes.
STARTUP = 300
STOP_MARGIN = 5.0


def ready(job: ForegroundJob) -> bool:
    if job.run_sh.poll() is not None:
        raise AssertionError(f"run.sh exited with {job.run_sh.returncode}:\n{job.text()[-3000:]}")
    try:
        return httpx.get(f"{GATEWAY}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def service_lines(terminal: str) -> list[str]:
    """What the services printed, without honcho's `HH:MM:SS name.1 | ` prefix."""
    return [m[2] for m in re.finditer(r"^\d\d:\d\d:\d\d (gateway|orders|payments)\.1 +\| (.*)$", terminal, re.M)]


@pytest.mark.timeout(STARTUP + 120)
@pytest.mark.parametrize("piped", [False, True], ids=["terminal", "piped-into-tee"])
def test_ctrl_c_stops_every_process_and_the_log_file_tells_the_order(tmp_path, piped: bool) -> None:
    assert all(port_free(port) for port in PORTS), "a test port is taken before the start"
    reset_vhost()
    log_file = tmp_path / "gozon.log"
    env = {k: v for k, v in environment().items() if k != "GOZON_LOG_FORMAT"} | {"GOZON_LOG_FILE": str(log_file)}
    job = ForegroundJob(env, tee_to=tmp_path / "tee.log" if piped else None)
    try:
        wait_until(lambda: ready(job), timeout=STARTUP, interval=0.3, what="the gateway ready")
        shopper = Shopper(GATEWAY, f"ws://127.0.0.1:{TEST_SETTINGS.gateway_port}/ws")
        order = paid_order(shopper)
        shopper.http.close()
        processes = job.note_processes()
        assert len(processes) >= 4, f"honcho and three services, found {processes}"

        job.ctrl_c()
        job.wait_gone(DRAIN_TIMEOUT + STOP_MARGIN)
        assert all(port_free(port) for port in PORTS), "a port is still taken after Ctrl-C"
    finally:
        job.close()

    terminal = re.sub(r"\x1b\[[0-9;]*m", "", job.text())  # colours aside
    assert f"logs in {log_file}" in terminal
    if not piped:
        lines = service_lines(terminal)
        assert any("order created" in line for line in lines), terminal[-3000:]
        assert not any(line.startswith("{") for line in lines), "JSON on the terminal"
        # honcho's own last word: each service drained, none was killed (a shell's -15).
        for name in ("gateway", "orders", "payments"):
            assert f"| {name}.1 stopped (rc=0)" in terminal, terminal[-3000:]
    assert job.run_sh.returncode == 130, "run.sh does not exit as a Ctrl-C'd command does"
    # As the README's recipe has it, with the checkout's .venv that run.sh made.
    told = subprocess.run([ROOT / ".venv" / "bin" / "gozon", "trace", str(order["id"]), str(log_file)],
                          capture_output=True, text=True, cwd=ROOT, timeout=30, check=False)
    assert told.returncode == 0, told.stderr
    steps = told.stdout.splitlines()[1:]
    for service, event in (("gateway", "request handled"), ("orders", "order created"),
                           ("payments", "payment debited"), ("gateway", "websocket frame sent"),
                           ("orders", "order status changed")):
        assert any(re.search(rf"\b{service}\s+{event}\b", step) for step in steps), told.stdout


@pytest.mark.timeout(STARTUP + 120)
def test_closing_the_terminal_stops_every_process(tmp_path) -> None:
    """A closed terminal sends SIGHUP to its foreground job: honcho (which does not handle
    it) dies and tells no one, and so do its processes that started the services. Each
    service sees its parent gone and drains: none is left behind on the ports."""
    assert all(port_free(port) for port in PORTS), "a test port is taken before the start"
    reset_vhost()
    env = environment() | {"GOZON_LOG_FILE": str(tmp_path / "gozon.log")}
    job = ForegroundJob(env)
    try:
        wait_until(lambda: ready(job), timeout=STARTUP, interval=0.3, what="the gateway ready")
        job.note_processes()
        job.hang_up()
        job.wait_gone(DRAIN_TIMEOUT + PARENT_POLL + STOP_MARGIN)
        assert all(port_free(port) for port in PORTS), "a port is still taken after the terminal closed"
    finally:
        job.close()
    stopped = [line for line in (tmp_path / "gozon.log").read_text().splitlines() if "parent process gone" in line]
    assert {json.loads(line)["service"] for line in stopped} == {"gateway", "orders", "payments"}
