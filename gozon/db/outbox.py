"""The outbox table: rows are appended in the caller's transaction and published by
the relay, which claims them with SKIP LOCKED so that relays never publish a row
concurrently, and marks them sent only after the broker confirmed them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import asyncpg
import msgspec

from gozon.messages import Message, encoder, message_type


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    message_id: uuid.UUID
    exchange: str
    routing_key: str
    message_type: str
    payload: str
    trace_id: str | None


async def append(con: asyncpg.Connection, message: Message, *, exchange: str,
                 routing_key: str, trace_id: str | None) -> uuid.UUID:
    """Add `message` to the outbox in the caller's transaction; its id is fixed here,
    so every re-publish carries the same message_id."""
    message_id = uuid.uuid4()
    await con.execute(
        "INSERT INTO outbox (message_id, exchange, routing_key, message_type, payload, trace_id)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        message_id, exchange, routing_key, message_type(message),
        encoder.encode(message).decode(), trace_id,
    )
    return message_id


async def claim(con: asyncpg.Connection, limit: int) -> list[Pending]:
    """Lock up to `limit` pending rows, oldest first; rows other relays hold are skipped.
    Must run inside a transaction, which holds the locks until `mark_sent` commits."""
    rows = await con.fetch(
        "SELECT id, message_id, exchange, routing_key, message_type, payload::text AS payload, trace_id"
        " FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        limit,
    )
    return [Pending(**row) for row in rows]


async def mark_sent(con: asyncpg.Connection, ids: Sequence[int]) -> None:
    await con.execute("UPDATE outbox SET sent_at = now() WHERE id = any($1::bigint[])", list(ids))


async def backlog(con: asyncpg.Connection) -> tuple[int, float]:
    """(pending rows, age in seconds of the oldest pending row, 0 when none)."""
    row = await con.fetchrow(
        "SELECT count(*) AS pending, coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age"
        " FROM outbox WHERE sent_at IS NULL"
    )
    return row["pending"], row["age"]
