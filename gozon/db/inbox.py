"""The inbox table: a message id is recorded in the same transaction as the change the
message causes, so a message delivered twice changes things once."""

from __future__ import annotations

import uuid

import asyncpg

from gozon import metrics


async def record(con: asyncpg.Connection, message_id: uuid.UUID, message_type: str) -> bool:
    """Record `message_id` in the caller's transaction; False if it was handled before."""
    inserted = await con.fetchval(
        "INSERT INTO inbox (message_id, message_type) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        message_id, message_type,
    )
    if not inserted:
        metrics.INBOX_DUPLICATES.inc()
    return bool(inserted)
