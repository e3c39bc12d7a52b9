"""The outbox table: rows are appended in the caller's transaction and published by
the relay, which claims them with SKIP LOCKED so that relays never publish a row
concurrently, and marks them sent only after the broker confirmed them."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import anyio
import msgspec

from gozon import metrics
from gozon.db.database import Connection, Database, rows_affected
from gozon.errors import DatabaseUnavailable
from gozon.messages import Envelope, Message, envelope

# A scrape must answer promptly even when the database does not.
SCRAPE_TIMEOUT = 1.0


class Pending(msgspec.Struct, frozen=True):
    """A claimed row: its id in the table and what it carries."""

    id: int
    envelope: Envelope


async def append(con: Connection, message: Message, trace_id: str | None) -> Envelope:
    """Add `message` to the outbox in the caller's transaction, bound where the wire
    contract sends it; its message id is fixed here, so every re-publish carries it."""
    return (await add(con, [envelope(message, trace_id)]))[0]


async def append_all(con: Connection, messages: Sequence[tuple[Message, str | None]]) -> list[Envelope]:
    """`append` for several (message, trace id) pairs, in one statement (one NOTIFY)."""
    return await add(con, [envelope(message, trace_id) for message, trace_id in messages])


async def add(con: Connection, envelopes: Sequence[Envelope]) -> list[Envelope]:
    """Add envelopes as they are, in the caller's transaction, in one statement."""
    if envelopes:
        await con.execute(
            "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload, trace_id)"
            " SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::text[])",
            *map(list, zip(*((e.message_id, e.exchange, e.routing_key, e.message_type, e.body.decode(), e.trace_id)
                             for e in envelopes), strict=True)),
        )
    return list(envelopes)


async def claim(con: Connection, limit: int) -> list[Pending]:
    """Lock up to `limit` pending rows, oldest first; rows other relays hold are skipped.
    Must run inside a transaction, which holds the locks until `mark_sent` commits."""
    rows = await con.fetch(
        "SELECT id, message_id, exchange, routing_key, message_type, payload::text AS payload, trace_id"
        " FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [Pending(row["id"], Envelope(
        message_id=row["message_id"], message_type=row["message_type"], trace_id=row["trace_id"],
        exchange=row["exchange"], routing_key=row["routing_key"], body=row["payload"].encode(),
    )) for row in rows]


async def mark_sent(con: Connection, ids: Sequence[int]) -> None:
    await con.execute("UPDATE outbox SET sent_at = now() WHERE id = any($1::bigint[])", list(ids))


async def purge(con: Connection, older_than: timedelta) -> int:
    """Delete the rows sent longer ago than `older_than`."""
    return rows_affected(await con.execute("DELETE FROM outbox WHERE sent_at < now() - $1::interval", older_than))


async def backlog(con: Connection) -> tuple[int, float]:
    """(pending rows, age in seconds of the oldest pending row, 0 when none)."""
    row = await con.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age"
        " FROM outbox WHERE sent_at IS NULL"
    )
    return row["pending"], row["age"]


def backlog_gauges(db: Database) -> Callable[[], Awaitable[None]]:
    """A scrape hook that reads the outbox backlog of `db` into its gauges."""

    async def refresh() -> None:
        # Not a number while the database cannot say: a stale figure would mislead.
        pending, age = math.nan, math.nan
        with anyio.move_on_after(SCRAPE_TIMEOUT):
            try:
                async with db.acquire() as con:
                    pending, age = await backlog(con)
            except DatabaseUnavailable:
                pass  # the rest of the page is still worth serving
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(age)

    return refresh
