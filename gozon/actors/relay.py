"""The outbox relay: woken by NOTIFY when outbox rows commit (and by a poll as a
fallback), it claims pending rows with SKIP LOCKED, publishes them with confirms and
marks sent only what the broker confirmed — in the same transaction that holds the
row locks. While the broker is down, rows wait and then go out oldest first. A row the
broker refuses for good (unroutable) is set aside with its reason in that transaction,
so that it does not hold up the rows behind it; it waits there for an operator."""

from __future__ import annotations

import time

import anyio
import structlog

from gozon import metrics
from gozon.amqp.broker import Broker, Channel
from gozon.amqp.publisher import publish_confirmed
from gozon.db import Database, outbox
from gozon.db.listen import listen_forever
from gozon.errors import BrokerUnavailable, Transient
from gozon.messages import Envelope
from gozon.runtime import Mailbox
from gozon.runtime.retry import Retry
from gozon.runtime.stop import unless_stopped
from gozon.runtime.tasks import task_group

log = structlog.get_logger("gozon.relay")


class OutboxRelay:
    def __init__(self, db: Database, broker: Broker, *, batch: int, poll_interval: float) -> None:
        self.db = db
        self.broker = broker
        self.batch = batch
        self.poll_interval = poll_interval

    async def run(self, stop: anyio.Event) -> None:
        if not await unless_stopped(stop, self.db.wait_ready()):
            return
        # A doorbell: one pending ring is enough, more would say nothing new.
        with Mailbox[None](1) as bell:
            async with task_group() as tg:
                tg.start_soon(listen_forever, self.db.dsn, "outbox", lambda: bell.offer(None), name="relay.listen")
                retry = Retry("relay paused", log)
                while await unless_stopped(stop, self.broker.wait_ready()):
                    try:
                        async with self.broker.session() as channel:
                            await self._relay(channel, bell, stop, retry)
                    except Transient as exc:
                        await retry.failed(exc, stop)
                tg.cancel_scope.cancel()

    async def _relay(self, channel: Channel, bell: Mailbox[None], stop: anyio.Event, retry: Retry) -> None:
        while not stop.is_set():
            sent = await self.publish_batch(channel)
            # Only a whole batch through resets the pauses: a broker that opens channels
            # but keeps failing publishes (nacks, say) is retried ever less often.
            retry.succeeded()
            if sent < self.batch:
                with anyio.move_on_after(self.poll_interval):
                    await unless_stopped(stop, bell.get())

    async def publish_batch(self, channel: Channel) -> int:
        """Publish one batch; returns how many rows were claimed."""
        async with self.db.acquire() as con, con.transaction():
            rows = await outbox.claim(con, self.batch)
            if not rows:
                return 0
            sending = time.perf_counter()
            published = await publish_confirmed(channel, [row.envelope for row in rows])
            # Shielded: once the broker answered, recording it must not be cut short.
            with anyio.CancelScope(shield=True):
                await outbox.mark_sent(con, [rows[i].id for i in published.confirmed])
                await outbox.set_aside(con, [(rows[i].id, reason) for i, reason in published.refused.items()])
        # Consumers may see a message before its confirm comes back: the duration lets
        # `gozon trace` place the line where publishing began.
        duration_ms = round((time.perf_counter() - sending) * 1000, 2)
        metrics.OUTBOX_PUBLISHED.inc(len(published.confirmed))
        for i in published.confirmed:
            sent = rows[i].envelope
            log.info("outbox published", message_id=str(sent.message_id), trace_id=sent.trace_id,
                     message_type=sent.message_type, destination=destination(sent), duration_ms=duration_ms)
        metrics.OUTBOX_SET_ASIDE.inc(len(published.refused))
        for i, reason in published.refused.items():
            refused = rows[i].envelope
            log.warning("outbox row set aside", message_id=str(refused.message_id), trace_id=refused.trace_id,
                        message_type=refused.message_type, destination=destination(refused), reason=reason)
        if published.error is not None:
            answered = len(published.confirmed) + len(published.refused)
            raise BrokerUnavailable(f"{len(rows) - answered} of {len(rows)} not confirmed: {published.error!r}")
        return len(rows)


def destination(sent: Envelope) -> str:
    return sent.routing_key or sent.exchange
