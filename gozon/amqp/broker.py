"""The process's AMQP connection: connects (and declares the topology) in the
background, retrying while RabbitMQ is down, and reconnects after a loss.

The URL may list several nodes of one cluster (`node_urls`): they are tried in turn,
from the first listed, and after a loss from the one after the node that was lost, so
a process moves to a live node by itself.

Actors open a `session()`: a channel whose body is cancelled the moment the connection
drops, the broker closes the channel (a channel error) or cancels a consumer on it (its
queue deleted), after which the session raises `BrokerUnavailable`; the actor then opens
the next session, which waits for the reconnect. Recovery is here, in plain sight,
instead of in aio-pika's robust classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import aiormq.exceptions
import anyio
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

from gozon.amqp import topology, wire
from gozon.errors import BrokerUnavailable
from gozon.runtime.resource import Resource, in_background
from gozon.runtime.retry import Retry
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.amqp")

# A channel of a session, for the code that publishes and consumes on it.
Channel = AbstractChannel

# What aio-pika raises when the broker went away or refused us: an outage to wait out
# (as `BrokerUnavailable`), never a crash. Also, once a connection or channel has died
# (its frame reader failed: `ProtocolSyntaxError`), what every ack, publish or declare
# still in flight on it gets: `ChannelInvalidStateError` ("channel closed").
DOWN = (OSError, TimeoutError, aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ProtocolSyntaxError,
        aiormq.exceptions.ChannelInvalidStateError, BrokerUnavailable)


# Seconds one node has to accept a connection before the next one is tried.
CONNECT_TIMEOUT = 5

# Refused by a broker that is up (e.g. its vhost is not there yet, or a declare it
# will not take): like a broker that is down, waited out, not a crash.
REFUSED = (*DOWN, aiormq.exceptions.AMQPError)


def node_urls(url: str) -> list[str]:
    """The nodes of `GOZON_AMQP_URL`: one URL, or several nodes of one cluster separated
    by commas. An entry after the first may be `host:port` alone: it takes the first
    entry's scheme, user, password, vhost and query. (A comma in a password is `%2C`.)"""
    entries = [entry.strip() for entry in url.split(",") if entry.strip()] or [url]
    first = urlsplit(entries[0])
    credentials = first.netloc.rpartition("@")[0]

    def full(entry: str) -> str:
        if "://" in entry:
            return entry
        netloc = f"{credentials}@{entry}" if credentials else entry
        return urlunsplit((first.scheme, netloc, first.path, first.query, first.fragment))

    return [entries[0], *map(full, entries[1:])]


def node_of(url: str) -> str:
    """`host:port` of a node's URL, as the logs name it (never with its credentials)."""
    return urlsplit(url).netloc.rpartition("@")[2]


async def connect(nodes: list[str], name: str, *, first: int = 0) -> tuple[AbstractConnection, int]:
    """A connection named `name` to the first node that takes one, trying each in turn
    from `first`, and that node's index.

    Raises:
        BrokerUnavailable: no node did, saying why of each.
    """
    failures = []
    for step in range(len(nodes)):
        index = (first + step) % len(nodes)
        try:
            # Named, so that operators (and tests) tell the processes' connections apart.
            connection = await aio_pika.connect(nodes[index], timeout=CONNECT_TIMEOUT,
                                                client_properties={"connection_name": name},
                                                connection_class=wire.Connection)  # see `wire`
        except REFUSED as exc:
            failures.append((index, str(exc) or type(exc).__name__))
            continue
        return connection, index
    if len(failures) == 1:
        raise BrokerUnavailable(failures[0][1])
    raise BrokerUnavailable("; ".join(f"{node_of(nodes[i])}: {error}" for i, error in failures))


class Broker(Resource):
    def __init__(self, url: str, name: str = "gozon") -> None:
        super().__init__()
        self.nodes = node_urls(url)
        self.name = name
        self._connection: AbstractConnection | None = None
        self._lost = anyio.Event()
        self._first = 0  # the node tried first at the next connect
        self.node: str | None = None  # host:port of the node connected to, while connected

    async def connect_forever(self) -> None:
        retry = Retry("broker unavailable, retrying", log)
        while True:
            try:
                connection, index = await connect(self.nodes, self.name, first=self._first)
            except BrokerUnavailable as exc:
                await retry.failed(exc)
                continue
            self._first = index
            node = node_of(self.nodes[index])
            lost = anyio.Event()
            connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
            try:
                async with connection.channel() as channel:
                    await topology.declare(channel)
            except REFUSED as exc:
                await close_connection(connection)
                self._first = (index + 1) % len(self.nodes)  # this node cannot serve us: try another
                await retry.failed(exc, node=node)
                continue
            retry.succeeded()
            self._connection, self._lost, self.node = connection, lost, node
            self._up()
            log.info("broker connected", node=node)
            try:
                await lost.wait()
            finally:
                self._down()
                self._connection = self.node = None
                await close_connection(connection)
            # The node may be gone for good: the next connect starts with the next one.
            self._first = (index + 1) % len(self.nodes)
            log.warning("broker connection lost", node=node)

    @asynccontextmanager
    async def session(self, *, prefetch: int = 0) -> AsyncIterator[AbstractChannel]:
        """A confirming channel on the current connection (waiting for one if down).

        Raises:
            BrokerUnavailable: the connection dropped, or the broker closed the channel or
                cancelled a consumer on it, while the body ran.
        """
        await self.wait_ready()
        connection, lost_connection = self._connection, self._lost
        assert connection is not None
        # Why the broker ended this session under the body, first reason first.
        ended: list[str] = []
        broken = anyio.Event()

        def end(reason: str) -> None:
            ended.append(reason)
            broken.set()

        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            # A channel error closes the channel, not the connection; a deleted queue
            # cancels its consumers (basic.cancel) and leaves the channel open. Either
            # way what the body was doing on it is over: the session ends, and the next
            # one starts afresh (and declares its queue again).
            channel.close_callbacks.add(lambda _, exc: end(f"channel closed: {_reason(exc)}"))
            underlay = await channel.get_underlay_channel()
            underlay.on_consumer_cancel_callbacks.add(lambda _: end("consumer cancelled by the broker"))
            if prefetch:
                await channel.set_qos(prefetch_count=prefetch)
        except (*DOWN, aiormq.exceptions.ChannelClosed) as exc:
            raise BrokerUnavailable(_reason(exc)) from exc
        except RuntimeError as exc:
            # aiormq's plain "<Connection> closed": lost between wait_ready() and here.
            if not connection.is_closed:
                raise
            raise BrokerUnavailable("connection lost") from exc
        try:
            async with task_group() as tg:

                async def watch(event: anyio.Event, reason: str | None) -> None:
                    await event.wait()
                    if reason:
                        ended.append(reason)
                    tg.cancel_scope.cancel()

                tg.start_soon(watch, lost_connection, "connection lost")
                tg.start_soon(watch, broken, None)
                yield channel
                tg.cancel_scope.cancel()
        except (*DOWN, aiormq.exceptions.ChannelClosed) as exc:
            # ChannelClosed: what the body's call got when the broker closed the channel.
            raise BrokerUnavailable(_reason(exc)) from exc
        finally:
            over = list(ended)  # before our own close below calls `end` too
            await close_channel(channel)
        if over:
            raise BrokerUnavailable(over[0])

    async def close(self) -> None:
        if self._connection is not None:
            await close_connection(self._connection)


def _reason(exc: BaseException | None) -> str:
    return (str(exc) or type(exc).__name__) if exc is not None else "closed"


async def close_channel(channel: AbstractChannel) -> None:
    with anyio.move_on_after(2, shield=True):
        if not channel.is_closed:
            try:
                await channel.close()
            except DOWN:
                pass


async def close_connection(connection: AbstractConnection) -> None:
    with anyio.move_on_after(2, shield=True):
        try:
            await connection.close()
        except DOWN:
            pass


def open_broker(url: str, name: str = "gozon") -> AbstractAsyncContextManager[Broker]:
    """A broker connection named `name`, kept up in the background, closed on exit."""
    return in_background(Broker(url, name))
