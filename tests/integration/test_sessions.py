"""What ends a broker session besides a lost connection, against the real RabbitMQ: a
channel the broker closes (a channel error) or a consumer it cancels (its queue deleted)
ends the session with `BrokerUnavailable`, never a crash; the consumer reports not
consuming (readiness false), opens the next session, declares its queue again and
resumes. And a URL that lists several nodes: a process connects to a live one, and after
a loss moves on to the next."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import aiormq.exceptions
import anyio
import pytest

from gozon.amqp.broker import Broker, open_broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import DEAD_LETTERS, dead_letter_queue, gateway_queue, named_queue
from gozon.db import Database
from gozon.errors import BrokerUnavailable
from gozon.messages import ORDERS_QUEUE, PaymentRequested, PaymentResult
from gozon.payments import handlers as payments_handlers
from tests.integration.helpers import (
    READY,
    Counted,
    amqp_channel,
    amqp_message,
    consumer_count,
    drain,
    eventually,
    publish,
    running,
)
from tests.settings import TEST_SETTINGS, VHOST, rabbitmqctl

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


class Consuming:
    """Every value `consumer.consuming` (what /readyz reports) takes, sampled often
    enough to see a reconnect's gap of at least the first backoff (0.1 s)."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.values: list[bool] = []

    async def run(self, stop: anyio.Event) -> None:
        while not stop.is_set():
            value = self.consumer.consuming
            if not self.values or self.values[-1] != value:
                self.values.append(value)
            await anyio.sleep(0.005)

    def since(self, mark: int) -> list[bool]:
        return self.values[mark:]


def payments_consumer(broker: Broker, db: Database) -> tuple[Consumer, Counted]:
    handled = Counted(payments_handlers.payment_requested(db))
    return Consumer(broker, named_queue(ORDERS_QUEUE), PaymentRequested, handled, workers=1,
                    ready=db.wait_ready), handled


async def consuming_again(consumer: Consumer, queue: str) -> None:
    async def back() -> bool:
        try:
            return consumer.consuming and await consumer_count(queue) == 1
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False  # deleted, and not declared again yet

    await eventually(back, what=f"the consumer on {queue} again")


async def test_a_queue_deleted_under_its_consumer_comes_back_and_the_consumer_with_it(
        payments_db: Database, broker: Broker) -> None:
    consumer, handled = payments_consumer(broker, payments_db)
    seen = Consuming(consumer)
    async with running(consumer, seen):
        await consuming_again(consumer, ORDERS_QUEUE)
        mark = len(seen.values)
        # An operator deletes the queue: the broker cancels its consumer (basic.cancel).
        rabbitmqctl("delete_queue", "-p", VHOST, ORDERS_QUEUE, timeout=30)
        await consuming_again(consumer, ORDERS_QUEUE)
        assert seen.since(mark)[:2] == [False, True], f"readiness never went false, then true: {seen.values}"
        # The queue is back as it was declared, and consumed: a request is handled.
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=1, user_id=1, amount=10),
                                                 message_id=uuid.uuid4()))
        await eventually(lambda: handled.reached(1), what="the request on the re-declared queue handled")
    assert not consumer.consuming, "a stopped consumer does not consume"


async def test_a_channel_the_broker_closes_ends_the_session_and_the_consumer_resumes(
        payments_db: Database, broker: Broker) -> None:
    consumer, _ = payments_consumer(broker, payments_db)
    seen = Consuming(consumer)
    async with running(consumer, seen):
        await consuming_again(consumer, ORDERS_QUEUE)
        mark = len(seen.values)
        # With the dead-letter exchange gone, dead-lettering a poison message is a
        # publish to an exchange that does not exist: the broker closes the consumer's
        # channel (404). The message, unacked, goes back to the queue.
        async with amqp_channel() as channel:
            await channel.exchange_delete(DEAD_LETTERS)
        message_id = uuid.uuid4()
        await publish(ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=2, user_id=1, amount=10),
                                                 message_id=message_id, body=b"not json"))
        # The next session declares the exchange (and the .dlq's binding) again, and
        # the redelivered message is dead-lettered as it should have been.
        await consuming_again(consumer, ORDERS_QUEUE)
        dead: list = []

        async def dead_lettered() -> bool:
            dead.extend(await drain(dead_letter_queue(ORDERS_QUEUE)))
            return bool(dead)

        await eventually(dead_lettered, what="the poison message in orders_queue.dlq")
        assert [m.message_id for m in dead] == [str(message_id)]
        assert "JSON" in dead[0].headers["x-error"] or "json" in dead[0].headers["x-error"], dead[0].headers
        assert False in seen.since(mark) and seen.values[-1] is True, seen.values


async def test_a_channel_error_in_a_session_is_broker_unavailable_not_a_crash(broker: Broker) -> None:
    with anyio.fail_after(20), pytest.raises(BrokerUnavailable, match="PRECONDITION_FAILED"):
        async with broker.session() as channel:
            # orders_queue exists with other arguments: 406, and the broker closes the channel.
            await channel.declare_queue(ORDERS_QUEUE, durable=True,
                                        arguments={"x-queue-type": "quorum", "x-delivery-limit": 1})
    with anyio.fail_after(20):
        async with broker.session() as channel:  # the connection is fine: the next session works
            await channel.get_queue(ORDERS_QUEUE, ensure=True)


async def test_a_gateway_queue_with_other_arguments_is_replaced_by_a_quorum_queue(broker: Broker) -> None:
    replica = f"test-{uuid.uuid4().hex[:8]}"
    name = f"gateway.{replica}"
    async with amqp_channel() as channel:  # as an earlier Gozon declared it: classic
        await channel.declare_queue(name, durable=True, arguments={"x-expires": 300_000})
    handled = Counted(lambda deliveries: anyio.sleep(0))
    consumer = Consumer(broker, gateway_queue(replica, expires=60), PaymentResult, handled, workers=1,
                        dead_letters=False)
    try:
        async with running(consumer):
            await consuming_again(consumer, name)
            queues = json.loads(rabbitmqctl("list_queues", "-p", VHOST, "name", "type", "arguments",
                                            "--formatter", "json", "--quiet", timeout=30))
            [queue] = [q for q in queues if q["name"] == name]
            assert queue["type"] == "quorum", queue
    finally:
        async with amqp_channel() as channel:
            await channel.queue_delete(name)


# ---------------------------------------------------------------------------------------
# Several nodes in GOZON_AMQP_URL.
# ---------------------------------------------------------------------------------------


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def our_connections(name: str) -> list[str]:
    listed = rabbitmqctl("list_connections", "pid", "client_properties", "--quiet", "--no-table-headers",
                         timeout=30)
    return [line.split("\t")[0] for line in listed.splitlines() if f'"{name}"' in line]


@asynccontextmanager
async def connected(url: str, name: str) -> AsyncIterator[Broker]:
    async with open_broker(url, name) as broker:
        with anyio.fail_after(READY):
            await broker.wait_ready()
        yield broker


async def test_a_dead_node_listed_first_is_passed_over() -> None:
    live = urlsplit(TEST_SETTINGS.amqp_url).netloc.rpartition("@")[2]
    url = f"amqp://guest:guest@127.0.0.1:{closed_port()}/{VHOST},{live}"
    async with connected(url, "gozon test passed over") as broker:
        assert broker.node == live


async def test_after_a_loss_the_next_node_is_tried_first() -> None:
    # The one broker under two names: two "nodes" of the list, told apart by the logs.
    port = urlsplit(TEST_SETTINGS.amqp_url).port or 5672
    name = f"gozon test rotation {uuid.uuid4().hex[:8]}"
    url = f"amqp://guest:guest@127.0.0.1:{port}/{VHOST},localhost:{port}"
    async with connected(url, name) as broker:
        assert broker.node == f"127.0.0.1:{port}"
        [pid] = await eventually(lambda: anyio.to_thread.run_sync(our_connections, name), what="our connection")
        await anyio.to_thread.run_sync(lambda: rabbitmqctl("close_connection", pid, "test: node lost", timeout=30))

        async def moved() -> bool:
            return broker.node == f"localhost:{port}"

        await eventually(moved, what="the broker connected through the next node")
