"""Hostile messages published raw to both durable queues beside ordinary ones under load
(spec §4: no single message can stop a process): the ordinary messages are all handled,
every hostile one ends in `<queue>.dlq` with its reason — those whose properties no
client can decode included — a message whose handling keeps raising is tried a few
times and dead-lettered too, and the consumer keeps its one broker connection
throughout (no reconnect), against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import anyio
import pytest
from aiormq.exceptions import ConnectionClosed

from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Consumer, Delivery
from gozon.amqp.topology import dead_letter_queue, gateway_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PAYMENT_EVENTS, PAYMENTS_RESULTS_QUEUE, PaymentRequested, PaymentResult
from gozon.orders import handlers as orders_handlers
from gozon.orders import store as orders_store
from gozon.orders.schemas import CreateOrder
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from tests.integration.helpers import (
    Counted,
    amqp_channel,
    amqp_message,
    consumer_count,
    consumer_of,
    drain,
    eventually,
    publish,
    ready_count,
    running,
    stays_empty,
)
from tests.integration.hostile import Hostile, Known, fanout_messages, hostile_messages, reason_of, unaccounted
from tests.settings import TEST_SETTINGS

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

USER = 5
ORDINARY = 200  # ordinary messages published while the hostile ones are
BUGGY_ORDER = 10**9  # the order whose message the handler keeps failing on
WAIT = 90.0  # a loaded machine: ~50 raw connections, 1 MiB bodies, 200 messages


class Bug:
    """The product's handler, with a bug that one order's message always triggers."""

    def __init__(self, handle) -> None:
        self.handle = handle

    async def __call__(self, deliveries: Sequence[Delivery]) -> None:
        if any(d.body.order_id == BUGGY_ORDER for d in deliveries):
            raise KeyError("a bug")
        await self.handle(deliveries)


async def publish_beside(hostile: list[Hostile], ordinary: list, queue: str, *, exchange: str = "") -> None:
    """The hostile messages, one raw connection each, while the ordinary ones go in
    batches of 20 through the default exchange (or `exchange`)."""
    async def ordinary_ones() -> None:
        for at in range(0, len(ordinary), 20):
            await publish(queue if not exchange else "", *ordinary[at:at + 20], exchange=exchange)
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ordinary_ones)
        for message in hostile:
            await message.publish()


class Watched:
    """The broker's current connection, and why it closed if it did."""

    def __init__(self, broker: Broker) -> None:
        self.broker, self.connection, self.closed = broker, broker._connection, []
        self.connection.close_callbacks.add(lambda _, exc=None: self.closed.append(exc))

    def kept(self) -> None:
        """The consumers kept it throughout — unless the shared broker itself went away
        meanwhile (another run may restart it): a message never cost one a reconnect."""
        if self.broker._connection is self.connection and not self.closed:
            return
        assert self.closed and all(map(_broker_went_away, self.closed)), (
            f"a message cost the consumers their connection: {self.closed!r}")


def _broker_went_away(exc: BaseException | None) -> bool:
    """Closed by a broker shutting down (320 CONNECTION_FORCED) or a socket gone; not
    by a frame the client failed on (aiormq's ProtocolSyntaxError, not an OSError)."""
    if isinstance(exc, ConnectionClosed):
        return exc.args[:1] == (320,)
    return isinstance(exc, OSError)


async def dead_lettered(queue: str, count: int) -> bool:
    return await ready_count(dead_letter_queue(queue)) >= count


async def test_hostile_payment_requests_are_dead_lettered_and_the_ordinary_ones_charged(
        payments_db: Database, broker: Broker) -> None:
    async with payments_db.acquire() as con:
        await payments_store.create_account(con, USER)
        await payments_store.deposit(con, USER, 10**9)
    known = Known(order_id=1, user_id=USER, amount=100)
    hostile = hostile_messages(ORDERS_QUEUE, known)
    ordinary = [amqp_message(PaymentRequested(order_id=n, user_id=USER, amount=10), message_id=uuid.uuid4())
                for n in range(2, ORDINARY + 2)]
    buggy = amqp_message(PaymentRequested(order_id=BUGGY_ORDER, user_id=USER, amount=10), message_id=uuid.uuid4())

    handled = Counted(Bug(payments_handlers.payment_requested(payments_db)))
    async with running(consumer_of(broker, ORDERS_QUEUE, PaymentRequested, handled, payments_db)):
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=known.order_id, user_id=USER,
                                                                  amount=known.amount), message_id=uuid.uuid4()))
        await eventually(lambda: handled.reached(1), what="the known order charged")
        connection = Watched(broker)
        await publish_beside(hostile, [*ordinary[:100], buggy, *ordinary[100:]], ORDERS_QUEUE)
        await eventually(lambda: handled.reached(1 + ORDINARY), timeout=WAIT, what="every ordinary request charged")
        await eventually(lambda: dead_lettered(ORDERS_QUEUE, len(hostile) + 1), timeout=WAIT,
                         what="every hostile request dead-lettered")
        connection.kept()
    await stays_empty(ORDERS_QUEUE)

    async with payments_db.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM payments") == 1 + ORDINARY
        assert (await payments_store.balance(con, USER)).balance == 10**9 - known.amount - 10 * ORDINARY
    letters = await drain(dead_letter_queue(ORDERS_QUEUE))
    problems = unaccounted(hostile, letters)
    assert not problems, "\n".join(problems)
    [bug] = [letter for letter in letters if letter.message_id == buggy.message_id]
    assert reason_of(bug) == "KeyError: 'a bug'"
    assert len(letters) == len(hostile) + 1


async def test_hostile_payment_results_are_dead_lettered_and_the_ordinary_ones_settle(
        orders_db: Database, broker: Broker) -> None:
    async with orders_db.acquire() as con:
        orders = await orders_store.create_orders(
            con, [(CreateOrder(user_id=USER, amount=100), "t") for _ in range(ORDINARY + 1)])
    known_order, *others = orders
    known = Known(order_id=known_order.id, user_id=USER, amount=100)
    hostile = [*hostile_messages(PAYMENTS_RESULTS_QUEUE, known), *fanout_messages(known)]
    ordinary = [amqp_message(PaymentResult(order_id=o.id, user_id=USER, amount=100, status="success"),
                             message_id=uuid.uuid4()) for o in others]
    buggy = amqp_message(PaymentResult(order_id=BUGGY_ORDER, user_id=USER, amount=10, status="success"),
                         message_id=uuid.uuid4())

    handled = Counted(Bug(orders_handlers.payment_result(orders_db)))
    # A gateway's consumer on its own queue on the fanout: its poison is dropped (no .dlq).
    seen_by_gateway = Counted(_ignore)
    gateway_queue_of = gateway_queue("hostile-test", expires=60)
    async with amqp_channel() as channel:
        await gateway_queue_of(channel)  # there before anything is published to the fanout
    gateway = Consumer(broker, gateway_queue_of, PaymentResult, seen_by_gateway, workers=1,
                       batch=TEST_SETTINGS.inbox_batch, dead_letters=False)
    async with running(consumer_of(broker, PAYMENTS_RESULTS_QUEUE, PaymentResult, handled, orders_db), gateway):
        await eventually(lambda: _consuming("gateway.hostile-test"), what="the gateway's queue consumed")
        connection = Watched(broker)
        await publish_beside(hostile, [*ordinary[:100], buggy, *ordinary[100:]], "", exchange=PAYMENT_EVENTS)
        await eventually(lambda: handled.reached(ORDINARY), timeout=WAIT, what="every ordinary result settled")
        await eventually(lambda: dead_lettered(PAYMENTS_RESULTS_QUEUE, len(hostile) + 1), timeout=WAIT,
                         what="every hostile result dead-lettered")
        # The fanout's ordinary results reached the gateway too, the hostile ones it dropped.
        await eventually(lambda: seen_by_gateway.reached(ORDINARY + 1), timeout=WAIT,
                         what="the gateway given every ordinary result")
        await stays_empty("gateway.hostile-test")
        connection.kept()
    await stays_empty(PAYMENTS_RESULTS_QUEUE)

    async with orders_db.acquire() as con:
        statuses = {o.id: (await orders_store.get_order(con, o.id)).status for o in orders}
    assert statuses[known.order_id] == "new", "a hostile result settled the known order"
    assert {statuses[o.id] for o in others} == {"finished"}
    letters = await drain(dead_letter_queue(PAYMENTS_RESULTS_QUEUE))
    problems = unaccounted(hostile, letters)
    assert not problems, "\n".join(problems)
    [bug] = [letter for letter in letters if letter.message_id == buggy.message_id]
    assert reason_of(bug) == "KeyError: 'a bug'"
    assert len(letters) == len(hostile) + 1


async def _ignore(deliveries: Sequence[Delivery]) -> None:
    pass


async def _consuming(queue: str) -> bool:
    return await consumer_count(queue) >= 1
