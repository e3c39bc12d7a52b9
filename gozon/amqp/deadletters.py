"""The dead-letter queues as an operator sees them (`gozon dlq`): what waits in each,
why and since when; the replay of a dead letter to the queue it came from, acked in the
dead-letter queue only once the broker confirmed the replay; and purging.

Reading never consumes for good: messages are taken with basic.get on a channel of the
command's own and left unacked, so the broker puts them back when that channel closes
(each return counts as a delivery on a quorum queue: see the README, "Dead letters").
An interruption between a replay's confirm and its ack leaves the dead letter in place:
a second replay sends it again with the same message_id, and the inbox skips it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aio_pika
import aiormq.exceptions
import anyio
import msgspec
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue

from gozon.amqp.broker import DOWN, close_channel, close_connection, connect, node_urls
from gozon.amqp.publisher import publish_messages
from gozon.amqp.topology import dead_letter_queue
from gozon.amqp.wire import header_text
from gozon.errors import BrokerUnavailable
from gozon.messages import DEFAULT_EXCHANGE, ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE

# Each dead-letter queue and the queue it takes the poison of (each .dlq is bound for
# its own queue only, so that is where its messages came from, whatever a header says).
QUEUES = {dead_letter_queue(queue): queue for queue in (ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE)}
# A listing reads at most this many messages of a queue for their reasons and ages.
READ_CAP = 1_000
# Replayed together, their confirms pipelined.
REPLAY_BATCH = 100
GET_TIMEOUT = 10.0


class NoSuchQueue(LookupError):
    """Not a dead-letter queue of ours, or not on the broker."""


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    message_id: str | None
    type: str | None
    trace_id: str | None
    content_type: str | None
    reason: str
    original_queue: str
    dead_since: datetime | None  # None: the message says nothing of when
    deliveries: int  # how often the dead-letter queue delivered it already (shown, replay interrupted)
    body: bytes


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    queue: str
    count: int
    read: int  # of `count`, the messages whose reasons and ages were read
    oldest: datetime | None
    reasons: dict[str, int]


# Told of each message replayed: its message id and the queue (or exchange) it went to.
OnReplayed = Callable[[str | None, str], None]


class Replayed(msgspec.Struct, kw_only=True):
    """How a replay went (of dead letters, or of outbox rows set aside)."""

    replayed: int = 0
    # (message id, why the broker refused it for good): left where it was.
    refused: list[tuple[str | None, str]] = msgspec.field(default_factory=list)
    # The first failure that stopped the replay (what was not confirmed stays dead-lettered).
    error: BaseException | None = None


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[AbstractConnection]:
    """A connection to the first node of `url` that takes one (no retry: a command).

    Raises:
        BrokerUnavailable: no node did.
    """
    connection, _ = await connect(node_urls(url), "gozon dlq")
    try:
        yield connection
    finally:
        await close_connection(connection)


async def summary(connection: AbstractConnection, queue: str) -> Summary:
    """How many messages wait in `queue`, its oldest and their reasons with a count each
    (read from the first `READ_CAP`)."""
    async with _opened(connection, queue) as (_, dlq, count):
        letters = [letter async for _, letter in _taken(queue, dlq, min(count, READ_CAP))]
    ages = [letter.dead_since for letter in letters if letter.dead_since is not None]
    return Summary(queue=queue, count=count, read=len(letters), oldest=min(ages, default=None),
                   reasons=dict(Counter(letter.reason for letter in letters).most_common()))


async def peek(connection: AbstractConnection, queue: str, limit: int) -> list[DeadLetter]:
    """The first `limit` messages of `queue`, left in it."""
    async with _opened(connection, queue) as (_, dlq, count):
        return [letter async for _, letter in _taken(queue, dlq, min(count, limit))]


async def replay(connection: AbstractConnection, queue: str, ids: Collection[str] | None, *, dry_run: bool,
                 on_replayed: OnReplayed) -> Replayed:
    """Send the messages of `queue` (those with a message id in `ids`, or all) back to
    their original queue, each acked in `queue` after its own confirm. `on_replayed` is
    told of each once acked (with `dry_run`: of each that would be sent, sending none).
    A message the broker refuses (its queue gone) stays; a failure stops the replay."""
    done = Replayed()
    async with _opened(connection, queue) as (channel, dlq, count):
        batch: list[tuple[AbstractIncomingMessage, DeadLetter]] = []
        # Only the messages there at the start: one dead-lettered again meanwhile waits behind them.
        async for message, letter in _taken(queue, dlq, count):
            if ids is not None and letter.message_id not in ids:
                continue  # left unacked: back in its place once the channel closes
            if dry_run:
                on_replayed(letter.message_id, letter.original_queue)
                continue
            batch.append((message, letter))
            if len(batch) == REPLAY_BATCH:
                if not await _send(channel, batch, done, on_replayed):
                    return done
                batch = []
        if batch:
            await _send(channel, batch, done, on_replayed)
    return done


async def purge(connection: AbstractConnection, queue: str, ids: Collection[str] | None) -> int:
    """Delete the messages of `queue` with a message id in `ids`, or all; how many."""
    async with _opened(connection, queue) as (_, dlq, count):
        if ids is None:
            return (await dlq.purge()).message_count or 0
        purged = 0
        async for message, letter in _taken(queue, dlq, count):
            if letter.message_id in ids:
                await message.ack()
                purged += 1
        return purged


async def _send(channel: AbstractChannel, batch: list[tuple[AbstractIncomingMessage, DeadLetter]],
                done: Replayed, on_replayed: OnReplayed) -> bool:
    """Replay one batch; whether to go on."""
    published = await publish_messages(channel, [(DEFAULT_EXCHANGE, letter.original_queue, _replayed(letter))
                                                 for _, letter in batch])
    with anyio.CancelScope(shield=True):  # confirmed: the ack must not be cut short
        for position in published.confirmed:
            message, letter = batch[position]
            await message.ack()
            done.replayed += 1
            on_replayed(letter.message_id, letter.original_queue)
    done.refused += [(batch[position][1].message_id, reason) for position, reason in published.refused.items()]
    done.error = published.error
    return published.error is None


def _replayed(letter: DeadLetter) -> aio_pika.Message:
    """The message as its producer sent it: no x-error, x-death or other dead-letter headers."""
    return aio_pika.Message(letter.body, message_id=letter.message_id, correlation_id=letter.trace_id,
                            type=letter.type, content_type=letter.content_type,
                            delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


@asynccontextmanager
async def _opened(connection: AbstractConnection,
                  queue: str) -> AsyncIterator[tuple[AbstractChannel, AbstractQueue, int]]:
    """A confirming channel of its own, `queue` on it and the messages waiting in it.
    Closing the channel puts back every message taken and not acked.

    Raises:
        NoSuchQueue: `queue` is not a dead-letter queue, or not on the broker.
        BrokerUnavailable: the broker went away or closed the channel.
    """
    if queue not in QUEUES:
        raise NoSuchQueue(f"not a dead-letter queue: {queue!r}")
    async with publishing(connection) as channel:
        try:
            declared = await channel.declare_queue(queue, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            raise NoSuchQueue(f"queue {queue!r} does not exist on the broker") from None
        yield channel, declared, declared.declaration_result.message_count or 0


@asynccontextmanager
async def publishing(connection: AbstractConnection) -> AsyncIterator[AbstractChannel]:
    """A confirming channel of its own on `connection` (what `publish_messages` needs),
    closed on exit.

    Raises:
        BrokerUnavailable: the broker went away or closed the channel.
    """
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield channel
        finally:
            await close_channel(channel)
    except (*DOWN, aiormq.exceptions.ChannelClosed) as exc:
        raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc


async def _taken(queue: str, dlq: AbstractQueue,
                 most: int) -> AsyncIterator[tuple[AbstractIncomingMessage, DeadLetter]]:
    """Up to `most` messages of `dlq`, each taken unacked."""
    for _ in range(most):
        with anyio.fail_after(GET_TIMEOUT):
            message = await dlq.get(no_ack=False, fail=False, timeout=GET_TIMEOUT)
        if message is None:
            return
        yield message, _letter_of(queue, message)


def _letter_of(queue: str, message: AbstractIncomingMessage) -> DeadLetter:
    """What a message in the dead-letter queue `queue` says of itself. Ours carry the
    reason (`x-error`) and their time (`timestamp`); the broker's own (past the delivery
    limit) its `x-death` record."""
    headers = message.headers if isinstance(message.headers, dict) else {}
    deaths = headers.get("x-death")
    death = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
    if "x-error" in headers:
        reason = header_text(headers["x-error"])
    elif death:
        reason = f"broker: {header_text(death.get('reason'))}"
    else:
        reason = "unknown"
    when = message.timestamp or death.get("time")
    deliveries = headers.get("x-delivery-count")
    return DeadLetter(
        message_id=message.message_id, type=message.type, trace_id=message.correlation_id,
        content_type=message.content_type, reason=reason, original_queue=QUEUES[queue],
        dead_since=_aware(when) if isinstance(when, datetime) else None,
        deliveries=deliveries if isinstance(deliveries, int) else 0, body=message.body,
    )


def _aware(when: datetime) -> datetime:
    # AMQP timestamps are seconds since the epoch, decoded without a zone: UTC.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

