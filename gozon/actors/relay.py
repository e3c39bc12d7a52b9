"""The outbox relay: woken by NOTIFY when outbox rows commit (and by a poll as a
fallback), it claims pending rows with SKIP LOCKED, publishes them with confirms and
marks sent only what the broker confirmed — in the same transaction that holds the
row locks. While the broker is down, rows wait and then go out oldest first."""

from __future__ import annotations

import time

import anyio
import msgspec
import structlog

from gozon import metrics
from gozon.amqp.broker import BROKER_DOWN, Broker, BrokerUnavailable
from gozon.amqp.publisher import publish_confirmed
from gozon.db import DB_DOWN, Database, Unavailable, outbox
from gozon.db.listen import listen_forever
from gozon.runtime import Mailbox
from gozon.runtime.retry import Retry
from gozon.runtime.stop import unless_stopped

log = structlog.get_logger("gozon.relay")


class _About(msgspec.Struct):
    """The part of any message that says which order it is about (for the log line)."""

    order_id: int | None = None


_about = msgspec.json.Decoder(_About)


class OutboxRelay:
    def __init__(self, db: Database, broker: Broker, *, batch: int, poll_interval: float) -> None:
        self.db = db
        self.broker = broker
        self.batch = batch
        self.poll_interval = poll_interval
        # A doorbell: one pending ring is enough, more would say nothing new.
        self._bell: Mailbox[None] = Mailbox(1)

    def wake(self) -> None:
        self._bell.offer(None)

    async def run(self, stop: anyio.Event) -> None:
        if not await unless_stopped(stop, self.db.wait_ready()):
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen_forever, self.db.dsn, "outbox", self.wake, name="relay.listen")
            retry = Retry("relay paused", log)
            while await unless_stopped(stop, self.broker.wait_ready()):
                try:
                    async with self.broker.session() as channel:
                        retry.succeeded()
                        await self._relay(channel, stop)
                except (BrokerUnavailable, Unavailable, *BROKER_DOWN, *DB_DOWN) as exc:
                    await retry.failed(exc, stop)
            tg.cancel_scope.cancel()

    async def _relay(self, channel, stop: anyio.Event) -> None:
        while not stop.is_set():
            sent = await self.publish_batch(channel)
            if sent < self.batch:
                with anyio.move_on_after(self.poll_interval):
                    await unless_stopped(stop, self._bell.get())

    async def publish_batch(self, channel) -> int:
        """Publish one batch; returns how many rows were claimed."""
        async with self.db.acquire() as con, con.transaction():
            rows = await outbox.claim(con, self.batch)
            if not rows:
                return 0
            sending = time.perf_counter()
            confirmed, error = await publish_confirmed(channel, rows)
            # Shielded: once the broker confirmed, recording it must not be cut short.
            with anyio.CancelScope(shield=True):
                await outbox.mark_sent(con, confirmed)
        published = set(confirmed)
        # Consumers may see a message before its confirm comes back: the duration lets
        # `gozon trace` place the line where publishing began.
        duration_ms = round((time.perf_counter() - sending) * 1000, 2)
        metrics.OUTBOX_PUBLISHED.inc(len(published))
        for row in rows:
            if row.id in published:
                log.info("outbox published", message_id=str(row.message_id), trace_id=row.trace_id,
                         order_id=_about.decode(row.payload).order_id, message_type=row.message_type,
                         routing_key=row.routing_key or row.exchange, duration_ms=duration_ms)
        if error is not None:
            raise BrokerUnavailable(f"{len(rows) - len(confirmed)} of {len(rows)} not confirmed: {error!r}")
        return len(rows)

