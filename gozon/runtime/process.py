"""A process's outermost layer: SIGTERM/SIGINT start the drain, a second signal or the
drain deadline cuts it short, and the exit code tells the outer supervisor what happened
(0 drained, 1 gave up after repeated crashes)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Awaitable, Callable

import anyio
import structlog

from gozon.runtime.supervisor import SupervisorGaveUp
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.runtime")

DRAIN_TIMEOUT = 10.0


async def run_until_signalled(main: Callable[[anyio.Event], Awaitable[None]],
                              drain_timeout: float = DRAIN_TIMEOUT) -> None:
    """Run `main(stop)`; the first signal sets `stop`, a second or the deadline cancels."""
    stop = anyio.Event()
    async with task_group() as tg:

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


def run_process(main: Callable[[anyio.Event], Awaitable[None]], *, backend: str = "asyncio") -> None:
    """Run a supervised process to its end and exit with a code that says how it ended."""
    try:
        anyio.run(run_until_signalled, main, backend=backend)
    except* SupervisorGaveUp:
        log.error("process exiting after repeated crashes")
        sys.exit(1)
    log.info("process stopped")
    sys.exit(0)
