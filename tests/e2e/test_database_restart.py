"""PostgreSQL restarting or down under the running processes (orders and payments on a
private cluster, so that the shared server is never touched): every process stays up,
a request meanwhile gets a prompt JSON 503, every order answered 201 ends finished or
cancelled once PostgreSQL is back, money is conserved, and SIGTERM still drains
within 10 s while the database is down."""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from gozon.messages import ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE
from tests.e2e.burst import Attempt, Burst
from tests.e2e.money import check_money
from tests.e2e.probe import probe
from tests.e2e.shopper import TERMINAL, funded_user, wait_settled
from tests.private_postgres import PrivateCluster, private_cluster
from tests.settings import TEST_SETTINGS, VHOST, rabbitmqctl
from tests.support import Stack, wait_until

NAMES = ("gateway", "orders", "payments")
ON_POSTGRES = ("orders", "payments")
DRAIN_LIMIT = 10.0  # spec §1: a SIGTERM drain completes within 10 s
# The longest any request may take while PostgreSQL is down or restarting: a prompt 503,
# never a hang (the pool's acquire timeout is 5 s).
PROMPT = 5.0


def _database(dsn: str) -> str:
    return dsn.rsplit("/", 1)[1]


def _payments_db(cluster: PrivateCluster) -> str:
    return cluster.database(_database(TEST_SETTINGS.payments_db))


def _start_on(stack: Stack, cluster: PrivateCluster) -> None:
    """orders and payments started with their databases on `cluster` (created and
    migrated by the services themselves), and ready."""
    env = {"GOZON_ORDERS_DB": cluster.database(_database(TEST_SETTINGS.orders_db)),
           "GOZON_PAYMENTS_DB": _payments_db(cluster)}
    for name in ON_POSTGRES:
        stack[name].start(env)
    for name in ON_POSTGRES:
        stack[name].wait_ready(timeout=60)
    wait_until(lambda: probe(stack["gateway"].port, "/readyz")[0] == 200, timeout=30,
               what="the gateway ready on the restarted services")


def _purge_service_queues() -> None:
    """Empty the queues between orders and payments while both are stopped: a fresh
    cluster numbers orders from 1 again, and a message left over about another
    database's order 7 must not meet this one's (payments would take it as order 7's
    payment, and the real order 7 would then never be charged)."""
    for queue in (ORDERS_QUEUE, PAYMENTS_RESULTS_QUEUE):
        rabbitmqctl("purge_queue", "-p", VHOST, queue)


@contextmanager
def on_private_cluster(stack: Stack) -> Iterator[PrivateCluster]:
    """orders and payments moved onto a private cluster; back on the shared server after.
    No process may log an error meanwhile (a crash, an unhandled error, a poison message)."""
    errors_before = len(stack.errors())
    try:
        with private_cluster() as cluster:
            try:
                for name in ON_POSTGRES:
                    assert stack[name].stop() == 0, stack[name].tail()
                _purge_service_queues()
                _start_on(stack, cluster)
                yield cluster
                assert stack.errors()[errors_before:] == [], "a process logged an error"
            finally:
                for name in ON_POSTGRES:
                    stack[name].stop()
                _purge_service_queues()
    finally:
        stack.start()


def _users_and_plan(client: httpx.Client, seed: int, orders: int) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """10 users with known deposits and `orders` orders of varied amounts, each for a
    user drawn at random; some cannot be paid."""
    rng = random.Random(seed)
    deposits = {funded_user(client, 1000 + 250 * i): 1000 + 250 * i for i in range(10)}
    plan = [(rng.choice(list(deposits)), rng.randint(20, 260)) for _ in range(orders)]
    return deposits, plan


def _pids(stack: Stack) -> dict[str, int]:
    return {name: stack[name].proc.pid for name in NAMES if stack[name].running()}


def _outage_answers(client: httpx.Client, user_id: int) -> list[tuple[str, int, float, str | None]]:
    """Each kind of request once, with PostgreSQL down: (what, status, seconds, error code)."""
    requests = [
        ("POST /orders", lambda: client.post("/orders", json={"user_id": user_id, "amount": 1})),
        ("POST /orders with a key", lambda: client.post("/orders", json={"user_id": user_id, "amount": 1},
                                                         headers={"Idempotency-Key": f"outage-{time.time_ns()}"})),
        ("GET /orders", lambda: client.get("/orders", params={"user_id": user_id})),
        ("GET /accounts/balance", lambda: client.get("/accounts/balance", params={"user_id": user_id})),
        ("POST /accounts/deposit", lambda: client.post("/accounts/deposit", json={"user_id": user_id, "amount": 1})),
    ]
    answers = []
    for what, send in requests:
        started = time.perf_counter()
        response = send()
        took = time.perf_counter() - started
        is_json = response.headers.get("content-type", "").startswith("application/json")
        answers.append((what, response.status_code, took, response.json().get("error") if is_json else None))
    return answers


def _summary(attempts: list[Attempt]) -> str:
    if not attempts:
        return "none"
    took = sorted(a.took for a in attempts)
    return (f"{len(attempts)}, median {statistics.median(took) * 1000:.0f} ms,"
            f" max {took[-1] * 1000:.0f} ms")


@pytest.mark.timeout(360)
@pytest.mark.parametrize("outage", ["restart", "down-3s"])
def test_postgresql_restart_mid_burst(running: Stack, client: httpx.Client, outage: str) -> None:
    """`restart`: pg_ctl restart -m fast (every backend told "admin shutdown", then the
    cluster stops and starts again); `down-3s`: stopped the same way, started 3 s later."""
    with on_private_cluster(running) as cluster:
        deposits, plan = _users_and_plan(client, seed=len(outage), orders=300)
        pids = _pids(running)
        # A careful client (Idempotency-Key, retries 503s) and a plain one (the order
        # writer's path: a 503 is final) at once.
        careful = Burst(client, plan[:150], workers=8, retry_for=60).start()
        plain = Burst(client, plan[150:], workers=8).start()
        careful.wait_answered(40, timeout=60)
        down_at = time.perf_counter()
        if outage == "restart":
            cluster.restart("fast")
            answers = []
        else:
            cluster.stop("fast")
            wait_until(lambda: all(probe(running[n].port, "/readyz")[0] == 503 for n in ON_POSTGRES),
                       timeout=10, what="orders and payments to report not ready")
            answers = _outage_answers(client, next(iter(deposits)))
            time.sleep(max(0.0, 3 - (time.perf_counter() - down_at)))
            cluster.start()
        up_at = time.perf_counter()
        careful.join(timeout=120)
        plain.join(timeout=120)

        # Nobody died or restarted: the same processes throughout.
        assert _pids(running) == pids, f"a process died or was restarted: {pids} → {_pids(running)}"
        # Every request was answered, as 201 or a JSON 503, and promptly.
        attempts = careful.attempts + plain.attempts
        wrong = [a for a in attempts if (a.status, a.error) not in {(201, None), (503, "database_unavailable")}]
        assert not wrong, f"answers other than 201 and a JSON 503: {Counter((a.status, a.error) for a in wrong)}"
        slow = [a for a in attempts if a.took > PROMPT]
        assert not slow, f"{len(slow)} requests took over {PROMPT} s: {sorted(a.took for a in slow)[-5:]}"
        for what, status, took, error in answers:
            assert (status, error) == (503, "database_unavailable"), (what, status, error)
            assert took < PROMPT, (what, took)
        assert len(careful.created()) == 150, careful.statuses()

        created = careful.created() | plain.created()
        settled = wait_settled(client, list(deposits), set(created), timeout=120)
        orders = [o for user_orders in settled.values() for o in user_orders]
        assert all(o["status"] in TERMINAL for o in orders)
        check_money(client, deposits, settled, payments_db=_payments_db(cluster))
        assert all(running[n].running() for n in NAMES)
        unavailable = [a for a in attempts if a.status == 503]
        print(f"\nPostgreSQL {outage} mid-burst of {len(plan)} orders: back after {up_at - down_at:.1f} s; "
              f"careful client {careful.statuses()} ({careful.retries} retries), plain {plain.statuses()}; "
              f"{len(orders)} orders exist, {dict(Counter(o['status'] for o in orders))}; "
              f"503s: {_summary(unavailable)}; all POSTs max {max(a.took for a in attempts) * 1000:.0f} ms"
              + "".join(f"; {what} {status} in {took * 1000:.0f} ms" for what, status, took, _ in answers))


@pytest.mark.timeout(300)
def test_sigterm_drains_within_10s_while_postgresql_is_down(running: Stack, client: httpx.Client) -> None:
    """Outage in the middle of a burst: consumers hold messages they keep retrying,
    relays and listeners retry the database, requests get 503s; SIGTERM to each of
    orders and payments → exit 0 within 10 s. Started again once PostgreSQL is back,
    every order answered 201 ends terminal and no money is lost or made."""
    with on_private_cluster(running) as cluster:
        deposits, plan = _users_and_plan(client, seed=3, orders=200)
        careful = Burst(client, plan, workers=8, retry_for=90).start()
        careful.wait_answered(40, timeout=60)
        cluster.stop("immediate")  # no goodbye to the clients: connections simply die
        wait_until(lambda: all(probe(running[n].port, "/readyz")[0] == 503 for n in ON_POSTGRES),
                   timeout=10, what="orders and payments to report not ready")
        time.sleep(2)  # long enough for every actor to meet the outage and back off
        took = {}
        for name in ON_POSTGRES:
            started = time.perf_counter()
            code = running[name].stop(timeout=DRAIN_LIMIT)  # fails the test if it takes longer
            took[name] = time.perf_counter() - started
            assert code == 0, f"{name} exited {code} after SIGTERM:\n{running[name].tail()}"

        # Back up: the careful client's retries meanwhile (502s, 503s) now go through.
        cluster.start()
        _start_on(running, cluster)
        careful.join(timeout=90)
        assert len(careful.created()) == len(plan), careful.statuses()
        created = careful.created()
        settled = wait_settled(client, list(deposits), set(created), timeout=120)
        check_money(client, deposits, settled, payments_db=_payments_db(cluster))
        drains = ", ".join(f"{n} exit 0 in {t * 1000:.0f} ms" for n, t in took.items())
        print(f"\nSIGTERM with PostgreSQL down: {drains}"
              + f"; burst answers {careful.statuses()}, {len(created)} orders created, all settled after")
