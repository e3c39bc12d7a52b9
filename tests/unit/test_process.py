"""The process's outermost layer, in real subprocesses (supervised_process.py): SIGTERM
drains and exits 0, a supervisor that gives up exits 1, the drain has a deadline."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.foreground import alive

SCRIPT = Path(__file__).with_name("supervised_process.py")
ROOT = SCRIPT.parents[2]
STARTUP = 15.0  # interpreter start and imports, on a busy machine
PROMPTLY = 5.0

pytestmark = pytest.mark.parametrize("backend", ["asyncio", "trio"])


# A parent that starts the script and waits (the script's stdout is still ours).
PARENT = "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)"


class Process:
    """The script running in a subprocess (or under a parent of its own, `PARENT`), with
    its stdout and stderr read as they come."""

    def __init__(self, backend: str, mode: str, *, with_parent: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        parent = [sys.executable, "-c", PARENT] if with_parent else []
        self.popen = subprocess.Popen(
            [*parent, sys.executable, str(SCRIPT), backend, mode],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
        )
        self.output = b""

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def _read(self, deadline: float) -> bool:
        """Read what is there (waiting until `deadline`); False at end of output."""
        assert self.popen.stdout is not None
        remaining = deadline - time.monotonic()
        ready = remaining > 0 and select.select([self.popen.stdout], [], [], remaining)[0]
        if not ready:
            raise TimeoutError(f"timed out; output so far:\n{self.text}")
        chunk = os.read(self.popen.stdout.fileno(), 65536)
        self.output += chunk
        return bool(chunk)

    def wait_for(self, marker: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(rf"^{marker}$", self.text, re.MULTILINE):
            if not self._read(deadline):
                raise AssertionError(f"exited before {marker}:\n{self.text}")

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self._read(deadline):
            pass
        return self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.popen.send_signal(signum)

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=PROMPTLY)
        assert self.popen.stdout is not None
        self.popen.stdout.close()


@pytest.fixture
def start() -> Iterator:
    started: list[Process] = []

    def start(backend: str, mode: str, **options: bool) -> Process:
        started.append(Process(backend, mode, **options))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        # A script left behind by a parent killed under it (its pid printed first).
        for pid in re.findall(r"^PID (\d+)$", process.text, re.MULTILINE):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def test_sigterm_drains_the_children_and_exits_0(start, backend: str) -> None:
    process = start(backend, "wait")
    process.wait_for("READY", STARTUP)

    process.signal(signal.SIGTERM)

    assert process.exit_code(PROMPTLY) == 0, process.text
    assert re.search("^CHILD-RETURNED$", process.text, re.MULTILINE), process.text


def test_sigint_drains_too(start, backend: str) -> None:
    process = start(backend, "wait")
    process.wait_for("READY", STARTUP)

    process.signal(signal.SIGINT)

    assert process.exit_code(PROMPTLY) == 0, process.text
    assert re.search("^CHILD-RETURNED$", process.text, re.MULTILINE), process.text


def test_a_child_that_always_crashes_makes_the_process_exit_1(start, backend: str) -> None:
    process = start(backend, "crash")

    assert process.exit_code(STARTUP) == 1, process.text
    assert process.text.count("Traceback") == 3, process.text  # max_restarts + 1 crashes logged
    assert "giving up" in process.text


def test_the_drain_deadline_cuts_a_stubborn_child_short(start, backend: str) -> None:
    process = start(backend, "deadline")  # drain deadline 0.2 s
    process.wait_for("READY", STARTUP)

    process.signal(signal.SIGTERM)
    process.wait_for("DRAINING", PROMPTLY)

    assert process.exit_code(PROMPTLY) == 0, process.text
    assert "drain deadline passed" in process.text
    assert re.search("^RETURNED$", process.text, re.MULTILINE), process.text


def test_a_second_signal_cuts_the_drain_short(start, backend: str) -> None:
    process = start(backend, "stubborn")  # the default drain deadline: 10 s
    process.wait_for("READY", STARTUP)
    process.signal(signal.SIGTERM)
    process.wait_for("DRAINING", PROMPTLY)

    process.signal(signal.SIGTERM)

    process.exit_code(2.0)
    assert "second signal" in process.text


def test_a_process_whose_parent_is_killed_drains_and_exits(start, backend: str) -> None:
    """As a service does when honcho dies under it (kill -9, its terminal closed)."""
    process = start(backend, "orphan", with_parent=True)
    process.wait_for("READY", STARTUP)
    [pid] = re.findall(r"^PID (\d+)$", process.text, re.MULTILINE)

    process.popen.kill()  # the parent, with SIGKILL: it tells no one

    process.wait_for("CHILD-RETURNED", PROMPTLY)
    assert process.exit_code(PROMPTLY) == -signal.SIGKILL  # the parent's code, once the script's output ended
    assert "parent process gone" in process.text
    deadline = time.monotonic() + PROMPTLY
    while alive(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(int(pid)), "the script outlived its parent"

