"""The service's database: a bounded asyncpg pool that connects (and creates and
migrates the database) in the background, retrying for as long as PostgreSQL is down.

Until it is ready, `acquire()` raises `DatabaseUnavailable` at once instead of hanging,
so the HTTP API answers 503 and actors wait on `wait_ready()`. Whatever PostgreSQL or the
driver raise for an outage, in `acquire()` or in the body it guards, comes out as
`DatabaseUnavailable` (see `gozon.errors`): no caller needs to know asyncpg's errors.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import anyio
import asyncpg
import structlog

from gozon.db.migrate import migrate
from gozon.errors import DatabaseUnavailable
from gozon.runtime.resource import Resource, in_background
from gozon.runtime.retry import Retry

log = structlog.get_logger("gozon.db")

# What asyncpg raises when PostgreSQL is down, restarting, unreachable or out of room:
# each is an outage to wait out, never a bug.
DOWN = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # connection refused, lost, rejected
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.InsufficientResourcesError,  # too many connections, out of memory or disk
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock: the transaction may be retried
    asyncpg.OutdatedSchemaCacheError,  # a migration changed a table under a cached plan: retry afresh
)

# What asyncpg may raise instead when the connection was lost mid-use: "cannot switch to
# state ..." (the server's FATAL came between two queries), "released back to the pool",
# or the ROLLBACK of the transaction the loss ended. An outage only then; else a bug.
_CLIENT_ERRORS = (asyncpg.InterfaceError, asyncpg.InternalClientError)

ACQUIRE_TIMEOUT = 5.0
COMMAND_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0

# For a command's own connection: down, lost mid-read, missing (no such database or
# table), refused (authentication): nothing to read.
UNREADABLE = (*DOWN, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)

Connection = asyncpg.Connection


class Database(Resource):
    def __init__(self, dsn: str, migrations: Sequence[str], *, pool_size: int = 10) -> None:
        super().__init__()
        self.dsn = dsn
        self.migrations = migrations
        self.pool_size = pool_size
        self._pool: asyncpg.Pool | None = None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A pooled connection; an outage, in acquiring or in the body, raises
        `DatabaseUnavailable`."""
        if self._pool is None:
            raise DatabaseUnavailable("the database is not ready")
        try:
            async with self._pool.acquire(timeout=ACQUIRE_TIMEOUT) as con:
                try:
                    yield con
                except Exception as exc:
                    if is_outage(exc, con):  # judged before the release, which detaches `con`
                        raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc
                    raise
        except DOWN as exc:  # acquiring or releasing
            raise DatabaseUnavailable(str(exc) or type(exc).__name__) from exc

    async def ping(self) -> bool:
        """Whether a query goes through now; the caller bounds how long it may take."""
        try:
            async with self.acquire() as con:
                await con.fetchval("SELECT 1")
        except DatabaseUnavailable:
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
                    self.dsn, min_size=1, max_size=self.pool_size, command_timeout=COMMAND_TIMEOUT,
                    reset=_nothing_to_reset,
                )
                break
            except Exception as exc:
                if not is_outage(exc):
                    raise
                await retry.failed(exc, db=_database_name(self.dsn))
        log.info("database ready", db=_database_name(self.dsn))
        self._up()

    async def close(self) -> None:
        if self._pool is not None:
            with anyio.move_on_after(5, shield=True):
                await self._pool.close()
            self._pool.terminate()


def is_outage(exc: BaseException, con: Connection | None = None) -> bool:
    """Whether `exc` means PostgreSQL is down or refused us (wait and retry), not a bug:
    one of DOWN, or an asyncpg client error on `con` lost meanwhile or caused by one."""
    if isinstance(exc, DOWN):
        return True
    if not isinstance(exc, _CLIENT_ERRORS):
        return False
    cause = exc.__cause__ or exc.__context__
    return (con is not None and _lost(con)) or (cause is not None and is_outage(cause))


def _lost(con: Connection) -> bool:
    try:
        return con.is_closed()
    except asyncpg.InterfaceError:  # asyncpg detaches a pooled connection that closed under us
        return True


async def _nothing_to_reset(con: Connection) -> None:
    """Released pool connections carry no session state: Gozon sets only `SET LOCAL`s,
    takes only transaction-scoped advisory locks, LISTENs on a connection of its own
    and opens no cursor outside a transaction. So the default reset query (`RESET ALL`,
    `UNLISTEN *`, ...) would be a round trip per release for nothing; asyncpg still
    rolls back a transaction left open."""


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


@asynccontextmanager
async def connected(dsn: str) -> AsyncIterator[Connection]:
    """One connection of a command's own to `dsn`, not retried: any failure to connect,
    in the body or to close comes out as `DatabaseUnavailable` naming the database."""
    name = _database_name(dsn)
    try:
        con = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT)
    except (*UNREADABLE, ValueError) as exc:  # ValueError: a malformed DSN
        raise unreadable(name, exc) from exc
    try:
        yield con
    except UNREADABLE as exc:
        raise unreadable(name, exc) from exc
    finally:
        try:
            await con.close(timeout=5)
        except UNREADABLE:
            con.terminate()


def unreadable(name: str, exc: BaseException) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"database {name!r}: {str(exc) or type(exc).__name__}")


def rows_affected(status: str) -> int:
    """The row count of a command status such as `DELETE 3`."""
    return int(status.rsplit(" ", 1)[-1])


def _database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))
