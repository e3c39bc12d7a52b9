"""`gozon trace` over the logs of a real run of scenario 1: every step from the click to
the WebSocket frame, in order, under one trace id — whether the logs are the processes'
files, honcho's combined output or what `docker compose logs` prints."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from honcho.printer import Message, Printer

from tests.e2e.scenarios import paid_order
from tests.e2e.shopper import Shopper
from tests.support import Stack, wait_until

GOZON = Path(sys.executable).with_name("gozon")

# (service, event, text the line shows): each step can only follow the one before it.
CHAIN = [
    ("gateway", "request handled", "path=/orders"),
    ("orders", "order created", "amount=200"),
    ("orders", "outbox published", "message_type=payment_requested"),
    ("payments", "payment request received", "amount=200"),
    ("payments", "payment debited", "amount=200"),
    ("payments", "outbox published", "message_type=payment_result"),
]
# Orders and the gateway both consume the published result, so these two follow the
# chain in either order.
BRANCHES = [
    ("orders", "order status changed", "status=finished"),
    ("gateway", "websocket frame sent", ""),
]
_STEP = re.compile(r"^\s*([\d.]+) ms\s+\+([\d.]+) ms\s+(\S+)\s+(.+)$")


def records(stack: Stack) -> list[tuple[str, dict]]:
    return [(name, json.loads(line)) for name, process in stack.processes.items() for line in process.log_lines()]


def trace(*args: str, stdin: str | None = None) -> list[str]:
    done = subprocess.run([GOZON, "trace", *args], input=stdin, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def position(story: list[str], step: tuple[str, str, str]) -> int:
    service, event, shows = step
    for n, line in enumerate(story):
        match = _STEP.match(line)
        if match and match[3] == service and match[4].startswith(event + " ") and shows in line:
            return n
    raise AssertionError(f"no step {step} in:\n" + "\n".join(story))


def as_honcho_prints(stack: Stack) -> str:
    """The three logs as `honcho start` prints them (by honcho's own printer), with its
    own lines between them."""
    out = io.StringIO()
    printer = Printer(out, width=len("payments.1"), colour=False)
    now = datetime.now()
    for name, process in stack.processes.items():
        printer.write(Message("line", f"{name}.1 started (pid=4242)", now, "system", None))
        for line in process.log_lines():
            printer.write(Message("line", line, now, f"{name}.1", None))
    return out.getvalue()


def as_compose_prints(stack: Stack) -> str:
    """The three logs as `docker compose logs` prints them: `gateway-1   | {...}`."""
    return "".join(f"{name + '-1':<10} | {line}\n" for name, process in stack.processes.items()
                   for line in process.log_lines())


def test_trace_tells_scenario_1_from_click_to_websocket_frame(running: Stack, shopper: Shopper) -> None:
    paid = paid_order(shopper)
    [order] = shopper.orders()
    assert order["id"] == paid["id"]
    ends = {(service, event) for service, event, _ in BRANCHES}
    # The scenario has seen the frame and the order finished; the lines saying so may trail.
    wait_until(lambda: ends <= {(name, r["event"]) for name, r in records(running) if r.get("order_id") == order["id"]},
               timeout=10, what="the last steps to be logged")

    story = trace(str(order["id"]), *(str(p.log_path) for p in running.processes.values()))
    print("\n".join(story))
    header = re.fullmatch(r"trace (\w+): \d+ steps over .*", story[0])
    assert header, f"not one trace id: {story[0]}"
    trace_id = header[1]
    assert {r.get("trace_id") for _, r in records(running) if r.get("order_id") == order["id"]} == {trace_id}

    chain = [position(story, step) for step in CHAIN]
    assert chain == sorted(chain), f"steps out of order: {list(zip(CHAIN, chain, strict=True))}"
    assert all(position(story, step) > chain[-1] for step in BRANCHES)
    elapsed = [float(_STEP.match(line)[1]) for line in story[1:]]
    assert elapsed == sorted(elapsed), "steps are not in time order"

    assert trace(trace_id, *(str(p.log_path) for p in running.processes.values())) == story
    assert trace(str(order["id"]), stdin=as_honcho_prints(running)) == story
    assert trace(str(order["id"]), "-", stdin=as_compose_prints(running)) == story


def test_every_line_the_processes_log_is_one_json_object(running: Stack) -> None:
    """Hypercorn's lines, and whatever aio-pika or asyncpg say, included; and each
    actor's start names it."""
    lines = records(running)
    assert all({"ts", "level", "service", "event"} <= record.keys() for _, record in lines)
    for name in running.processes:
        mine = [record for service, record in lines if service == name]
        assert any(record.get("logger") == "hypercorn.error" for record in mine), f"no Hypercorn line from {name}"
        started = {record.get("actor") for record in mine if record["event"] == "actor started"}
        assert f"{name}.http" in started, f"{name} started {started}"
