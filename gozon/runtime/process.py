"""A process's outermost layer: SIGTERM/SIGINT start the drain, a second signal or the
drain deadline cuts it short, and the exit code tells the outer supervisor what happened
(0 drained, 1 gave up after repeated crashes). A process may also stop with its parent:
once that is gone, it drains as on SIGTERM."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial

import anyio
import structlog

from gozon.runtime.supervisor import SupervisorGaveUp
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.runtime")

DRAIN_TIMEOUT = 10.0
PARENT_POLL = 0.5  # seconds between looks at the parent


async def run_until_signalled(main: Callable[[anyio.Event], Awaitable[None]],
                              drain_timeout: float = DRAIN_TIMEOUT, *, stop_with_parent: bool = False) -> None:
    """Run `main(stop)`; the first signal sets `stop`, a second or the deadline cancels.
    With `stop_with_parent`, the parent's end counts as the first signal."""
    stop = anyio.Event()
    async with task_group() as tg:
        # Init (1) or none (0, as PID 1 of a container) is no parent to outlive.
        if stop_with_parent and (parent := os.getppid()) > 1:
            tg.start_soon(_signal_when_orphaned, parent)

        async def on_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for signum in signals:
                    log.info("draining", signal=signal.Signals(signum).name, deadline=drain_timeout)
                    stop.set()
                    break
                with anyio.move_on_after(drain_timeout) as deadline:
                    async for signum in signals:
                        log.warning("second signal, stopping now", signal=signal.Signals(signum).name)
                        break
                if deadline.cancelled_caught:
                    log.warning("drain deadline passed, stopping now")
            tg.cancel_scope.cancel()

        tg.start_soon(on_signals)
        await main(stop)
        tg.cancel_scope.cancel()


async def _signal_when_orphaned(parent: int) -> None:
    """SIGTERM this process once `parent` is gone (the kernel hands an orphan to another
    process): honcho killed, or its terminal closed, leaves no service behind."""
    while os.getppid() == parent:
        await anyio.sleep(PARENT_POLL)
    log.warning("parent process gone, stopping as on SIGTERM", parent=parent)
    os.kill(os.getpid(), signal.SIGTERM)


def run_process(main: Callable[[anyio.Event], Awaitable[None]], *, backend: str = "asyncio",
                stop_with_parent: bool = False) -> None:
    """Run a supervised process to its end and exit with a code that says how it ended."""
    try:
        anyio.run(partial(run_until_signalled, stop_with_parent=stop_with_parent), main, backend=backend)
    except* SupervisorGaveUp:
        log.error("process exiting after repeated crashes")
        sys.exit(1)
    log.info("process stopped")
    sys.exit(0)
