"""Outbox rows the relay set aside, published again at an operator's word (`gozon dlq
replay orders.outbox`) the way the relay publishes: claimed in a transaction, sent under
confirms, marked sent only once confirmed, in that transaction; a row the broker
refuses again stays aside with the new reason. Killed between a confirm and the commit,
a row stays aside and goes out again at the next replay with its message id, which the
receiving inbox skips."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import anyio

from gozon.actors.relay import destination
from gozon.amqp.broker import Channel
from gozon.amqp.deadletters import OnReplayed, Replayed
from gozon.amqp.publisher import publish_confirmed
from gozon.db import outbox
from gozon.db.database import Connection

# Rows claimed, published and committed together.
BATCH = 100


async def replay(con: Connection, channel: Channel, message_ids: Sequence[uuid.UUID] | None, *, dry_run: bool,
                 on_replayed: OnReplayed) -> Replayed:
    """Publish the rows set aside (with a message id in `message_ids`, or all), oldest
    first; `on_replayed` is told of each once marked sent (with `dry_run`: of each that
    would be sent, sending none). A failure to publish stops the replay."""
    done = Replayed()
    last = 0  # rows refused again stay aside: each run goes past them, never round again
    while True:
        async with con.transaction():
            rows = await outbox.claim_set_aside(con, after=last, message_ids=message_ids, limit=BATCH)
            if not rows:
                return done
            last = rows[-1].id
            if dry_run:
                for row in rows:
                    on_replayed(str(row.envelope.message_id), destination(row.envelope))
                continue
            published = await publish_confirmed(channel, [row.envelope for row in rows])
            with anyio.CancelScope(shield=True):  # the broker answered: record it
                await outbox.mark_sent(con, [rows[i].id for i in published.confirmed])
                await outbox.set_aside(con, [(rows[i].id, reason) for i, reason in published.refused.items()])
        for i in published.confirmed:
            done.replayed += 1
            on_replayed(str(rows[i].envelope.message_id), destination(rows[i].envelope))
        done.refused += [(str(rows[i].envelope.message_id), reason) for i, reason in published.refused.items()]
        if published.error is not None:
            done.error = published.error
            return done
