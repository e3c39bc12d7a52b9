"""Integration fixtures: the slot's databases and vhost reset once per session, then per
test a migrated, emptied database (orders or payments) and a connected Broker whose
queues are purged — all against the real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest

from gozon.amqp.broker import Broker
from gozon.amqp.topology import dead_letter_queue
from gozon.db import Database
from gozon.messages import ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE
from gozon.orders import store as orders_store
from gozon.payments import store as payments_store
from tests.settings import TEST_SETTINGS
from tests.integration.helpers import (
    amqp_channel,
    ready_broker,
    ready_database,
    retrying,
)
from tests.support import reset_databases, reset_vhost

# The durable queues of spec §4 (declared by the Broker on connect) and their DLQs.
QUEUES = [ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE, dead_letter_queue(ORDERS_QUEUE),
          dead_letter_queue(PAYMENTS_RESULTS_QUEUE)]


@pytest.fixture
def anyio_backend() -> str:
    # asyncpg and aio-pika run on asyncio only.
    return "asyncio"


@pytest.fixture(autouse=True)
def collect_garbage() -> Iterator[None]:
    """Collect each test's garbage within that test, so that a ResourceWarning (an error
    here) is reported by the test whose objects leaked, not by a later one."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def clean_slate() -> None:
    """Fresh, migrated gozon_test_<slot>_* databases and an empty vhost, once."""
    anyio.run(reset_databases, TEST_SETTINGS)
    reset_vhost()


@pytest.fixture
async def orders_db(clean_slate: None) -> AsyncIterator[Database]:
    """The orders database, migrated and empty."""
    async with ready_database(TEST_SETTINGS.orders_db, orders_store.MIGRATIONS) as db:
        async with db.acquire() as con:
            await con.execute("TRUNCATE idempotency_keys, orders, outbox, inbox RESTART IDENTITY CASCADE")
        yield db


@pytest.fixture
async def payments_db(clean_slate: None) -> AsyncIterator[Database]:
    """The payments database, migrated and empty."""
    async with ready_database(TEST_SETTINGS.payments_db, payments_store.MIGRATIONS) as db:
        async with db.acquire() as con:
            await con.execute("TRUNCATE ledger, payments, accounts, outbox, inbox RESTART IDENTITY CASCADE")
        yield db


@pytest.fixture
async def broker(clean_slate: None) -> AsyncIterator[Broker]:
    """A connected Broker (topology declared), with every queue of ours emptied."""
    async with ready_broker() as broker:
        await purge(*QUEUES)
        yield broker


async def purge(*queues: str) -> None:
    async def attempt() -> None:
        async with amqp_channel() as channel:
            for name in queues:
                queue = await channel.get_queue(name, ensure=False)
                with anyio.fail_after(10):
                    await queue.purge()

    await retrying(attempt, "purge the test queues")
