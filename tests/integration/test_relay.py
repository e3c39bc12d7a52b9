"""The outbox relay against the real PostgreSQL and RabbitMQ (spec §5, Outbox): every
row published, once even with two relays at once, in creation order, through a broker
connection loss, and promptly when NOTIFY rings; a row the broker refuses for good is
set aside without holding up the rows behind it, a row it nacks is sent again."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import timedelta

import anyio
import msgspec
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from gozon.actors.relay import OutboxRelay
from gozon.db import Database, outbox
from gozon.messages import DEFAULT_EXCHANGE, PaymentRequested, envelope
from gozon.orders import store as orders_store
from tests.settings import TEST_SETTINGS, VHOST, rabbitmqctl
from tests.integration.helpers import (
    amqp_channel,
    drain,
    eventually,
    ready_broker,
    ready_database,
    retrying,
    running,
)

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# A queue of the test vhost that only these tests publish to and read.
RELAY_QUEUE = "relay_test_queue"


@pytest.fixture
async def relay_queue(broker) -> str:
    """An empty durable quorum queue, like orders_queue, for the relayed rows."""
    async def declare() -> None:
        async with amqp_channel() as channel:
            queue = await channel.declare_queue(RELAY_QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
            await queue.purge()

    await retrying(declare, f"declare {RELAY_QUEUE}")
    return RELAY_QUEUE


class CountingRelay(OutboxRelay):
    """The product relay, counting the rows it claimed and published."""

    published = 0

    async def publish_batch(self, channel) -> int:
        n = await super().publish_batch(channel)
        self.published += n
        return n


async def append_rows(db: Database, count: int, *, first: int = 1, per_transaction: int = 50,
                      routing_key: str = RELAY_QUEUE) -> list[uuid.UUID]:
    """Append `count` payment requests for `routing_key` (on the default exchange),
    `per_transaction` per commit."""
    ids: list[uuid.UUID] = []
    for start in range(first, first + count, per_transaction):
        async with db.acquire() as con, con.transaction():
            for order_id in range(start, min(start + per_transaction, first + count)):
                request = PaymentRequested(order_id=order_id, user_id=1, amount=order_id)
                addressed = msgspec.structs.replace(envelope(request, f"trace-{order_id}"), routing_key=routing_key)
                ids.append((await outbox.add(con, [addressed]))[0].message_id)
    return ids


async def pending(db: Database) -> int:
    async with db.acquire() as con:
        pending, _ = await outbox.backlog(con)
        return pending


async def all_sent(db: Database, expected: int) -> bool:
    async with db.acquire() as con:
        total, unsent = await con.fetchrow("SELECT count(*), count(*) FILTER (WHERE sent_at IS NULL) FROM outbox")
    return total == expected and unsent == 0


async def outbox_ids_in_order(db: Database) -> list[str]:
    async with db.acquire() as con:
        return [str(r["message_id"]) for r in await con.fetch("SELECT message_id FROM outbox ORDER BY id")]


async def test_two_relays_publish_every_row_exactly_once(orders_db: Database, broker, relay_queue: str) -> None:
    await append_rows(orders_db, 250)
    async with (
        ready_database(TEST_SETTINGS.orders_db, orders_store.MIGRATIONS) as other_db,
        ready_broker() as other_broker,
    ):
        # Two relay instances, as two orders replicas would run them: each its own pool and connection.
        relays = [CountingRelay(orders_db, broker, batch=20, poll_interval=0.5),
                  CountingRelay(other_db, other_broker, batch=20, poll_interval=0.5)]
        async with running(*relays):
            # More rows committed while both relays run, in small transactions (many NOTIFYs).
            await append_rows(orders_db, 250, first=251, per_transaction=10)
            await eventually(lambda: all_sent(orders_db, 500), timeout=30, what="all 500 outbox rows sent")
    print(f"rows published by relay A: {relays[0].published}, relay B: {relays[1].published}")

    messages = await drain(relay_queue)
    received = Counter(m.message_id for m in messages)
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    assert not duplicates, f"{len(duplicates)} rows were published more than once, e.g. {list(duplicates.items())[:3]}"
    expected = await outbox_ids_in_order(orders_db)
    assert set(received) == set(expected), (
        f"missing {len(set(expected) - set(received))}, unexpected {len(set(received) - set(expected))}")
    assert len(messages) == 500
    assert relays[0].published + relays[1].published == 500
    # What the consumer sees is what the outbox row says.
    sample = messages[0]
    assert sample.type == "payment_requested"
    assert sample.content_type == "application/json"
    assert sample.delivery_mode == 2  # persistent
    assert sample.correlation_id is not None and sample.correlation_id.startswith("trace-")


async def test_single_relay_publishes_in_creation_order(orders_db: Database, broker, relay_queue: str) -> None:
    await append_rows(orders_db, 120, per_transaction=7)
    relay = OutboxRelay(orders_db, broker, batch=25, poll_interval=0.5)
    async with running(relay):
        await eventually(lambda: all_sent(orders_db, 120), what="all 120 outbox rows sent")

    received = [m.message_id for m in await drain(relay_queue)]
    expected = await outbox_ids_in_order(orders_db)
    assert len(received) == len(expected)
    assert received == expected, "messages were published out of outbox id order"


async def test_relay_survives_broker_connection_loss(orders_db: Database, broker, relay_queue: str) -> None:
    relay = OutboxRelay(orders_db, broker, batch=20, poll_interval=0.5)
    appended = 40
    with capture_logs() as logs:
        async with running(relay):
            await append_rows(orders_db, appended, per_transaction=10)
            await eventually(lambda: all_sent(orders_db, 40), what="the first 40 rows sent")
            closed = anyio.Event()

            async def keep_appending() -> None:
                # Rows keep committing before and during the outage, however long
                # rabbitmqctl takes to close the connections, and a few batches after it.
                nonlocal appended
                after = 0
                while after < 5:
                    await append_rows(orders_db, 10, first=appended + 1, per_transaction=10)
                    appended += 10
                    after += closed.is_set()
                    await anyio.sleep(0.03)

            async with anyio.create_task_group() as tg:
                tg.start_soon(keep_appending)
                # Drop every connection of the test vhost (ours, the relay's broker included).
                await anyio.to_thread.run_sync(
                    lambda: rabbitmqctl("close_all_connections", "-p", VHOST, "test", timeout=30))
                closed.set()

            async def reconnected() -> bool:
                return broker.ready

            await eventually(reconnected, timeout=30, what="the broker to reconnect by itself")
            await eventually(lambda: all_sent(orders_db, appended), timeout=30,
                             what=f"all {appended} outbox rows sent after the broker connection came back")

    events = [entry["event"] for entry in logs]
    assert "broker connection lost" in events, "the connection was not actually closed: the test proved nothing"
    assert "relay paused" in events, "the relay never noticed the connection loss"
    assert events.count("broker connected") >= 1 and events.index("broker connected") > events.index(
        "broker connection lost"), "the Broker did not reconnect"

    received = Counter(m.message_id for m in await drain(relay_queue))
    expected = await outbox_ids_in_order(orders_db)
    missing = [mid for mid in expected if mid not in received]
    assert not missing, f"{len(missing)} rows marked sent never reached the queue"
    assert set(received) == set(expected)
    # A confirm lost with the connection may cause a re-publish (at least once), no more.
    assert max(received.values()) <= 2


async def test_notify_wakes_the_relay_long_before_its_poll(orders_db: Database, broker, relay_queue: str) -> None:
    # With a 30 s poll, anything published within ~2 s was woken by LISTEN/NOTIFY.
    relay = OutboxRelay(orders_db, broker, batch=50, poll_interval=30)
    async with running(relay):
        await append_rows(orders_db, 1)
        await eventually(lambda: all_sent(orders_db, 1), timeout=5, what="the first row sent")
        # From here the relay sleeps on its doorbell: only a ring (a NOTIFY, or one left
        # over from the first row's) wakes it before the poll, 30 s away.
        latencies = []
        for n in range(2, 5):
            started = time.monotonic()
            await append_rows(orders_db, 1, first=n)
            await eventually(lambda n=n: all_sent(orders_db, n), timeout=3,
                             what=f"row {n} published on NOTIFY (the poll is 30 s away)")
            latencies.append(round(time.monotonic() - started, 3))
    print(f"commit-to-published latencies: {latencies}")
    assert [m.message_id for m in await drain(relay_queue)] == await outbox_ids_in_order(orders_db)


def sample(name: str) -> float:
    """The sample's value in this process's registry; absent (never incremented) is 0."""
    return REGISTRY.get_sample_value(name) or 0.0


async def test_a_row_the_broker_refuses_for_good_is_set_aside_and_the_rows_behind_it_flow(
        orders_db: Database, broker, relay_queue: str) -> None:
    # Oldest first: rows no queue is bound to, then ordinary rows behind them.
    nowhere = "relay_test_nowhere"
    unroutable = await append_rows(orders_db, 3, routing_key=nowhere)
    ordinary = await append_rows(orders_db, 30, first=4, per_transaction=10)
    counted = sample("gozon_outbox_set_aside_total")
    relay = OutboxRelay(orders_db, broker, batch=10, poll_interval=0.5)
    with capture_logs() as logs:
        async with running(relay):
            await eventually(lambda: pending_is(orders_db, 0), what="every row sent or set aside")
            # The relay keeps going: rows committed later go out too.
            ordinary += await append_rows(orders_db, 5, first=34)
            await eventually(lambda: pending_is(orders_db, 0), what="the later rows sent")

    assert [m.message_id for m in await drain(relay_queue)] == [str(i) for i in ordinary]
    async with orders_db.acquire() as con:
        aside = await outbox.set_aside_rows(con)
        assert await con.fetchval("SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL") == 35
    assert [row.envelope.message_id for row in aside] == unroutable
    for row in aside:
        assert "unroutable" in row.reason and "NO_ROUTE" in row.reason and nowhere in row.reason, row.reason
        assert (row.envelope.exchange, row.envelope.routing_key) == (DEFAULT_EXCHANGE, nowhere)

    # Counted once each, visible at scrape, and logged for operators with what to find them by.
    assert sample("gozon_outbox_set_aside_total") - counted == 3
    await outbox.backlog_gauges(orders_db)()
    assert (sample("gozon_outbox_set_aside_rows"), sample("gozon_outbox_pending_rows")) == (3, 0)
    warnings = [e for e in logs if e["event"] == "outbox row set aside"]
    assert [w["message_id"] for w in warnings] == [str(i) for i in unroutable]
    assert all(w["log_level"] == "warning" and w["destination"] == nowhere and "NO_ROUTE" in w["reason"]
               and w["trace_id"].startswith("trace-") for w in warnings), warnings
    # Refused for good is not "broker down": no pause, no retry loop.
    assert "relay paused" not in [e["event"] for e in logs]

    # Set-aside rows wait for an operator: retention purges the sent rows only.
    async with orders_db.acquire() as con:
        assert await outbox.purge(con, timedelta(0)) == 35
        assert [row.id for row in await outbox.set_aside_rows(con)] == [row.id for row in aside]


async def pending_is(db: Database, expected: int) -> bool:
    return await pending(db) == expected


FULL_QUEUE = "relay_test_full_queue"


async def test_a_row_the_broker_nacks_stays_pending_and_goes_out_once_it_can(orders_db: Database, broker) -> None:
    # A queue that holds one message and nacks the publishes beyond it (reject-publish):
    # a refusal for now, not for good.
    async def declare() -> None:
        async with amqp_channel() as channel:
            await channel.queue_delete(FULL_QUEUE)
            await channel.declare_queue(FULL_QUEUE, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})

    await retrying(declare, f"declare {FULL_QUEUE}")
    rows = await append_rows(orders_db, 3, routing_key=FULL_QUEUE)
    received: list[str] = []

    async def taken_and_all_sent() -> bool:
        # Each message taken makes room for one more.
        received.extend(m.message_id for m in await drain(FULL_QUEUE))
        return await all_sent(orders_db, 3)

    relay = OutboxRelay(orders_db, broker, batch=10, poll_interval=0.5)
    with capture_logs() as logs:
        async with running(relay):
            await eventually(lambda: nack_pauses(logs, 2), what="the relay to pause on nacks, twice")
            assert await pending(orders_db) == 2
            await eventually(taken_and_all_sent, what="the nacked rows sent once the queue has room")
    received.extend(m.message_id for m in await drain(FULL_QUEUE))

    assert "outbox row set aside" not in [e["event"] for e in logs]
    async with orders_db.acquire() as con:
        assert await outbox.set_aside_rows(con) == []
    assert sorted(received) == sorted(str(i) for i in rows)
    await retrying(delete_full_queue, f"delete {FULL_QUEUE}")


async def nack_pauses(logs: list[dict], times: int) -> bool:
    paused = [e for e in logs if e["event"] == "relay paused"]
    assert all("Nack" in e["error"] for e in paused), paused
    return len(paused) >= times


async def delete_full_queue() -> None:
    async with amqp_channel() as channel:
        await channel.queue_delete(FULL_QUEUE)
