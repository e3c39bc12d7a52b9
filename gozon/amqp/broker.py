"""The process's AMQP connection: connects (and declares the topology) in the
background, retrying while RabbitMQ is down, and reconnects after a loss.

Actors open a `session()`: a channel whose body is cancelled the moment the connection
drops, after which the session raises `BrokerUnavailable`; the actor then opens the next
session, which waits for the reconnect. Recovery is here, in plain sight, instead of in
aio-pika's robust classes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import aio_pika
import aiormq.exceptions
import anyio
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection

from gozon.amqp import topology
from gozon.errors import BrokerUnavailable
from gozon.runtime.resource import Resource, in_background
from gozon.runtime.retry import Retry
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.amqp")

# A channel of a session, for the code that publishes and consumes on it.
Channel = AbstractChannel

# What aio-pika raises when the broker went away or refused us: an outage to wait out
# (as `BrokerUnavailable`), never a crash.
DOWN = (OSError, TimeoutError, aiormq.exceptions.AMQPConnectionError, BrokerUnavailable)


class Broker(Resource):
    def __init__(self, url: str, name: str = "gozon") -> None:
        super().__init__()
        self.url = url
        self.name = name
        self._connection: AbstractConnection | None = None
        self._lost = anyio.Event()

    async def connect_forever(self) -> None:
        retry = Retry("broker unavailable, retrying", log)
        while True:
            try:
                # Named, so that operators (and tests) tell the processes' connections apart.
                connection = await aio_pika.connect(self.url, timeout=5, client_properties={"connection_name": self.name})
            except (*DOWN, aiormq.exceptions.AMQPError) as exc:
                # AMQPError: refused by a broker that is up (e.g. its vhost is not there
                # yet); like a broker that is down, it is waited out, not a crash.
                await retry.failed(exc)
                continue
            lost = anyio.Event()
            connection.close_callbacks.add(lambda *_, lost=lost: lost.set())
            try:
                async with connection.channel() as channel:
                    await topology.declare(channel)
            except DOWN as exc:
                await _close(connection)
                await retry.failed(exc)
                continue
            retry.succeeded()
            self._connection, self._lost = connection, lost
            self._up()
            log.info("broker connected")
            try:
                await lost.wait()
            finally:
                self._down()
                self._connection = None
                await _close(connection)
            log.warning("broker connection lost")

    @asynccontextmanager
    async def session(self, *, prefetch: int = 0) -> AsyncIterator[AbstractChannel]:
        """A confirming channel on the current connection (waiting for one if down).

        Raises:
            BrokerUnavailable: the connection dropped while the body ran.
        """
        await self.wait_ready()
        connection, lost_connection = self._connection, self._lost
        assert connection is not None
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            if prefetch:
                await channel.set_qos(prefetch_count=prefetch)
        except DOWN as exc:
            raise BrokerUnavailable(str(exc)) from exc
        lost = False
        try:
            async with task_group() as tg:

                async def watch() -> None:
                    nonlocal lost
                    await lost_connection.wait()
                    lost = True
                    tg.cancel_scope.cancel()

                tg.start_soon(watch)
                yield channel
                tg.cancel_scope.cancel()
        except DOWN as exc:
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            with anyio.move_on_after(2, shield=True):
                if not channel.is_closed:
                    try:
                        await channel.close()
                    except DOWN:
                        pass
        if lost:
            raise BrokerUnavailable("connection lost")

    async def close(self) -> None:
        if self._connection is not None:
            await _close(self._connection)


async def _close(connection: AbstractConnection) -> None:
    with anyio.move_on_after(2, shield=True):
        try:
            await connection.close()
        except DOWN:
            pass


def open_broker(url: str, name: str = "gozon") -> AbstractAsyncContextManager[Broker]:
    """A broker connection named `name`, kept up in the background, closed on exit."""
    return in_background(Broker(url, name))
