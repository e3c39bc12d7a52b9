"""Logging as every process sets it up (`gozon.logs.configure`), in a real subprocess:
our events and the stdlib records of Hypercorn, aio-pika and asyncpg leave through one
pipeline — JSON lines when the output is not a terminal (containers, honcho, files),
readable text on one, and JSON lines in the file `GOZON_LOG_FILE` names either way —
and an actor's start, crash and restart name the actor."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
import time

SCRIPT = """
import logging
import anyio
from gozon import logs
from gozon.config import Settings
from gozon.runtime import Backoff, Child, RestartPolicy, supervise

logs.configure("demo", file=Settings.from_env().log_file)
for name in ("hypercorn.error", "aio_pika", "asyncpg"):
    logging.getLogger(name).warning("said by %s", name)

crashed = []

async def flaky(stop):
    if not crashed:
        crashed.append(True)
        raise RuntimeError("boom")

anyio.run(lambda: supervise([Child("demo.flaky", flaky)], stop=anyio.Event(),
                            policy=RestartPolicy(backoff=Backoff(initial=0.001, cap=0.001))))
"""
COMMAND = [sys.executable, "-c", SCRIPT]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("GOZON_")}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def on_a_terminal(env: dict[str, str] = ENV) -> str:
    """What the script writes to a terminal (a pseudo-terminal here), colours removed."""
    main, child = pty.openpty()
    process = subprocess.Popen(COMMAND, stdin=subprocess.DEVNULL, stdout=child, stderr=child, env=env)
    os.close(child)
    output = b""
    deadline = time.monotonic() + 30
    try:
        while select.select([main], [], [], max(0.0, deadline - time.monotonic()))[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: the script ended and the terminal closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(main)
    assert process.wait(timeout=10) == 0, output.decode(errors="replace")
    return _ANSI.sub("", output.decode())


def check_records(records: list[dict]) -> None:
    """The script's lines, ours and the stdlib's, as records."""
    assert all(r["service"] == "demo" and "ts" in r and "level" in r for r in records)
    foreign = {r["logger"]: r["event"] for r in records if "logger" in r}
    assert foreign == {name: f"said by {name}" for name in ("hypercorn.error", "aio_pika", "asyncpg")}
    actor = [(r["event"], r["actor"]) for r in records if "actor" in r]
    assert [event for event, _ in actor] == [
        "actor started", "actor crashed", "actor restarting", "actor started", "actor stopped"]
    assert {name for _, name in actor} == {"demo.flaky"}
    [crash] = [r for r in records if r["event"] == "actor crashed"]
    assert "boom" in json.dumps(crash["exception"])


def test_json_lines_when_not_on_a_terminal() -> None:
    done = subprocess.run(COMMAND, capture_output=True, text=True, timeout=30, env=ENV, check=False)
    assert done.returncode == 0, done.stderr
    check_records([json.loads(line) for line in done.stderr.splitlines()])


def test_readable_text_on_a_terminal() -> None:
    text = on_a_terminal()
    lines = text.splitlines()
    assert not any(line.lstrip().startswith("{") for line in lines), text
    assert any("said by hypercorn.error" in line for line in lines), text
    [crash] = [line for line in lines if "actor crashed" in line]
    assert "actor=demo.flaky" in crash
    assert "RuntimeError: boom" in text


def test_json_lines_in_the_log_file_while_the_terminal_shows_text(tmp_path) -> None:
    log_file = tmp_path / "gozon.log"
    text = on_a_terminal(ENV | {"GOZON_LOG_FILE": str(log_file)})
    assert "actor crashed" in text and not any(line.lstrip().startswith("{") for line in text.splitlines())
    check_records([json.loads(line) for line in log_file.read_text().splitlines()])


def test_processes_sharing_the_log_file_never_break_each_others_lines(tmp_path) -> None:
    log_file = tmp_path / "gozon.log"
    # Long lines, many at once: buffered writes would split them and mix the pieces.
    script = ("import structlog; from gozon import logs; logs.configure('demo', file=%r)\n"
              "for n in range(2000): structlog.get_logger().info('line', n=n, pad='x' * 5000)") % str(log_file)
    writers = [subprocess.Popen([sys.executable, "-c", script], env=ENV, stderr=subprocess.DEVNULL)
               for _ in range(3)]
    assert [writer.wait(timeout=60) for writer in writers] == [0, 0, 0]
    numbers = sorted(json.loads(line)["n"] for line in log_file.read_text().splitlines())
    assert numbers == sorted(list(range(2000)) * 3)
