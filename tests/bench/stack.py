"""The system under test: gateway, orders and payments started as the Procfile says, on a
test slot's ports, databases and vhost, from a clean slate; logs in artifacts/bench-logs/."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from gozon import logs
from gozon.config import Settings
from tests.settings import ARTIFACTS, SLOT, TEST_SETTINGS
from tests.support import Process, Stack, reset_databases, reset_vhost


def _tails(processes: list[Process]) -> str:
    """Each one's last log lines, cut short (a traceback is one long JSON line)."""
    return "\n".join(f"--- {p.name} (exit code {p.proc.poll()}), the end of {p.log_path}:\n"
                     + "\n".join(line[:300] for line in p.tail(15).splitlines()) for p in processes)


@contextmanager
def running(settings: Settings = TEST_SETTINGS) -> Iterator[Stack]:
    """The three processes up and ready (with `settings`: the slot's, but for a soak's
    shorter retention); afterwards each stopped (SIGTERM, drain), and the log tail of
    any that died shown."""
    logs.configure("bench", fmt="console", level="warning")  # the migrations' lines are not figures
    asyncio.run(reset_databases(settings))
    reset_vhost()
    stack = Stack(settings, ARTIFACTS / "bench-logs" / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    print(f"slot {SLOT}: gateway :{settings.gateway_port}, orders :{settings.orders_port}, "
          f"payments :{settings.payments_port}; logs in {stack.log_dir}", flush=True)
    try:
        stack.start()
    except AssertionError as exc:  # one exited, or was not ready in time
        failed = _tails([p for p in stack.processes.values() if not (p.running() and p.ready())])
        _stop(stack)
        why = str(exc).splitlines()[0].rstrip(":")
        raise SystemExit(f"the services did not start: {why}\n{failed}") from None
    try:
        yield stack
    finally:
        died = [p for p in stack.processes.values() if not p.running()]
        if died:
            print(f"a service died during the benchmark:\n{_tails(died)}", flush=True)
        print(f"services stopped: {_stop(stack)}\n{_complaints(stack)}", flush=True)


def _complaints(stack: Stack) -> str:
    """The warnings and errors the services logged, by event: a broker restarted by another
    job on the machine, say, explains figures that look wrong."""
    counts: Counter[str] = Counter()
    for process in stack.processes.values():
        for line in process.log_lines():
            if '"level":"warning"' in line or '"level":"error"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                counts[f"{process.name} {record.get('level')} {record.get('event')!r}"] += 1
    if not counts:
        return "their logs: no warning, no error"
    return "their logs:\n" + "\n".join(f"  {count:>5} × {what}" for what, count in counts.most_common())


def _stop(stack: Stack) -> str:
    codes = []
    for process in stack.processes.values():
        try:
            codes.append(f"{process.name} exit {process.stop()}")
        except AssertionError as exc:  # did not drain in time, and was killed
            codes.append(str(exc))
    return ", ".join(codes)
