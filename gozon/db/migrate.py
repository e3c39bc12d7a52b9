"""Versioned SQL migrations, applied in name order in one transaction under an
advisory lock, so that two instances starting together never race."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import asyncpg
import structlog

log = structlog.get_logger("gozon.db")

# pg_advisory_xact_lock key: any constant shared by every instance.
_LOCK = 0x60_20_4D_16

# Tables every service has: the outbox and the inbox.
COMMON = "gozon.db.migrations.common"


def _scripts(package: str) -> list[tuple[str, str]]:
    folder = resources.files(package)
    return sorted(
        (f"{package}/{entry.name}", entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


async def migrate(dsn: str, packages: Sequence[str]) -> list[str]:
    """Apply what is not applied yet from the `.sql` files of `packages`; return their names."""
    scripts = [script for package in packages for script in _scripts(package)]
    con = await asyncpg.connect(dsn, timeout=5)
    try:
        async with con.transaction():
            await con.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["name"] for row in await con.fetch("SELECT name FROM schema_migrations")}
            applied = []
            for name, sql in scripts:
                if name in done:
                    continue
                await con.execute(sql)
                await con.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied.append(name)
    finally:
        await con.close()
    for name in applied:
        log.info("migration applied", migration=name)
    return applied
