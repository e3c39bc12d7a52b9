"""LISTEN on a dedicated connection (a pooled one would lose its LISTEN on release),
checked with a periodic query because a dead connection says nothing, and re-opened
after any failure. Each notification (and each re-LISTEN) calls `on_notify`."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import asyncpg
import structlog

from gozon.db.database import DOWN, is_outage
from gozon.runtime.retry import Retry

log = structlog.get_logger("gozon.db")


async def listen_forever(dsn: str, channel: str, on_notify: Callable[[], object], *,
                         check_every: float = 5.0) -> None:
    retry = Retry("listen connection failed, retrying", log)
    while True:
        try:
            con = await asyncpg.connect(dsn, timeout=5)
        except DOWN as exc:
            await retry.failed(exc, channel=channel)
            continue
        try:
            await con.add_listener(channel, lambda *_: on_notify())
            retry.succeeded()
            # Whatever was committed while nobody listened is picked up now.
            on_notify()
            while True:
                await anyio.sleep(check_every)
                await con.fetchval("SELECT 1", timeout=5)
        except Exception as exc:
            if not is_outage(exc, con):  # e.g. "connection is closed" when the check finds it dead
                raise
            log.warning("listen connection lost", channel=channel, error=str(exc) or type(exc).__name__)
        finally:
            with anyio.move_on_after(2, shield=True):
                await con.close()
            con.terminate()
