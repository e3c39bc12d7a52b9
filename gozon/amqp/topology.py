"""The queues and exchanges of spec §4 (names from the wire contract) and their
idempotent declaration.

    orders_queue            quorum queue: orders outbox → payments inbox
    payment_events_fanout   fanout exchange: payments outbox → everyone
    payments_results_queue  quorum queue bound to the fanout → orders inbox
    gateway.<replica id>    quorum queue per gateway replica bound to the fanout, x-expires
    gozon.dlx               direct exchange; <queue>.dlq receives <queue>'s poison

Every queue is a quorum queue, so that on a cluster each has replicas on several nodes
(RabbitMQ's default group size: one on each node of a three-node cluster; no declare
names one, as `x-quorum-initial-group-size` would be one more argument an existing
queue must match) and survives the loss of any one node. A consumer's queue is
declared again at the start of each of its sessions, not only at connect: one deleted
under its consumer comes back with it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aio_pika
import aiormq.exceptions
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue

from gozon.messages import ORDERS_QUEUE, PAYMENT_EVENTS, PAYMENTS_RESULTS_QUEUE

log = structlog.get_logger("gozon.amqp")

DEAD_LETTERS = "gozon.dlx"
QUORUM = {"x-queue-type": "quorum"}

# Past this many redeliveries (e.g. a message that crashes its consumer every time)
# the broker dead-letters the message instead of looping on it.
DELIVERY_LIMIT = 10


def dead_letter_queue(queue: str) -> str:
    return f"{queue}.dlq"


async def declare(channel: AbstractChannel) -> None:
    """Declare every durable exchange and queue; safe to run by every process at start."""
    await _exchanges(channel)
    for name in (ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE):
        await _queue(channel, name)


async def _exchanges(channel: AbstractChannel) -> None:
    await channel.declare_exchange(DEAD_LETTERS, aio_pika.ExchangeType.DIRECT, durable=True)
    await channel.declare_exchange(PAYMENT_EVENTS, aio_pika.ExchangeType.FANOUT, durable=True)


async def _queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    """The durable queue `name` with its `.dlq`, and their bindings."""
    dlq = await channel.declare_queue(dead_letter_queue(name), durable=True, arguments=QUORUM)
    await dlq.bind(DEAD_LETTERS, routing_key=dead_letter_queue(name))
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments={
            **QUORUM,
            "x-dead-letter-exchange": DEAD_LETTERS,
            "x-dead-letter-routing-key": dead_letter_queue(name),
            "x-delivery-limit": DELIVERY_LIMIT,
        },
    )
    if name == PAYMENTS_RESULTS_QUEUE:
        await queue.bind(PAYMENT_EVENTS)
    return queue


def gateway_queue(replica_id: str, *, expires: float) -> Callable[[AbstractChannel], Awaitable[AbstractQueue]]:
    """How a gateway replica finds its own queue on the fanout, `gateway.<id>`: declared
    (bound) on every session, so results published while its connection was down wait
    there; the broker deletes it once the replica is gone `expires` seconds.

    A queue of that name with other arguments (a classic queue of an earlier Gozon, or
    another expiry) fails the declare (406, which closes the channel and so ends the
    session); the next session replaces it. What waited in it was for the WebSockets of
    a gateway process that is gone (arguments change only with a restart), whose pages
    read their orders again when they reconnect."""
    name = f"gateway.{replica_id}"
    arguments = {**QUORUM, "x-expires": int(expires * 1000)}
    stale = False

    async def declare(channel: AbstractChannel) -> AbstractQueue:
        nonlocal stale
        await _exchanges(channel)
        if stale:
            log.warning("gateway queue replaced: it had other arguments", queue=name, arguments=arguments)
            await channel.queue_delete(name)
            stale = False
        try:
            queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        except aiormq.exceptions.ChannelPreconditionFailed:
            stale = True
            raise
        await queue.bind(PAYMENT_EVENTS)
        return queue

    return declare


def named_queue(name: str) -> Callable[[AbstractChannel], Awaitable[AbstractQueue]]:
    """How a consumer finds the durable queue `name` on its channel: declared again
    (with what it needs), so that one deleted under its consumer comes back."""

    async def get(channel: AbstractChannel) -> AbstractQueue:
        await _exchanges(channel)
        return await _queue(channel, name)

    return get
