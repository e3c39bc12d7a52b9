"""Purges what no longer needs keeping (sent outbox rows, old inbox ids, ...), once at
start and then every `every` seconds; a database that is down just skips a round."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import structlog

from gozon.db import DB_DOWN, Database, Unavailable
from gozon.runtime.stop import unless_stopped

log = structlog.get_logger("gozon.retention")


class Retention:
    def __init__(self, db: Database, statements: Sequence[str], *, every: float = 600.0) -> None:
        self.db = db
        self.statements = statements
        self.every = every

    async def run(self, stop: anyio.Event) -> None:
        if not await unless_stopped(stop, self.db.wait_ready()):
            return
        while True:
            try:
                async with self.db.acquire() as con:
                    for statement in self.statements:
                        result = await con.execute(statement)
                        if not result.endswith(" 0"):
                            log.info("purged", statement=statement.split(" WHERE")[0], result=result)
            except (Unavailable, *DB_DOWN) as exc:
                log.warning("purge skipped", error=str(exc))
            if not await unless_stopped(stop, anyio.sleep(self.every)):
                return


def outbox_and_inbox(outbox_hours: float) -> list[str]:
    """What every service purges: outbox rows sent long ago, inbox ids older than 7 days."""
    return [
        f"DELETE FROM outbox WHERE sent_at < now() - interval '{float(outbox_hours)} hours'",
        "DELETE FROM inbox WHERE received_at < now() - interval '7 days'",
    ]
