"""Names of spec §4 and their idempotent declaration.

    orders_queue            quorum queue: orders outbox → payments inbox
    payment_events_fanout   fanout exchange: payments outbox → everyone
    payments_results_queue  quorum queue bound to the fanout → orders inbox
    gozon.dlx               direct exchange; <queue>.dlq receives <queue>'s poison
"""

from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

ORDERS_QUEUE = "orders_queue"
PAYMENT_EVENTS = "payment_events_fanout"
PAYMENTS_RESULTS_QUEUE = "payments_results_queue"
DEAD_LETTERS = "gozon.dlx"
DEFAULT_EXCHANGE = ""

# Past this many redeliveries (e.g. a message that crashes its consumer every time)
# the broker dead-letters the message instead of looping on it.
DELIVERY_LIMIT = 10


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


async def declare(channel: AbstractChannel) -> None:
    """Declare every durable exchange and queue; safe to run by every process at start."""
    dlx = await channel.declare_exchange(DEAD_LETTERS, aio_pika.ExchangeType.DIRECT, durable=True)
    fanout = await channel.declare_exchange(PAYMENT_EVENTS, aio_pika.ExchangeType.FANOUT, durable=True)
    for name in (ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE):
        dlq = await channel.declare_queue(
            dead_letter_queue(name), durable=True, arguments={"x-queue-type": "quorum"}
        )
        await dlq.bind(dlx, routing_key=dead_letter_queue(name))
        await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-queue-type": "quorum",
                "x-dead-letter-exchange": DEAD_LETTERS,
                "x-dead-letter-routing-key": dead_letter_queue(name),
                "x-delivery-limit": DELIVERY_LIMIT,
            },
        )
    results = await channel.get_queue(PAYMENTS_RESULTS_QUEUE, ensure=False)
    await results.bind(fanout)


async def declare_private_queue(channel: AbstractChannel) -> AbstractQueue:
    """A server-named exclusive queue bound to the fanout: one per gateway replica,
    gone with its connection."""
    queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
    await queue.bind(PAYMENT_EVENTS)
    return queue
