"""Confirmed publishing: persistent messages carrying their own message_id, trace id
and type, sent together on one channel so their confirms pipeline; a message counts as
published only once the broker acked it (an unroutable one raises, it is not acked)."""

from __future__ import annotations

from collections.abc import Sequence

import aio_pika
import anyio
import structlog
from aio_pika.abc import AbstractChannel, AbstractExchange

from gozon.db.outbox import Pending

log = structlog.get_logger("gozon.amqp")

CONFIRM_TIMEOUT = 10.0


def to_amqp(row: Pending) -> aio_pika.Message:
    return aio_pika.Message(
        row.payload.encode(),
        message_id=str(row.message_id),
        correlation_id=row.trace_id,
        type=row.message_type,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish_confirmed(channel: AbstractChannel, rows: Sequence[Pending]) -> tuple[list[int], BaseException | None]:
    """Publish `rows` at once and wait for their confirms.

    Returns the ids of the rows the broker confirmed and the first error seen, if any;
    a row that was not confirmed stays pending and goes out again later.
    """
    exchanges: dict[str, AbstractExchange] = {}
    for name in {row.exchange for row in rows}:
        exchanges[name] = channel.default_exchange if name == "" else await channel.get_exchange(name, ensure=False)

    confirmed: list[int] = []
    errors: list[BaseException] = []

    async def publish(row: Pending) -> None:
        try:
            with anyio.fail_after(CONFIRM_TIMEOUT):
                await exchanges[row.exchange].publish(to_amqp(row), routing_key=row.routing_key)
        except Exception as exc:  # reported to the caller, who keeps the row pending
            errors.append(exc)
        else:
            confirmed.append(row.id)

    async with anyio.create_task_group() as tg:
        for row in rows:
            tg.start_soon(publish, row)
    return sorted(confirmed), (errors[0] if errors else None)
