"""Helpers for the integration tests: a plain AMQP client of our own (to publish test
messages and read queues the way a third party would), actors run with a stop event
and a bounded drain, and bounded waits on conditions."""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import aio_pika
import aiormq.exceptions
import anyio
import pamqp.encode
import pamqp.exceptions
import pamqp.frame
import pamqp.header
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pamqp import commands

from gozon.amqp.broker import Broker, open_broker
from gozon.amqp.consumer import Consumer, Delivery, Handler
from gozon.amqp.topology import named_queue
from gozon.db import Database, open_database
from gozon.messages import Message, encoder, message_type
from tests.settings import TEST_SETTINGS

T = TypeVar("T")

# Every wait in these tests is bounded; this is the default bound.
WAIT = 20.0
# Connecting to PostgreSQL / RabbitMQ (and migrating) must not take longer than this.
READY = 20.0
# A stopped actor must drain and return within this (the spec's SIGTERM drain is 10 s).
DRAIN = 10.0


# This machine's broker is shared: another run may restart it under us. Our own client
# calls (not the product's) wait that out, within their bound, and try again.
TRANSIENT = (OSError, aiormq.exceptions.ChannelInvalidStateError, anyio.BrokenResourceError, anyio.EndOfStream)
RETRY_FOR = 30.0


async def retrying(operation: Callable[[], Awaitable[T]], what: str) -> T:
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await operation()
        except TRANSIENT as exc:
            if time.monotonic() > deadline:
                raise AssertionError(f"RabbitMQ unreachable for {RETRY_FOR}s while trying to {what}") from exc
            await anyio.sleep(0.5)


@asynccontextmanager
async def amqp_channel() -> AsyncIterator[AbstractChannel]:
    """A confirming channel on a connection of its own to the test vhost."""
    with anyio.fail_after(10):
        connection = await aio_pika.connect(TEST_SETTINGS.amqp_url, timeout=5)
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        yield channel
    finally:
        with anyio.move_on_after(5, shield=True):
            try:
                await connection.close()
            except TRANSIENT:
                pass


def amqp_message(message: Message, *, message_id: uuid.UUID | str | None, trace_id: str = "test-trace",
                 type_: str | None = None, body: bytes | None = None) -> aio_pika.Message:
    """What a relay would publish for `message` (or an arbitrary `body` in its place)."""
    return aio_pika.Message(
        encoder.encode(message) if body is None else body,
        message_id=None if message_id is None else str(message_id),
        correlation_id=trace_id,
        type=message_type(message) if type_ is None else type_,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def publish(queue: str, *messages: aio_pika.Message, exchange: str = "") -> None:
    """Publish with confirms (to a queue through the default exchange, or to `exchange`)."""
    async def attempt() -> None:
        async with amqp_channel() as channel:
            target = channel.default_exchange if exchange == "" else await channel.get_exchange(exchange, ensure=False)
            with anyio.fail_after(10):
                for message in messages:
                    await target.publish(message, routing_key=queue if exchange == "" else "")

    await retrying(attempt, f"publish to {queue or exchange}")


async def publish_without_message_id(queue: str, body: bytes, *, correlation_id: str, type_: str) -> None:
    """Publish a persistent message that has no message_id at all, with a confirm.

    aio-pika (aiormq) stamps a random message_id on every message it publishes, so a
    foreign producer that sends none cannot be imitated with it: this speaks AMQP 0-9-1
    itself (pamqp frames over a plain socket) to the real broker.
    """
    await publish_raw(queue, body, raw_properties(content_type="application/json", delivery_mode=2,
                                                  correlation_id=correlation_id, message_type=type_))


def raw_properties(**values: bytes | str | int | dict) -> bytes:
    """Basic properties as the wire carries them (the flag word, then each property set),
    named as pamqp names them (`message_type` for `type`). A value is either what any
    client would send (str, int, a dict for `headers`) or bytes put on the wire as they
    are: a short string's content (invalid UTF-8, NUL bytes: whatever a hostile producer
    sends, which no client library produces), or a whole field table, its length included.
    """
    properties = commands.Basic.Properties
    unknown = set(values) - set(properties.__slots__)
    assert not unknown, f"not a basic property: {unknown}"
    flags, parts = 0, []
    for name in properties.__slots__:
        if name not in values:
            continue
        value, kind = values[name], getattr(properties, f"_{name}")
        flags |= properties.flags[name]
        if kind == "shortstr":
            raw = value if isinstance(value, bytes) else str(value).encode()
            assert len(raw) < 256, f"{name}: a short string holds 255 bytes at most"
            parts.append(bytes([len(raw)]) + raw)
        elif kind == "octet":
            parts.append(struct.pack(">B", value))
        elif kind == "timestamp":
            parts.append(struct.pack(">Q", value))
        else:  # the headers table
            parts.append(value if isinstance(value, bytes) else pamqp.encode.field_table(value))
    return struct.pack(">H", flags) + b"".join(parts)


def raw_table(*fields: tuple[bytes, bytes]) -> bytes:
    """A field table from (raw key, raw typed value) pairs, e.g. (b"\\xff", b"S" + ...)."""
    content = b"".join(bytes([len(key)]) + key + value for key, value in fields)
    return struct.pack(">I", len(content)) + content


async def publish_raw(routing_key: str | bytes, body: bytes, properties: bytes, *, exchange: str = "") -> None:
    """Publish `body` with `properties` exactly as given (see `raw_properties`) under a
    confirm, to `exchange` (the default one: to the queue `routing_key`), mandatory."""
    await retrying(lambda: _publish_raw(routing_key, body, properties, exchange),
                   f"publish raw to {exchange or routing_key!r}")


class Refused(RuntimeError):
    """The broker closed the channel or connection on a raw publish, or returned it."""


def _short(value: str | bytes) -> bytes:
    raw = value if isinstance(value, bytes) else value.encode()
    return bytes([len(raw)]) + raw


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


async def _publish_raw(routing_key: str | bytes, body: bytes, properties: bytes, exchange: str) -> None:
    url = urlsplit(TEST_SETTINGS.amqp_url)
    vhost = unquote(url.path[1:]) or "/"
    with anyio.fail_after(10):
        async with await anyio.connect_tcp(url.hostname or "127.0.0.1", url.port or 5672) as sock:
            buffer = b""

            async def send(frame, channel: int = 0) -> None:
                await sock.send(pamqp.frame.marshal(frame, channel))

            async def expect(kind):
                nonlocal buffer
                while True:
                    try:
                        used, _, frame = pamqp.frame.unmarshal(buffer)
                    except pamqp.exceptions.UnmarshalingException:
                        buffer += await sock.receive()
                        continue
                    buffer = buffer[used:]
                    if isinstance(frame, kind):
                        return frame
                    if getattr(frame, "name", "") in {"Connection.Close", "Channel.Close", "Basic.Return"}:
                        raise Refused(f"the broker refused the publish: {frame.name} {frame.reply_code}"
                                      f" {frame.reply_text}")

            await sock.send(pamqp.frame.marshal(pamqp.header.ProtocolHeader(), 0))
            await expect(commands.Connection.Start)
            await send(commands.Connection.StartOk(
                client_properties={"product": "gozon integration tests"},
                response=f"\0{unquote(url.username or 'guest')}\0{unquote(url.password or 'guest')}"))
            tune = await expect(commands.Connection.Tune)
            await send(commands.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max, heartbeat=0))
            await send(commands.Connection.Open(virtual_host=vhost))
            await expect(commands.Connection.OpenOk)
            await send(commands.Channel.Open(), 1)
            await expect(commands.Channel.OpenOk)
            await send(commands.Confirm.Select(), 1)
            await expect(commands.Confirm.SelectOk)
            # Basic.Publish (class 60, method 40), a content header and the body, encoded
            # here: pamqp would refuse a routing key or a property that is not UTF-8.
            publish = struct.pack(">HHH", 60, 40, 0) + _short(exchange) + _short(routing_key) + b"\x01"  # mandatory
            frames = [_frame(1, 1, publish), _frame(2, 1, struct.pack(">HHQ", 60, 0, len(body)) + properties)]
            room = (tune.frame_max or 131072) - 8
            frames += [_frame(3, 1, body[at:at + room]) for at in range(0, len(body), room)]
            await sock.send(b"".join(frames))
            await expect(commands.Basic.Ack)
            await send(commands.Connection.Close(reply_code=200, reply_text="done", class_id=0, method_id=0))
            await expect(commands.Connection.CloseOk)


async def drain(queue: str) -> list[AbstractIncomingMessage]:
    """Take every message now in `queue`, in queue order (acked only once all are read,
    so a connection lost midway leaves the queue as it was for the next attempt)."""
    async def attempt() -> list[AbstractIncomingMessage]:
        taken: list[AbstractIncomingMessage] = []
        async with amqp_channel() as channel:
            q = await channel.get_queue(queue, ensure=False)
            with anyio.fail_after(WAIT):
                while (message := await q.get(no_ack=False, fail=False, timeout=5)) is not None:
                    taken.append(message)
                if taken:
                    await taken[-1].ack(multiple=True)
        return taken

    return await retrying(attempt, f"drain {queue}")


async def queue_state(queue: str) -> tuple[int, int]:
    """(ready messages, consumers) of `queue`, from the queue itself (a passive declare:
    unlike `rabbitmqctl list_queues`, whose quorum-queue figures lag by seconds)."""
    async def attempt() -> tuple[int, int]:
        async with amqp_channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            result = declared.declaration_result
            return result.message_count or 0, result.consumer_count or 0

    return await retrying(attempt, f"look at {queue}")


async def ready_count(queue: str) -> int:
    """Messages ready in `queue` (not counting those delivered and not yet acked)."""
    return (await queue_state(queue))[0]


async def consumer_count(queue: str) -> int:
    return (await queue_state(queue))[1]


async def eventually(check: Callable[[], Awaitable[object]], *, timeout: float = WAIT,
                     interval: float = 0.05, what: str = "condition") -> object:
    """Await `check()` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        with anyio.fail_after(30):
            last = await check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await anyio.sleep(interval)


async def stays_empty(queue: str, *, settle: float = 1.0) -> None:
    """`queue` is empty and stays so for `settle` seconds. Called once its consumers have
    stopped and closed their channels: a delivery that was never acked would be back in
    the queue by then, so this says that every message was acked (or never arrived)."""
    deadline = time.monotonic() + settle
    while True:
        ready = await ready_count(queue)
        assert ready == 0, f"{ready} message(s) left in {queue}: a delivery was not handled and acked"
        if time.monotonic() > deadline:
            return
        await anyio.sleep(0.1)


class Counted:
    """A product message handler, counting the deliveries it finished handling (the
    consumer acks each right after) and the batches they came in."""

    def __init__(self, handle: Handler) -> None:
        self.handle = handle
        self.done = 0
        self.batches: list[int] = []

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        await self.handle(deliveries)
        self.done += len(deliveries)
        self.batches.append(len(deliveries))

    async def reached(self, count: int) -> bool:
        return self.done >= count


def consumer_of(broker: Broker, queue: str, body: type, handle: Handler, db: Database,
                workers: int = TEST_SETTINGS.inbox_workers) -> Consumer:
    """A consumer of the durable `queue`, built as supervisors/*.py build theirs (the
    settings' workers and batch; it starts once `db` is ready)."""
    return Consumer(broker, named_queue(queue), body, handle, workers=workers,
                    batch=TEST_SETTINGS.inbox_batch, ready=db.wait_ready)


class Actor(Protocol):
    async def run(self, stop: anyio.Event) -> None: ...


@asynccontextmanager
async def running(*actors: Actor) -> AsyncIterator[anyio.Event]:
    """Run `actors` until the block ends, then set their stop event and require every
    one of them to return within DRAIN seconds (an actor that crashes fails the test)."""
    stop = anyio.Event()
    ended: list[Actor] = []
    early: list[Actor] = []
    all_done = anyio.Event()

    async def run(actor: Actor) -> None:
        try:
            await actor.run(stop)
            if not stop.is_set():
                early.append(actor)
        finally:
            ended.append(actor)
            if len(ended) == len(actors):
                all_done.set()

    async with anyio.create_task_group() as tg:
        for actor in actors:
            tg.start_soon(run, actor)
        try:
            yield stop
        finally:
            stop.set()
            with anyio.move_on_after(DRAIN, shield=True):
                await all_done.wait()
            if not all_done.is_set():
                tg.cancel_scope.cancel()
                raise AssertionError(f"{len(actors) - len(ended)} actor(s) did not stop within {DRAIN}s")
    assert not early, f"actor(s) returned before they were stopped: {early}"


@asynccontextmanager
async def ready_database(dsn: str, migrations: list[str], *, pool_size: int = 20) -> AsyncIterator[Database]:
    """A gozon Database on `dsn`, connected and migrated (bounded wait)."""
    async with open_database(dsn, migrations, pool_size=pool_size) as db:
        with anyio.fail_after(READY):
            await db.wait_ready()
        yield db


@asynccontextmanager
async def ready_broker() -> AsyncIterator[Broker]:
    """A gozon Broker on the test vhost, connected with its topology declared (bounded wait)."""
    async with open_broker(TEST_SETTINGS.amqp_url) as broker:
        with anyio.fail_after(READY):
            await broker.wait_ready()
        yield broker
