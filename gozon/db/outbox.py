"""The outbox table: rows are appended in the caller's transaction and published by
the relay, which claims them with SKIP LOCKED so that relays never publish a row
concurrently, and marks them sent only after the broker confirmed them. A row the
broker refuses for good is set aside with its reason instead: it is no longer pending
(the rows behind it flow), and it is kept, never purged, until an operator acts on it.

    pending     sent_at IS NULL AND set_aside_at IS NULL
    sent        sent_at IS NOT NULL            purged after the retention period
    set aside   set_aside_at IS NOT NULL       listed by `set_aside_rows`; `gozon dlq` replays
                                               (`claim_set_aside`, then as the relay) or deletes them"""

from __future__ import annotations

import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

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


class SetAside(msgspec.Struct, frozen=True):
    """A row set aside: what it carries, when and why the broker refused it."""

    id: int
    envelope: Envelope
    set_aside_at: datetime
    reason: str


_COLUMNS = "id, message_id, exchange, routing_key, message_type, payload::text AS payload, trace_id"


def _envelope(row: Mapping[str, Any]) -> Envelope:
    return Envelope(
        message_id=row["message_id"], message_type=row["message_type"], trace_id=row["trace_id"],
        exchange=row["exchange"], routing_key=row["routing_key"], body=row["payload"].encode(),
    )


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
        f"SELECT {_COLUMNS} FROM outbox WHERE sent_at IS NULL AND set_aside_at IS NULL"
        " ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [Pending(row["id"], _envelope(row)) for row in rows]


async def mark_sent(con: Connection, ids: Sequence[int]) -> None:
    """Mark rows sent; one that was set aside (and replayed) is no longer."""
    await con.execute("UPDATE outbox SET sent_at = now(), set_aside_at = NULL, set_aside_reason = NULL"
                      " WHERE id = any($1::bigint[])", list(ids))


async def set_aside(con: Connection, refused: Sequence[tuple[int, str]]) -> None:
    """Set the claimed rows `refused` ((id, reason) pairs) aside, in the claiming transaction."""
    if refused:
        await con.execute(
            "UPDATE outbox SET set_aside_at = now(), set_aside_reason = r.reason"
            " FROM unnest($1::bigint[], $2::text[]) AS r(id, reason) WHERE outbox.id = r.id",
            *map(list, zip(*refused, strict=True)),
        )


async def set_aside_rows(con: Connection, limit: int | None = None) -> list[SetAside]:
    """The rows set aside, oldest first (every one, or the first `limit`)."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS}, set_aside_at, set_aside_reason FROM outbox"
        " WHERE set_aside_at IS NOT NULL ORDER BY id LIMIT $1", limit
    )
    return [SetAside(row["id"], _envelope(row), row["set_aside_at"], row["set_aside_reason"]) for row in rows]


async def set_aside_reasons(con: Connection) -> list[tuple[str, int, datetime]]:
    """(reason, rows, the oldest's set_aside_at) of the rows set aside, most rows first."""
    rows = await con.fetch(
        "SELECT set_aside_reason, count(*), min(set_aside_at) FROM outbox WHERE set_aside_at IS NOT NULL"
        " GROUP BY set_aside_reason ORDER BY count(*) DESC, set_aside_reason"
    )
    return [tuple(row) for row in rows]


async def claim_set_aside(con: Connection, *, after: int, message_ids: Sequence[uuid.UUID] | None,
                          limit: int) -> list[Pending]:
    """Lock up to `limit` rows set aside (with a message id in `message_ids`, or any)
    past the row `after`, oldest first, in the caller's transaction; `mark_sent` or
    `set_aside` them before it commits."""
    rows = await con.fetch(
        f"SELECT {_COLUMNS} FROM outbox WHERE set_aside_at IS NOT NULL AND id > $1"
        " AND ($2::uuid[] IS NULL OR message_id = any($2::uuid[])) ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
        after, None if message_ids is None else list(message_ids), limit,
    )
    return [Pending(row["id"], _envelope(row)) for row in rows]


async def delete_set_aside(con: Connection, message_ids: Sequence[uuid.UUID] | None) -> int:
    """Delete the rows set aside (with a message id in `message_ids`, or all); how many."""
    return rows_affected(await con.execute(
        "DELETE FROM outbox WHERE set_aside_at IS NOT NULL AND ($1::uuid[] IS NULL OR message_id = any($1::uuid[]))",
        None if message_ids is None else list(message_ids),
    ))


async def purge(con: Connection, older_than: timedelta) -> int:
    """Delete the rows sent longer ago than `older_than` (a row set aside was never sent)."""
    return rows_affected(await con.execute("DELETE FROM outbox WHERE sent_at < now() - $1::interval", older_than))


async def backlog(con: Connection) -> tuple[int, float]:
    """(pending rows, age in seconds of the oldest pending row, 0 when none)."""
    row = await con.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age"
        " FROM outbox WHERE sent_at IS NULL AND set_aside_at IS NULL"
    )
    return row["pending"], row["age"]


async def set_aside_count(con: Connection) -> int:
    return await con.fetchval("SELECT count(*) FROM outbox WHERE set_aside_at IS NOT NULL")


def backlog_gauges(db: Database) -> Callable[[], Awaitable[None]]:
    """A scrape hook that reads the outbox backlog (and rows set aside) of `db` into its gauges."""

    async def refresh() -> None:
        # Not a number while the database cannot say: a stale figure would mislead.
        pending, age, aside = math.nan, math.nan, math.nan
        with anyio.move_on_after(SCRAPE_TIMEOUT):
            try:
                async with db.acquire() as con:
                    pending, age = await backlog(con)
                    aside = await set_aside_count(con)
            except DatabaseUnavailable:
                pass  # the rest of the page is still worth serving
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(age)
        metrics.OUTBOX_SET_ASIDE_ROWS.set(aside)

    return refresh
