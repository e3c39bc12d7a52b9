"""Consuming a queue with a fixed number of workers: deliveries pass through a bounded
mailbox (prefetch bounds it too), each is handled and then acked — after the handler's
transaction committed. A body that cannot be decoded is dead-lettered with the reason;
a handler that finds a dependency down has the message requeued.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import aio_pika
import anyio
import msgspec
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from gozon import metrics
from gozon.amqp.broker import BROKER_DOWN
from gozon.amqp.topology import DEAD_LETTERS, dead_letter_queue
from gozon.db.database import DB_DOWN, Unavailable
from gozon.runtime import Mailbox
from gozon.runtime.retry import Retry
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.amqp")


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    message_id: uuid.UUID
    trace_id: str | None
    body: msgspec.Struct
    redelivered: bool


class Poison(Exception):
    """A message that no retry can make valid."""


def decode(message: AbstractIncomingMessage, decoder: msgspec.json.Decoder) -> Delivery:
    try:
        message_id = uuid.UUID(message.message_id or "")
    except ValueError:
        raise Poison(f"message_id is not a UUID: {message.message_id!r}") from None
    try:
        body = decoder.decode(message.body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise Poison(str(exc)) from None
    return Delivery(message_id=message_id, trace_id=message.correlation_id, body=body,
                    redelivered=message.redelivered)


async def consume(
    channel: AbstractChannel,
    queue: AbstractQueue,
    decoder: msgspec.json.Decoder,
    handle: Callable[[Delivery], Awaitable[None]],
    *,
    workers: int,
    stop: anyio.Event,
    dead_letters: bool = True,
) -> None:
    """Consume until `stop` is set, then stop the consumer, finish what arrived, return.
    Poison goes to `<queue>.dlq` with its reason, or (`dead_letters=False`, for queues
    without one) is logged and dropped."""
    mailbox: Mailbox[AbstractIncomingMessage] = Mailbox(workers * 4)

    async def on_message(message: AbstractIncomingMessage) -> None:
        try:
            await mailbox.put(message)
        except anyio.ClosedResourceError:
            await message.nack(requeue=True)

    async def work() -> None:
        async for message in mailbox:
            await _process(channel, queue.name, message, decoder, handle, dead_letters)

    async with task_group() as tg:
        for n in range(workers):
            tg.start_soon(work, name=f"{queue.name}.worker{n}")
        tag = await queue.consume(on_message)
        log.info("consuming", queue=queue.name, workers=workers)
        await stop.wait()
        with anyio.move_on_after(5, shield=True):
            await queue.cancel(tag)
        mailbox.close()


async def _process(channel: AbstractChannel, queue: str, message: AbstractIncomingMessage,
                   decoder: msgspec.json.Decoder, handle: Callable[[Delivery], Awaitable[None]],
                   dead_letters: bool) -> None:
    with structlog.contextvars.bound_contextvars(
        message_id=message.message_id, trace_id=message.correlation_id, queue=queue
    ):
        try:
            delivery = decode(message, decoder)
        except Poison as exc:
            if dead_letters:
                await _dead_letter(channel, queue, message, str(exc))
            else:
                log.error("poison message dropped", reason=str(exc))
                await _settle(message.ack)
            return
        retry = Retry("database unavailable, will retry the message", log)
        while True:
            try:
                await handle(delivery)
                break
            except (Unavailable, *DB_DOWN) as exc:
                # Keep the message and retry: it is acked only after its change committed.
                await retry.failed(exc)
        metrics.INBOX_PROCESSED.inc()
        await _settle(message.ack)


async def _dead_letter(channel: AbstractChannel, queue: str, message: AbstractIncomingMessage, reason: str) -> None:
    """Publish the body to `<queue>.dlq` with our reason (under a confirm), then ack it."""
    log.error("poison message dead-lettered", reason=reason, dlq=dead_letter_queue(queue))
    dlx = await channel.get_exchange(DEAD_LETTERS, ensure=False)
    # A message without an id gets a random one when re-published: the header keeps
    # what the original really carried.
    headers = {"x-error": reason[:1000], "x-original-queue": queue,
               "x-original-message-id": message.message_id or ""}
    with anyio.CancelScope(shield=True), anyio.fail_after(10):
        await dlx.publish(
            aio_pika.Message(
                message.body,
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                type=message.type,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers=headers,
            ),
            routing_key=dead_letter_queue(queue),
        )
    metrics.INBOX_DEAD_LETTERED.inc()
    await _settle(message.ack)


async def _settle(action: Callable[[], Awaitable[None]]) -> None:
    """Ack or reject even while being cancelled; a channel that died meanwhile means
    the broker redelivers the message, and the inbox makes that harmless."""
    with anyio.CancelScope(shield=True):
        try:
            await action()
        except BROKER_DOWN as exc:
            log.warning("could not settle the message, it will be redelivered", error=str(exc) or type(exc).__name__)
