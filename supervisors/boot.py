"""Starting a process: read the settings, set up logging, run `main` until signalled;
and the restart policy every process gives its actors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from gozon import logs, metrics
from gozon.config import Settings
from gozon.runtime import Child, RestartPolicy, supervise
from gozon.runtime.process import run_process


def start(service: str, main: Callable[[anyio.Event, Settings], Awaitable[None]]) -> None:
    settings = Settings.from_env()
    # Before any Quart app exists, or Quart installs a handler of its own.
    logs.configure(service, fmt=settings.log_format, level=settings.log_level, file=settings.log_file)
    run_process(lambda stop: main(stop, settings), stop_with_parent=settings.stop_with_parent)


async def run_actors(children: Sequence[Child], stop: anyio.Event, settings: Settings) -> None:
    """Supervise `children` one-for-one until `stop`, counting restarts in the metrics."""
    metrics.actors_supervised(child.name for child in children)
    await supervise(
        children,
        stop=stop,
        policy=RestartPolicy(max_restarts=settings.max_restarts, window=settings.restart_window),
        on_restart=metrics.actor_restarted,
    )
