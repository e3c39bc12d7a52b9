"""Retrying a dependency that is down: each failure is logged and followed by the next
delay of a backoff schedule; a success starts the schedule afresh."""

from __future__ import annotations

from typing import Any

import anyio

from gozon.runtime.backoff import RECONNECT, Backoff
from gozon.runtime.stop import unless_stopped


class Retry:
    def __init__(self, event: str, log: Any, backoff: Backoff = RECONNECT) -> None:
        self.event = event
        self.log = log
        self.backoff = backoff
        self.attempt = 0

    def succeeded(self) -> None:
        self.attempt = 0

    async def failed(self, exc: BaseException, stop: anyio.Event | None = None, **fields: object) -> bool:
        """Log `exc` and wait the next delay; False if `stop` was set meanwhile."""
        delay = self.backoff.delay(self.attempt)
        self.attempt += 1
        self.log.warning(self.event, error=str(exc) or type(exc).__name__, retry_in=round(delay, 2), **fields)
        if stop is None:
            await anyio.sleep(delay)
            return True
        return await unless_stopped(stop, anyio.sleep(delay))
