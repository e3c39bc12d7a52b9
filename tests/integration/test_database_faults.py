"""PostgreSQL failing under the product, for real: out of connection slots, backends
terminated mid-use, an admin shutdown and restart, deadlocks and serialization
failures, asyncpg's client errors around a lost connection. Each comes out of
`Database` as `DatabaseUnavailable` (transient: wait and retry), never as a bug, and
the pool recovers by itself once PostgreSQL does.

Whatever would disturb the shared server (exhausting its slots, restarting it) runs on
a private cluster of this module's own; deadlocks and serialization failures only
touch this slot's own test database."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import anyio
import asyncpg
import pytest

from gozon.actors.relay import OutboxRelay
from gozon.actors.retention import Retention, outbox_and_inbox
from gozon.amqp.broker import Broker
from gozon.amqp.consumer import Consumer, Delivery
from gozon.amqp.topology import named_queue
from gozon.db import Database
from gozon.db.listen import listen_forever
from gozon.errors import DatabaseUnavailable, Transient
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.orders import api as orders_api
from gozon.orders import store as orders_store
from gozon.orders.schemas import CreateOrder
from gozon.orders.writer import OrderWriter
from gozon.payments import handlers as payments_handlers
from gozon.payments import store as payments_store
from gozon.runtime.tasks import task_group
from tests.integration.helpers import eventually, ready_database, running
from tests.private_postgres import PrivateCluster, private_cluster
from tests.settings import TEST_SETTINGS

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

# Small, so that the test can take every slot itself.
MAX_CONNECTIONS = 8
# An outage is told at once: a request gets its 503 well before ACQUIRE_TIMEOUT (5 s).
PROMPT = 3.0


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateCluster]:
    with private_cluster(max_connections=MAX_CONNECTIONS) as cluster:
        yield cluster


@pytest.fixture
def cluster(private: PrivateCluster) -> PrivateCluster:
    """The private cluster, up (a test that stopped it may have failed before restarting it)."""
    if not (private.data / "postmaster.pid").exists():
        private.start()
    return private


@pytest.fixture
async def orders(cluster: PrivateCluster) -> AsyncIterator[Database]:
    async with ready_database(cluster.database("faults_orders"), orders_store.MIGRATIONS, pool_size=3) as db:
        yield db


@pytest.fixture
async def payments(cluster: PrivateCluster) -> AsyncIterator[Database]:
    async with ready_database(cluster.database("faults_payments"), payments_store.MIGRATIONS, pool_size=3) as db:
        async with db.acquire() as con:
            await con.execute("TRUNCATE ledger, payments, accounts, outbox, inbox RESTART IDENTITY CASCADE")
        yield db


@pytest.fixture
async def admin(cluster: PrivateCluster) -> AsyncIterator[asyncpg.Connection]:
    """A connection of the test's own, outside any pool (to terminate backends with)."""
    con = await asyncpg.connect(cluster.database("postgres"), timeout=10)
    try:
        yield con
    finally:
        await con.close(timeout=5)


async def fill_slots(cluster: PrivateCluster) -> list[asyncpg.Connection]:
    """Every connection slot left, taken by a raw connection; nobody can connect after."""
    hogs = []
    while True:
        try:
            hogs.append(await asyncpg.connect(cluster.database("postgres"), timeout=10))
        except asyncpg.TooManyConnectionsError:
            return hogs
        assert len(hogs) <= MAX_CONNECTIONS, "max_connections did not hold"


async def close_all(connections: list[asyncpg.Connection]) -> None:
    for con in connections:
        await con.close(timeout=5)


def causes(exc: BaseException | None) -> list[type[BaseException]]:
    """The types of `exc` and of what it was raised from or during, outermost first."""
    found = []
    while exc is not None:
        found.append(type(exc))
        exc = exc.__cause__ or exc.__context__
    return found


async def terminate(admin: asyncpg.Connection, pid: int, after: float = 0.0) -> None:
    await anyio.sleep(after)
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)


async def unavailable(work: Callable[[], Awaitable[object]]) -> DatabaseUnavailable:
    """`work()`'s DatabaseUnavailable, raised within PROMPT seconds."""
    with anyio.fail_after(PROMPT), pytest.raises(DatabaseUnavailable) as raised:
        await work()
    return raised.value


async def works(db: Database) -> bool:
    try:
        async with db.acquire() as con:
            return await con.fetchval("SELECT 1") == 1
    except DatabaseUnavailable:
        return False


# ---------------------------------------------------------------------------------------
# (a) Every connection slot taken.
# ---------------------------------------------------------------------------------------


async def test_out_of_connection_slots_is_unavailable_at_once_and_recovers(
        cluster: PrivateCluster, orders: Database) -> None:
    writer = OrderWriter(orders, batch=8)
    app = orders_api.build(orders, writer, {"database": orders.ping}, TEST_SETTINGS).test_client()

    async def acquire() -> None:
        async with orders.acquire():
            pass

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer.run)
        try:
            # The pool's one connection is busy: whatever comes next needs a new one.
            async with orders.acquire():
                hogs = await fill_slots(cluster)
                try:
                    refused = await unavailable(acquire)
                    assert asyncpg.TooManyConnectionsError in causes(refused), causes(refused)
                    # The order writer tells its caller (an HTTP request) the same, at once.
                    with anyio.fail_after(PROMPT), pytest.raises(Transient):
                        await writer.place(CreateOrder(user_id=1, amount=10), "trace-slots")
                    # And the API answers a JSON 503.
                    started = time.perf_counter()
                    with anyio.fail_after(PROMPT):
                        response = await app.post("/orders", json={"user_id": 1, "amount": 10})
                    took = time.perf_counter() - started
                    assert response.status_code == 503, await response.get_data(as_text=True)
                    assert (await response.get_json())["error"] == "database_unavailable"
                    assert not await orders.ping()
                finally:
                    await close_all(hogs)
                # Slots free: the pool opens its second connection and work goes on.
                await eventually(lambda: works(orders), timeout=10, what="the pool to connect once a slot is free")
            with anyio.fail_after(10):
                order = await writer.place(CreateOrder(user_id=1, amount=10), "trace-after")
            assert order.status == "new"
        finally:
            writer.close()
    print(f"\nout of slots: POST /orders → 503 in {took * 1000:.0f} ms")


# ---------------------------------------------------------------------------------------
# (b) pg_terminate_backend of the pool's connections, mid-use and idle.
# ---------------------------------------------------------------------------------------


async def test_a_connection_terminated_mid_query_is_unavailable_and_the_next_use_works(
        orders: Database, admin: asyncpg.Connection) -> None:
    async def killed_in_a_query() -> None:
        async with orders.acquire() as con, con.transaction(), task_group() as tg:
            tg.start_soon(terminate, admin, con.get_server_pid(), 0.3)
            await con.execute("SELECT pg_sleep(10)")

    lost = await unavailable(killed_in_a_query)
    assert asyncpg.AdminShutdownError in causes(lost), causes(lost)
    assert await works(orders)


async def test_a_connection_terminated_between_statements_is_unavailable_not_a_bug(
        orders: Database, admin: asyncpg.Connection) -> None:
    """The loss is first seen by the next statement, which asyncpg refuses as a client
    error ("released back to the pool"), and the transaction's ROLLBACK again
    (InterfaceError): both on a connection that is gone, so an outage."""

    async def killed_between() -> None:
        async with orders.acquire() as con, con.transaction():
            await con.execute("SELECT 1")
            await terminate(admin, con.get_server_pid())
            await anyio.sleep(0.3)  # the connection's end arrives meanwhile
            await con.execute("SELECT 2")

    lost = await unavailable(killed_between)
    assert asyncpg.InterfaceError in causes(lost), causes(lost)
    assert await works(orders)


async def test_idle_connections_terminated_are_replaced_by_the_pool(
        orders: Database, admin: asyncpg.Connection) -> None:
    async with orders.acquire() as con:
        pid = con.get_server_pid()
    await terminate(admin, pid)
    # A use may meet the dead connection before the pool noticed: an outage, not a bug.
    outcomes = []
    for _ in range(3):
        try:
            async with orders.acquire() as con:
                outcomes.append(await con.fetchval("SELECT pg_backend_pid()") != pid)
        except DatabaseUnavailable:
            outcomes.append("unavailable")
    assert outcomes[-2:] == [True, True], outcomes


async def test_a_payment_whose_connection_is_terminated_is_retried_and_charged_once(
        payments: Database, admin: asyncpg.Connection) -> None:
    """The consumer's handler, killed while its debit waits on a row lock: a Transient
    (the consumer keeps the batch and retries), nothing half-done; the retry charges once."""
    async with payments.acquire() as con:
        await payments_store.create_account(con, 7)
        await payments_store.deposit(con, 7, 100)
    handle = payments_handlers.payment_requested(payments)
    delivery = Delivery(message_id=uuid.uuid4(), trace_id="trace-killed", redelivered=False,
                        body=PaymentRequested(order_id=70, user_id=7, amount=60))
    blocker = await asyncpg.connect(payments.dsn, timeout=10)
    try:
        lock = blocker.transaction()
        await lock.start()
        await blocker.execute("SELECT 1 FROM accounts WHERE user_id = 7 FOR UPDATE")

        async def waiting_debit() -> int | None:
            return await admin.fetchval("SELECT pid FROM pg_stat_activity"
                                        " WHERE wait_event_type = 'Lock' AND datname = 'faults_payments'")

        async def killed_while_waiting() -> None:
            async with task_group() as tg:
                tg.start_soon(handle, [delivery])
                pid = await eventually(waiting_debit, timeout=PROMPT, what="the debit to wait on the row lock")
                await terminate(admin, pid)

        lost = await unavailable(killed_while_waiting)
        assert asyncpg.AdminShutdownError in causes(lost), causes(lost)
        await lock.rollback()
    finally:
        await blocker.close(timeout=5)
    with anyio.fail_after(10):
        await handle([delivery])
        await handle([delivery])  # a redelivery: skipped by the inbox
    async with payments.acquire() as con:
        assert (await payments_store.balance(con, 7)).balance == 40
        assert await con.fetchval("SELECT count(*) FROM ledger WHERE kind = 'debit' AND order_id = 70") == 1


# ---------------------------------------------------------------------------------------
# (c) Admin shutdown: the cluster restarted (pg_ctl restart -m fast) and stopped.
# ---------------------------------------------------------------------------------------


async def test_a_restart_is_unavailable_meanwhile_and_the_pool_and_listener_recover(
        cluster: PrivateCluster, orders: Database) -> None:
    rings = 0  # each notification, and each (re-)LISTEN

    def rang() -> None:
        nonlocal rings
        rings += 1

    async def heard_after(before: int) -> bool:
        """NOTIFY once more; whether the listener has heard one since `before`."""
        try:
            async with orders.acquire() as con:
                await con.execute("NOTIFY outbox")
        except DatabaseUnavailable:
            return False
        await anyio.sleep(0.1)
        return rings > before

    async with task_group() as tg:
        # listen_forever must outlive the restart (its check finds the connection dead).
        tg.start_soon(lambda: listen_forever(orders.dsn, "outbox", rang, check_every=0.2))
        await eventually(lambda: heard_after(0), what="the listener to hear a NOTIFY")
        listened = rings

        async def in_flight_during_restart() -> None:
            async with orders.acquire() as con, con.transaction(), task_group() as inner:
                inner.start_soon(anyio.to_thread.run_sync, cluster.restart)
                await con.execute("SELECT pg_sleep(20)")

        # -m fast: each backend is sent an admin shutdown (57P01) before the cluster stops.
        lost = await unavailable(in_flight_during_restart)
        assert asyncpg.AdminShutdownError in causes(lost), causes(lost)
        await eventually(lambda: works(orders), timeout=30, what="the pool to reconnect after the restart")

        async def listening_again() -> bool:
            return rings > listened

        await eventually(listening_again, timeout=20, what="the listener to LISTEN again after the restart")
        before = rings  # from here on, only a notification rings
        await eventually(lambda: heard_after(before), timeout=20, what="a NOTIFY heard after the restart")
        tg.cancel_scope.cancel()


async def test_while_stopped_every_use_is_unavailable_at_once(cluster: PrivateCluster, orders: Database) -> None:
    await anyio.to_thread.run_sync(cluster.stop)
    try:
        async def use() -> None:
            async with orders.acquire() as con:
                await con.fetchval("SELECT 1")

        durations = []
        for _ in range(5):
            started = time.perf_counter()
            await unavailable(use)
            durations.append(time.perf_counter() - started)
        assert not await orders.ping()
    finally:
        await anyio.to_thread.run_sync(cluster.start)
    await eventually(lambda: works(orders), timeout=30, what="the pool to reconnect after the start")
    print(f"\ncluster stopped: each use DatabaseUnavailable in at most {max(durations) * 1000:.0f} ms")


async def test_actors_drain_within_10s_while_the_database_is_down(
        cluster: PrivateCluster, payments: Database, broker: Broker) -> None:
    """The relay, the consumer and retention retrying a database that is gone still
    return promptly once stopped (`running` requires it within DRAIN seconds)."""
    relay = OutboxRelay(payments, broker, batch=10, poll_interval=0.2)
    consumer = Consumer(broker, named_queue(ORDERS_QUEUE), PaymentRequested,
                        payments_handlers.payment_requested(payments), workers=1, ready=payments.wait_ready)
    retention = Retention(payments, outbox_and_inbox(TEST_SETTINGS), every=0.2)
    try:
        async with running(relay, consumer, retention):
            await anyio.to_thread.run_sync(cluster.stop)
            await anyio.sleep(2)  # long enough for each to meet the outage and back off
            started = time.perf_counter()
        took = time.perf_counter() - started
    finally:
        await anyio.to_thread.run_sync(cluster.start)
    print(f"\nrelay, consumer and retention with the database down: stopped in {took * 1000:.0f} ms")


# ---------------------------------------------------------------------------------------
# (d) Deadlock and serialization failure: retry the transaction.
# ---------------------------------------------------------------------------------------


async def test_a_deadlock_is_transient_and_the_transaction_can_be_retried(orders_db: Database) -> None:
    async with orders_db.acquire() as con:
        first, second = [row["id"] for row in await con.fetch(
            "INSERT INTO orders (user_id, amount) VALUES (1, 1), (1, 2) RETURNING id")]
    locked = [anyio.Event(), anyio.Event()]
    outcomes: list[BaseException | None] = [None, None]

    async def update(ids: tuple[int, int], mine: anyio.Event, theirs: anyio.Event) -> None:
        async with orders_db.acquire() as con, con.transaction():
            await con.execute("UPDATE orders SET amount = amount + 1 WHERE id = $1", ids[0])
            mine.set()
            await theirs.wait()  # each holds one row and asks for the other's
            await con.execute("UPDATE orders SET amount = amount + 1 WHERE id = $1", ids[1])

    async def attempt(n: int) -> None:
        try:
            await update((first, second) if n == 0 else (second, first), locked[n], locked[1 - n])
        except Exception as exc:
            outcomes[n] = exc

    with anyio.fail_after(15):  # deadlock_timeout (1 s) until PostgreSQL picks a victim
        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, 0)
            tg.start_soon(attempt, 1)
    failed = [exc for exc in outcomes if exc is not None]
    assert len(failed) == 1, outcomes
    assert isinstance(failed[0], DatabaseUnavailable), repr(failed[0])
    assert asyncpg.DeadlockDetectedError in causes(failed[0])
    with anyio.fail_after(10):  # the victim's retry goes through
        await update((first, second), anyio.Event(), locked[0])
    async with orders_db.acquire() as con:
        assert [r["amount"] for r in await con.fetch("SELECT amount FROM orders ORDER BY id")] == [3, 4]


async def test_a_serialization_failure_is_transient(orders_db: Database) -> None:
    async with orders_db.acquire() as con:
        order_id = await con.fetchval("INSERT INTO orders (user_id, amount) VALUES (1, 1) RETURNING id")

    async def lost_update() -> None:
        async with orders_db.acquire() as con, con.transaction(isolation="repeatable_read"):
            await con.fetchval("SELECT amount FROM orders WHERE id = $1", order_id)  # the snapshot
            async with orders_db.acquire() as other:
                await other.execute("UPDATE orders SET amount = 5 WHERE id = $1", order_id)
            await con.execute("UPDATE orders SET amount = amount + 1 WHERE id = $1", order_id)

    failed = await unavailable(lost_update)
    assert asyncpg.SerializationError in causes(failed), causes(failed)


# ---------------------------------------------------------------------------------------
# (e) InternalClientError around a lost connection.
# ---------------------------------------------------------------------------------------


async def test_client_errors_around_a_lost_connection_are_unavailable(orders: Database) -> None:
    """The server ends sessions idle past `idle_session_timeout`; a query sent just as
    that FATAL arrives meets asyncpg's protocol in its error state: InternalClientError
    "cannot switch to state ...; another operation is in progress" (or InterfaceError
    "released back to the pool"). Each is a lost connection: DatabaseUnavailable."""
    seen: Counter[str] = Counter()

    async def race(pause: float) -> None:
        try:
            async with orders.acquire() as con:
                await con.execute("SET idle_session_timeout = '50ms'")
                await anyio.sleep(pause)
                await con.fetchval("SELECT 1")
                await con.execute("SET idle_session_timeout = 0")
            seen["ok"] += 1
        except DatabaseUnavailable as exc:
            seen[causes(exc)[1].__name__] += 1

    deadline = time.monotonic() + 60
    with anyio.fail_after(90):
        while not seen["InternalClientError"] and time.monotonic() < deadline:
            async with anyio.create_task_group() as tg:
                for n in range(3):
                    tg.start_soon(race, 0.046 + 0.004 * n)
    print(f"\nqueries racing idle_session_timeout: {dict(seen)}")
    assert seen["InternalClientError"], f"InternalClientError not provoked within 60 s: {dict(seen)}"
    await eventually(lambda: works(orders), timeout=10, what="the pool to replace its lost connections")


async def test_a_client_error_on_a_live_connection_stays_a_bug(orders: Database) -> None:
    """Only a lost connection makes asyncpg's client errors an outage: two queries at
    once on one connection is our own mistake, and must crash, not be retried forever."""
    with anyio.fail_after(10), pytest.raises(asyncpg.InterfaceError, match="another operation is in progress"):
        async with orders.acquire() as con, task_group() as tg:
            tg.start_soon(con.execute, "SELECT pg_sleep(0.5)")
            await anyio.sleep(0.1)
            await con.execute("SELECT 1")
    assert await works(orders)
