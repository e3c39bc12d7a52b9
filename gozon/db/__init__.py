"""PostgreSQL: the only package that imports asyncpg. Its outages come out as
`gozon.errors.DatabaseUnavailable`; the SQL of each service takes a `Connection`."""

import asyncpg

from gozon.db.database import Connection, Database, open_database, rows_affected

# A `SET LOCAL lock_timeout` ran out: the row is held by a transaction still running.
LockTimeout = asyncpg.LockNotAvailableError

__all__ = ["Connection", "Database", "LockTimeout", "open_database", "rows_affected"]
