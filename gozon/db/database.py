"""The service's database: a bounded asyncpg pool that connects (and creates and
migrates the database) in the background, retrying for as long as PostgreSQL is down.

Until it is ready, `acquire()` raises `Unavailable` at once instead of hanging, so the
HTTP API answers 503 and actors wait on `wait_ready()`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import structlog

from gozon.db.migrate import migrate
from gozon.runtime.resource import Resource, in_background
from gozon.runtime.retry import Retry

log = structlog.get_logger("gozon.db")

# PostgreSQL down, restarting or unreachable: wait and retry, never a crash.
DB_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
)

ACQUIRE_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0


class Unavailable(Exception):
    """The database is not reachable (yet)."""


class Database(Resource):
    def __init__(self, dsn: str, migrations: Sequence[str], *, pool_size: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.migrations = migrations
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        if self._pool is None:
            raise Unavailable("the database is not ready")
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as con:
                yield con
        except DB_DOWN as exc:
            raise Unavailable(str(exc) or type(exc).__name__) from exc

    async def ping(self) -> bool:
        """Whether a query goes through now; the caller bounds how long it may take."""
        try:
            async with self.acquire() as con:
                await con.fetchval("SELECT 1")
        except Unavailable:
            return False
        return True

    async def connect_forever(self) -> None:
        """Create the database if missing, migrate, open the pool; retry until done."""
        retry = Retry("database unavailable, retrying", log)
        while True:
            try:
                await ensure_database(self.dsn)
                await migrate(self.dsn, self.migrations)
                self._pool = await asyncpg.create_pool(
                    self.dsn, min_size=1, max_size=self.pool_size, command_timeout=COMMAND_TIMEOUT
                )
                break
            except DB_DOWN as exc:
                await retry.failed(exc, db=_database_name(self.dsn))
        log.info("database ready", db=_database_name(self.dsn))
        self._up()

    async def close(self) -> None:
        if self._pool is not None:
            with anyio.move_on_after(5, shield=True):
                await self._pool.close()
            self._pool.terminate()


def open_database(dsn: str, migrations: Sequence[str], *,
                  pool_size: int = 10) -> AbstractAsyncContextManager[Database]:
    """A database that connects in the background and closes its pool on exit."""
    return in_background(Database(dsn, migrations, pool_size=pool_size))


async def ensure_database(dsn: str) -> None:
    """Create the database named in `dsn` if it does not exist (needs CREATEDB)."""
    try:
        con = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        name = _database_name(dsn)
        admin = await asyncpg.connect(_with_database(dsn, "postgres"), timeout=5)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            log.info("database created", db=name)
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()
    else:
        await con.close()


def _database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))
