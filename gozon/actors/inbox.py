"""The inbox consumer actor: consumes one queue for as long as the process runs,
re-opening its channel after the broker comes back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import msgspec
import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue

from gozon.amqp.broker import BROKER_DOWN, Broker
from gozon.amqp.consumer import Delivery, consume
from gozon.runtime.retry import Retry
from gozon.runtime.stop import unless_stopped

log = structlog.get_logger("gozon.inbox")


def named_queue(name: str) -> Callable[[AbstractChannel], Awaitable[AbstractQueue]]:
    async def get(channel: AbstractChannel) -> AbstractQueue:
        return await channel.get_queue(name, ensure=False)

    return get


class InboxConsumer:
    def __init__(
        self,
        broker: Broker,
        queue: Callable[[AbstractChannel], Awaitable[AbstractQueue]],
        decoder: msgspec.json.Decoder,
        handle: Callable[[Delivery], Awaitable[None]],
        *,
        workers: int,
        ready: Callable[[], Awaitable[None]] | None = None,
        dead_letters: bool = True,
    ) -> None:
        self.broker = broker
        self.queue = queue
        self.decoder = decoder
        self.handle = handle
        self.workers = workers
        self.ready = ready
        self.dead_letters = dead_letters

    async def run(self, stop: anyio.Event) -> None:
        if self.ready is not None and not await unless_stopped(stop, self.ready()):
            return
        retry = Retry("consumer paused", log)
        while await unless_stopped(stop, self.broker.wait_ready()):
            try:
                async with self.broker.session(prefetch=self.workers * 4) as channel:
                    retry.succeeded()
                    queue = await self.queue(channel)
                    await consume(channel, queue, self.decoder, self.handle, workers=self.workers, stop=stop,
                                  dead_letters=self.dead_letters)
            except BROKER_DOWN as exc:
                await retry.failed(exc, stop)
