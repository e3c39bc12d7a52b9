"""Purges what no longer needs keeping (sent outbox rows, old inbox ids, ...), once at
start and then every `every` seconds; a database that is down just skips a round."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

import anyio
import structlog

from gozon.config import Settings
from gozon.db import Connection, Database, inbox, outbox
from gozon.errors import Transient
from gozon.runtime.stop import unless_stopped

log = structlog.get_logger("gozon.retention")

# Deletes what is past keeping in one table; returns how many rows went.
Purge = Callable[[Connection], Awaitable[int]]


class Retention:
    def __init__(self, db: Database, purges: Mapping[str, Purge], *, every: float) -> None:
        self.db = db
        self.purges = purges
        self.every = every

    async def run(self, stop: anyio.Event) -> None:
        if not await unless_stopped(stop, self.db.wait_ready()):
            return
        while True:
            try:
                async with self.db.acquire() as con:
                    for table, purge in self.purges.items():
                        if rows := await purge(con):
                            log.info("purged", table=table, rows=rows)
            except Transient as exc:
                log.warning("purge skipped", error=str(exc))
            if not await unless_stopped(stop, anyio.sleep(self.every)):
                return


def outbox_and_inbox(settings: Settings) -> dict[str, Purge]:
    """What every service with an outbox and an inbox purges, kept as `settings` say."""
    return {
        "outbox": lambda con: outbox.purge(con, timedelta(hours=settings.outbox_retention_hours)),
        "inbox": lambda con: inbox.purge(con, timedelta(days=settings.inbox_retention_days)),
    }
