"""A tiny supervised process for test_process.py: `python supervised_process.py BACKEND MODE`.

Modes:
  wait      one child that waits for `stop`, then returns (exit 0 on SIGTERM)
  crash     one child that always crashes (exit 1 once the restart policy gives up)
  stubborn  one child that ignores `stop`, and one that reports the drain has begun
  deadline  like stubborn, but with a drain deadline of 0.2 s
  orphan    like wait, but stopping with its parent; prints PID <pid> first

Markers on stdout (flushed): READY once the signal handlers are in place, DRAINING once
`stop` is set, CHILD-RETURNED when the waiting child returned after `stop`.
"""

from __future__ import annotations

import functools
import os
import signal
import sys

import anyio

from gozon.runtime import Backoff, Child, RestartPolicy, supervise
from gozon.runtime.process import run_process, run_until_signalled

TINY = RestartPolicy(max_restarts=2, window=60.0, backoff=Backoff(initial=0.001, cap=0.001), healthy_after=60.0)


def say(marker: str) -> None:
    print(marker, flush=True)


async def signals_handled() -> None:
    """Return once SIGTERM no longer has its default action: the process's signal
    receiver is installed, so a SIGTERM from the test cannot kill us outright."""
    for _ in range(10_000):
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return
        await anyio.lowlevel.checkpoint()
    raise RuntimeError("the signal receiver was never installed")


async def waiter(stop: anyio.Event) -> None:
    await signals_handled()
    say("READY")
    await stop.wait()
    say("CHILD-RETURNED")


async def crasher(stop: anyio.Event) -> None:
    await anyio.lowlevel.checkpoint()
    raise RuntimeError("always crashes")


async def stubborn(stop: anyio.Event) -> None:
    await signals_handled()
    say("READY")
    await anyio.sleep_forever()


async def reporter(stop: anyio.Event) -> None:
    await stop.wait()
    say("DRAINING")


CHILDREN = {
    "wait": [Child("waiter", waiter)],
    "crash": [Child("crasher", crasher)],
    "stubborn": [Child("stubborn", stubborn), Child("reporter", reporter)],
    "deadline": [Child("stubborn", stubborn), Child("reporter", reporter)],
    "orphan": [Child("waiter", waiter)],
}


def main() -> None:
    backend, mode = sys.argv[1], sys.argv[2]

    async def process_main(stop: anyio.Event) -> None:
        await supervise(CHILDREN[mode], stop=stop, policy=TINY)

    if mode == "deadline":
        anyio.run(functools.partial(run_until_signalled, drain_timeout=0.2), process_main, backend=backend)
        say("RETURNED")
        return
    if mode == "orphan":
        say(f"PID {os.getpid()}")
    run_process(process_main, backend=backend, stop_with_parent=mode == "orphan")


if __name__ == "__main__":
    main()
