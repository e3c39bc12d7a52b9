"""Consuming a queue: the whole path of a delivery, from the broker to its ack.

    queue → bounded mailbox → N workers: take what waits (up to a batch) → decode →
    handler (commits the batch's changes in one transaction) → ack each

A worker never waits for company: under light load a batch is one message, under
heavy load batches grow by themselves. Everything a message carries is untrusted and
checked before use: a body, message id or `type` no retry can make valid, or properties
the client could not decode as sent (marked by `wire`, which keeps them from killing the
connection) are `Poison`, as is what the handler finds wrong; poison goes to
`<queue>.dlq` with its reason, then is acked; a `correlation_id` that is not a trace id
is replaced by a fresh one. A handler that finds a dependency down (`Transient`) has its batch kept
and retried with backoff, acked only once its changes committed; a drain leaves it
unacked, so the broker redelivers it. Any other failure of a batch is retried message
by message, so one bad message never fails the others; alone, a message whose handling
keeps failing (a bug) is tried `ATTEMPTS` times, then dead-lettered with the error as
its reason: no single message stops a consumer. A lost connection, a channel the broker
closed or a consumer it cancelled (the queue deleted) ends the session, and the actor
opens the next (declaring its queue again) once the broker is back; `consuming` says
whether it consumes now.
"""

from __future__ import annotations

import typing
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Generic, TypeVar

import aio_pika
import anyio
import msgspec
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from gozon import metrics, tracing
from gozon.amqp.broker import DOWN, Broker
from gozon.amqp.topology import DEAD_LETTERS, dead_letter_queue
from gozon.amqp.wire import UNDECODABLE, header_text
from gozon.errors import Poison, Transient
from gozon.runtime import Backoff, Mailbox
from gozon.runtime.retry import Retry
from gozon.runtime.stop import unless_stopped
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.amqp")

# How often a message whose handling fails (not for an outage) is tried before it is
# dead-lettered, and the pauses between the tries.
ATTEMPTS = 3
BUG_BACKOFF = Backoff(initial=0.1, cap=1.0)

T = TypeVar("T")

# Finds the queue to consume on a session's channel (see `topology`).
QueueOf = Callable[[AbstractChannel], Awaitable[AbstractQueue]]


class Delivery(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    """A decoded message: its body and the properties a handler may use."""

    message_id: uuid.UUID
    trace_id: str | None
    body: T
    redelivered: bool


# Handles a batch of deliveries: commits all their changes, or raises.
Handler = Callable[[Sequence[Delivery[T]]], Awaitable[None]]


class Consumer(Generic[T]):
    """The consumer actor: consumes one queue for as long as the process runs,
    re-opening its channel after the broker comes back.

    Args:
        body: the message type; a body that does not decode to it is poison.
        batch: the most deliveries handed to the handler at once.
        ready: awaited before consuming (e.g. the database the handler needs).
        dead_letters: False for a queue without a `.dlq`, whose poison is logged and dropped.
    """

    def __init__(self, broker: Broker, queue: QueueOf, body: type[T], handle: Handler[T], *, workers: int,
                 batch: int = 1, ready: Callable[[], Awaitable[None]] | None = None,
                 dead_letters: bool = True) -> None:
        self.broker = broker
        self.batch = batch
        self.queue = queue
        self.decoder = msgspec.json.Decoder(body)
        self.types = _tags(body)
        self.handle = handle
        self.workers = workers
        self.ready = ready
        self.dead_letters = dead_letters
        # True while the broker delivers to us: readiness (/readyz) is false without it.
        self.consuming = False

    async def run(self, stop: anyio.Event) -> None:
        if self.ready is not None and not await unless_stopped(stop, self.ready()):
            return
        retry = Retry("consumer paused", log)
        while await unless_stopped(stop, self.broker.wait_ready()):
            try:
                async with self.broker.session(prefetch=self.workers * self.batch * 2) as channel:
                    retry.succeeded()
                    await self._consume(channel, await self.queue(channel), stop)
            except DOWN as exc:
                await retry.failed(exc, stop)

    async def _consume(self, channel: AbstractChannel, queue: AbstractQueue, stop: anyio.Event) -> None:
        """Consume until `stop` is set, then cancel the consumer, finish what arrived, return."""
        acks = _Acks()
        with Mailbox[AbstractIncomingMessage](self.workers * self.batch * 2) as mailbox:

            async def on_message(message: AbstractIncomingMessage) -> None:
                acks.received(message)
                try:
                    await mailbox.put(message)
                except anyio.ClosedResourceError:
                    acks.gone(message)
                    await message.nack(requeue=True)

            async def work() -> None:
                async for message in mailbox:
                    await self._process(channel, queue.name, [message, *mailbox.waiting(self.batch - 1)],
                                        acks, stop)

            async with task_group() as tg:
                for n in range(self.workers):
                    tg.start_soon(work, name=f"{queue.name}.worker{n}")
                tag = await queue.consume(on_message)
                log.info("consuming", queue=queue.name, workers=self.workers)
                if self.dead_letters:  # counted from 0 (see gozon.metrics)
                    metrics.INBOX_DEAD_LETTERED.labels(queue=queue.name)
                self.consuming = True
                try:
                    await stop.wait()
                finally:
                    # Drained, or the session ended under us (see `Broker.session`).
                    self.consuming = False
                with anyio.move_on_after(5, shield=True):
                    await queue.cancel(tag)
                mailbox.close()

    async def _process(self, channel: AbstractChannel, queue: str, messages: list[AbstractIncomingMessage],
                       acks: _Acks, stop: anyio.Event) -> None:
        batch = []
        for message in messages:
            try:
                batch.append((message, self._decode(message)))
            except Poison as exc:
                await self._reject(channel, queue, message, str(exc), acks)
        if batch:
            await self._handle(channel, queue, batch, acks, stop)

    async def _handle(self, channel: AbstractChannel, queue: str,
                      batch: list[tuple[AbstractIncomingMessage, Delivery[T]]], acks: _Acks,
                      stop: anyio.Event) -> None:
        retry = Retry("dependency unavailable, will retry the messages", log)
        failures = 0
        while True:
            try:
                await self.handle([delivery for _, delivery in batch])
                break
            except Transient as exc:
                # Kept and retried: they are acked only after their changes committed.
                if not await retry.failed(exc, stop, messages=len(batch)):
                    return  # draining: left unacked, the broker redelivers them
            except Exception as exc:
                if len(batch) > 1:
                    log.warning("batch failed, handling its messages one by one", messages=len(batch),
                                error=f"{type(exc).__name__}: {exc}")
                    for one in batch:
                        await self._handle(channel, queue, [one], acks, stop)
                    return
                failures += 1
                if isinstance(exc, Poison) or failures >= ATTEMPTS:
                    reason = str(exc) if isinstance(exc, Poison) else f"{type(exc).__name__}: {exc}"
                    await self._reject(channel, queue, batch[0][0], reason, acks, exc)
                    return
                log.warning("message failed, trying it again", attempt=failures, message_id=batch[0][0].message_id,
                            error=f"{type(exc).__name__}: {exc}")
                if not await unless_stopped(stop, anyio.sleep(BUG_BACKOFF.delay(failures - 1))):
                    return
        metrics.INBOX_PROCESSED.inc(len(batch))
        await acks.ack([message for message, _ in batch])

    def _decode(self, message: AbstractIncomingMessage) -> Delivery[T]:
        headers = message.headers if isinstance(message.headers, dict) else {}
        if UNDECODABLE in headers:
            raise Poison(f"properties the client cannot decode: {header_text(headers[UNDECODABLE])}")
        try:
            message_id = uuid.UUID(message.message_id or "")
        except ValueError:
            raise Poison(f"message_id is not a UUID: {_shown(message.message_id)}") from None
        if message.type is not None and self.types and message.type not in self.types:
            raise Poison(f"type {_shown(message.type)} is not {' or '.join(sorted(self.types))}")
        try:
            body = self.decoder.decode(message.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise Poison(str(exc)[:500]) from None
        trace_id = tracing.trusted(message.correlation_id)
        if trace_id is None:
            trace_id = tracing.new_trace_id()
            log.warning("untrusted trace id replaced", message_id=str(message_id), trace_id=trace_id,
                        untrusted=_shown(message.correlation_id))
        return Delivery(message_id=message_id, trace_id=trace_id, body=body, redelivered=message.redelivered)

    async def _reject(self, channel: AbstractChannel, queue: str, message: AbstractIncomingMessage,
                      reason: str, acks: _Acks, error: BaseException | None = None) -> None:
        # A bug's traceback is logged; a poison message's reason says it all.
        exc_info = None if error is None or isinstance(error, Poison) else error
        with structlog.contextvars.bound_contextvars(message_id=_shown(message.message_id),
                                                    trace_id=tracing.trusted(message.correlation_id), queue=queue):
            if self.dead_letters:
                log.error("poison message dead-lettered", reason=reason, dlq=dead_letter_queue(queue),
                          exc_info=exc_info)
                await dead_letter(channel, queue, message, reason)
            else:
                log.error("poison message dropped", reason=reason, exc_info=exc_info)
            await acks.ack([message])


async def dead_letter(channel: AbstractChannel, queue: str, message: AbstractIncomingMessage, reason: str) -> None:
    """Publish the body to `<queue>.dlq` with our reason and the time (`timestamp`: how
    old `gozon dlq` says it is), under a confirm (the caller acks the original once this
    returned)."""
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
                timestamp=datetime.now(UTC),
            ),
            routing_key=dead_letter_queue(queue),
        )
    metrics.INBOX_DEAD_LETTERED.labels(queue=queue).inc()


def _tags(body: type) -> frozenset[str]:
    """The message types (`type` property, the body's tag) a body of type `body` has."""
    members = typing.get_args(body) or (body,)
    return frozenset(tag for member in members
                     if isinstance(tag := getattr(getattr(member, "__struct_config__", None), "tag", None), str))


def _shown(value: object) -> str | None:
    """An untrusted property as it may be logged or told: as it came if it is a short
    printable id, else quoted with its unprintable characters escaped, and cut short."""
    if value is None or tracing.trusted(str(value)) == value:
        return value  # type: ignore[return-value]
    shown = repr(value)
    return shown if len(shown) <= 100 else f"{shown[:100]}…"


class _Acks:
    """The deliveries of one channel not settled yet. A batch whose tags are the lowest
    outstanding is acked with one frame (`multiple`: every tag up to its highest), any
    other message by message."""

    def __init__(self) -> None:
        self._open: set[int] = set()

    def received(self, message: AbstractIncomingMessage) -> None:
        self._open.add(message.delivery_tag)

    def gone(self, message: AbstractIncomingMessage) -> None:
        self._open.discard(message.delivery_tag)

    async def ack(self, messages: Sequence[AbstractIncomingMessage]) -> None:
        self._open.difference_update(m.delivery_tag for m in messages)
        last = max(messages, key=lambda m: m.delivery_tag)
        if len(messages) > 1 and all(tag > last.delivery_tag for tag in self._open):
            await _settle(lambda: last.ack(multiple=True))
        else:
            for message in messages:
                await _settle(message.ack)


async def _settle(action: Callable[[], Awaitable[None]]) -> None:
    """Ack or reject even while being cancelled; a channel that died meanwhile means
    the broker redelivers the message, and the inbox makes that harmless."""
    with anyio.CancelScope(shield=True):
        try:
            await action()
        except DOWN as exc:
            log.warning("could not settle the message, it will be redelivered", error=str(exc) or type(exc).__name__)
