"""Starting a process: read the settings, set up logging, run `main` until signalled."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from gozon import logs
from gozon.config import Settings
from gozon.runtime.process import run_process


def start(service: str, main: Callable[[anyio.Event, Settings], Awaitable[None]]) -> None:
    settings = Settings.from_env()
    # Before any Quart app exists, or Quart installs a handler of its own.
    logs.configure(service, fmt=settings.log_format, level=settings.log_level)
    run_process(lambda stop: main(stop, settings))
