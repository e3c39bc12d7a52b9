"""Actors that ran and stopped cleanly leave nothing unclosed behind: no anyio memory
stream is garbage-collected open (a ResourceWarning, an error under this suite's
filterwarnings, that would otherwise surface in whatever test the collector runs in)."""

from __future__ import annotations

import gc
import warnings

import pytest

from gozon.actors.relay import OutboxRelay
from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import named_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.payments import handlers as payments_handlers
from tests.integration.helpers import consumer_count, eventually, running

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


def resource_warnings_on_collect() -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    return [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]


async def test_a_stopped_relay_and_consumer_leave_no_unclosed_streams(payments_db: Database, broker: Broker) -> None:
    resource_warnings_on_collect()  # whatever earlier tests left is not this test's business

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        async def run_and_stop() -> None:
            relay = OutboxRelay(payments_db, broker, batch=10, poll_interval=0.2)
            consumer = Consumer(broker, named_queue(ORDERS_QUEUE), PaymentRequested,
                                payments_handlers.payment_requested(payments_db), workers=2,
                                ready=payments_db.wait_ready)
            async with running(relay, consumer):
                async def consuming() -> bool:
                    return await consumer_count(ORDERS_QUEUE) == 1

                await eventually(consuming, what="the consumer on orders_queue")

        await run_and_stop()
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leaks, f"stopped actors left resources unclosed: {leaks}"
