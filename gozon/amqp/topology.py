"""The queues and exchanges of spec §4 (names from the wire contract) and their
idempotent declaration.

    orders_queue            quorum queue: orders outbox → payments inbox
    payment_events_fanout   fanout exchange: payments outbox → everyone
    payments_results_queue  quorum queue bound to the fanout → orders inbox
    gateway.<replica id>    durable queue per gateway replica bound to the fanout, x-expires
    gozon.dlx               direct exchange; <queue>.dlq receives <queue>'s poison
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from gozon.messages import ORDERS_QUEUE, PAYMENT_EVENTS, PAYMENTS_RESULTS_QUEUE

DEAD_LETTERS = "gozon.dlx"

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


def gateway_queue(replica_id: str, *, expires: float) -> Callable[[AbstractChannel], Awaitable[AbstractQueue]]:
    """How a gateway replica finds its own durable queue on the fanout, `gateway.<id>`:
    declared (bound) on every session, so results published while its connection was
    down wait there; the broker deletes it once the replica is gone `expires` seconds."""

    async def declare(channel: AbstractChannel) -> AbstractQueue:
        queue = await channel.declare_queue(f"gateway.{replica_id}", durable=True,
                                            arguments={"x-expires": int(expires * 1000)})
        await queue.bind(PAYMENT_EVENTS)
        return queue

    return declare


def named_queue(name: str) -> Callable[[AbstractChannel], Awaitable[AbstractQueue]]:
    """How a consumer finds the durable queue `name` on its channel (declared at connect)."""

    async def get(channel: AbstractChannel) -> AbstractQueue:
        return await channel.get_queue(name, ensure=False)

    return get
