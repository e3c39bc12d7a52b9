"""The inbox table: a message id is recorded in the same transaction as the change the
message causes, so a message delivered twice changes things once."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from gozon import metrics
from gozon.db.database import Connection, rows_affected


async def record_all(con: Connection, message_ids: Sequence[uuid.UUID], message_type: str) -> set[uuid.UUID]:
    """Record `message_ids` in the caller's transaction; returns those not handled before
    (an id given twice counts once)."""
    rows = await con.fetch(
        "INSERT INTO inbox (message_id, message_type) SELECT DISTINCT unnest($1::uuid[]), $2"
        " ON CONFLICT DO NOTHING RETURNING message_id",
        list(message_ids), message_type,
    )
    fresh = {row["message_id"] for row in rows}
    metrics.INBOX_DUPLICATES.inc(len(message_ids) - len(fresh))
    return fresh


async def purge(con: Connection, older_than: timedelta) -> int:
    """Forget the ids of messages received longer ago than `older_than`."""
    return rows_affected(await con.execute("DELETE FROM inbox WHERE received_at < now() - $1::interval",
                                           older_than))
