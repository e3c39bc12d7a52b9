"""Faults: a stopped or killed service, a broker restart, a dependency that is down when
a service starts. Whatever happens, every order answered 201 ends finished or
cancelled, nobody is charged twice, and the WebSocket still tells the shopper."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.burst import Burst
from tests.e2e.money import check_money, check_reconciled
from tests.e2e.probe import probe
from tests.e2e.scenarios import paid_order
from tests.settings import TEST_SETTINGS, VHOST, rabbitmqctl
from tests.e2e.shopper import (
    Shopper,
    TERMINAL,
    balance_of,
    funded_user,
    new_user_id,
    orders_of,
    results_until,
    wait_settled,
)
from tests.private_postgres import PrivateCluster
from tests.support import Stack, wait_until

NAMES = ("gateway", "orders", "payments")
# A port of this slot's own, next to the three services' (gateway_port + 0..2).
AMQP_PROXY_PORT = TEST_SETTINGS.gateway_port + 5


def _all_ready(stack: Stack) -> bool:
    return all(probe(stack[name].port, "/readyz")[0] == 200 for name in NAMES)


def _log_count(stack: Stack, name: str, event: str) -> int:
    return sum(f'"event":"{event}"' in line for line in stack[name].log_lines())


# ---------------------------------------------------------------------------------------
# Scenario 3 of the original: payments is down, orders wait, then go through.
# ---------------------------------------------------------------------------------------


def test_scenario_3_orders_wait_while_payments_is_stopped(running: Stack, client: httpx.Client) -> None:
    rich = funded_user(client, 1000)
    nobody = new_user_id()  # no account
    shopper = Shopper(running.gateway_url, running.ws_url, rich)
    try:
        with shopper.connect() as ws:
            code = running["payments"].stop()
            assert code == 0, f"payments exited {code} on SIGTERM:\n{running['payments'].tail()}"
            try:
                # The shopper notices payments is down: a JSON 502, not a hang or HTML.
                down = client.get("/accounts/balance", params={"user_id": rich})
                assert down.status_code == 502 and down.json()["error"], down.text
                plan = [(rich, 100)] * 15 + [(nobody, 50)] * 5
                with ThreadPoolExecutor(20) as pool:
                    placed = list(pool.map(
                        lambda o: client.post("/orders", json={"user_id": o[0], "amount": o[1]}), plan))
                assert [p.status_code for p in placed] == [201] * 20, [p.text for p in placed]
                ids = {p.json()["id"] for p in placed}
                # Nothing can be paid meanwhile: no frame for 2 s, and every order still new.
                with pytest.raises(TimeoutError):
                    pytest.fail(f"a result while payments is down: {ws.recv(timeout=2)}")
                waiting = orders_of(client, rich) + orders_of(client, nobody)
                assert {o["id"] for o in waiting} == ids
                assert {o["status"] for o in waiting} == {"new"}
            finally:
                started = time.perf_counter()
                running.start()
            frames = results_until(ws, {p.json()["id"] for p in placed[:15]}, timeout=30)
            caught_up = time.perf_counter() - started
        settled = wait_settled(client, [rich, nobody], ids, timeout=30)
        assert Counter((o["status"], o.get("reason")) for o in settled[rich]) == {
            ("finished", None): 10, ("cancelled", "insufficient_funds"): 5}
        assert Counter((o["status"], o.get("reason")) for o in settled[nobody]) == {
            ("cancelled", "account_not_found"): 5}
        assert {f["order_id"]: f["order_status"] for f in frames.values()} == {
            o["id"]: o["status"] for o in settled[rich]}
        assert balance_of(client, rich) == 0
        check_money(client, {rich: 1000}, {rich: settled[rich]})
        print(f"\npayments restarted: the 15 waiting results on the WebSocket {caught_up * 1000:.0f} ms after start")
    finally:
        shopper.http.close()


# ---------------------------------------------------------------------------------------
# kill -9 in the middle of a burst of 200 orders over 10 users.
# ---------------------------------------------------------------------------------------


def _ten_users(client: httpx.Client, seed: int) -> tuple[dict[int, int], list[tuple[int, int]]]:
    """10 users with known deposits and 200 orders of varied amounts, shuffled; about
    a third of them cannot be paid."""
    rng = random.Random(seed)
    deposits = {funded_user(client, 1000 + 250 * i): 1000 + 250 * i for i in range(10)}
    plan = [(user, rng.randint(20, 260)) for user in deposits for _ in range(20)]
    rng.shuffle(plan)
    return deposits, plan


@pytest.mark.parametrize("victim", [None, "payments", "orders"], ids=["no-fault", "kill-9-payments", "kill-9-orders"])
def test_burst_of_200_orders_with_kill_9(running: Stack, client: httpx.Client, victim: str | None) -> None:
    deposits, plan = _ten_users(client, seed=len(str(victim)))
    # Each order has its own Idempotency-Key and is retried while the answer is a 502
    # (orders being down): all 200 must exist in the end, each exactly once.
    burst = Burst(client, plan, workers=32, retry_for=30).start()
    killed_after = None
    try:
        if victim is not None:
            burst.wait_answered(60, timeout=30)
            killed_after = burst.answered()
            running[victim].kill()
            running.start()  # restarted at once, while the burst goes on
        burst.join(timeout=60)
    finally:
        running.start()
    created = burst.created()
    assert len(created) == 200, burst.statuses()
    settled = wait_settled(client, list(deposits), set(created), timeout=90)
    done = time.perf_counter()
    check_money(client, deposits, settled)
    check_reconciled()
    orders = [o for user_orders in settled.values() for o in user_orders]
    assert all(o["status"] in TERMINAL for o in orders)
    assert all(o["status"] == "finished" or o.get("reason") == "insufficient_funds" for o in orders)
    assert len(orders) == 200, f"{len(orders)} orders exist for 200 planned (a retry created a duplicate?)"
    outcome = Counter(o["status"] for o in orders)
    assert outcome["finished"] and outcome["cancelled"], outcome  # the amounts were chosen for both
    total = done - burst.started_at
    print(f"\nburst of {len(plan)} orders over 10 users, {victim or 'no'} kill -9"
          f"{f' after {killed_after} answers' if killed_after else ''}: answers {burst.statuses()}, "
          f"{burst.retries} retried POSTs, "
          f"{len(orders)} orders exist, {dict(outcome)}; POSTs took {(burst.finished_at - burst.started_at):.2f} s; "
          f"first POST → last order terminal {total:.2f} s ({len(orders) / total:.0f} orders/s)")


# ---------------------------------------------------------------------------------------
# A broker restart in the middle of a burst; nobody restarts any process by hand.
# ---------------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_broker_restart_during_burst(running: Stack, client: httpx.Client) -> None:
    deposits, plan = _ten_users(client, seed=7)
    watched = next(iter(deposits))
    shopper = Shopper(running.gateway_url, running.ws_url, watched)
    try:
        with shopper.connect() as ws:
            burst = Burst(client, plan, workers=16).start()
            burst.wait_answered(50, timeout=30)
            down_at = time.perf_counter()
            try:
                rabbitmqctl("stop_app", timeout=120)
                # Every service notices: not ready, but alive and still taking orders.
                wait_until(lambda: all(probe(running[n].port, "/readyz")[0] == 503 for n in NAMES),
                           timeout=15, what="every service to report not ready while the broker is down")
                assert all(probe(running[n].port, "/healthz")[0] == 200 for n in NAMES)
                during = client.post("/orders", json={"user_id": watched, "amount": 1})
                assert during.status_code == 201, during.text
            finally:
                rabbitmqctl("start_app", timeout=120)
            up_at = time.perf_counter()
            burst.join(timeout=60)
            wait_until(lambda: _all_ready(running), timeout=60, interval=0.2,
                       what="gateway, orders and payments ready again after start_app")
            ready_at = time.perf_counter()
            assert all(running[n].running() for n in NAMES), "a process died during the broker restart"

            # The WebSocket opened before the restart is still open (spec §3: the gateway
            # reconnects by itself and open connections stay open) and gets every result
            # of the user's orders: those published while the gateway was cut off waited
            # in its durable queue.
            after = [shopper.order(amount) for amount in (5, 6, 7)]
            watched_ids = ({i for i, o in burst.created().items() if o["user_id"] == watched}
                           | {during.json()["id"]} | {o["id"] for o in after})
            frames = results_until(ws, watched_ids, timeout=60)
            for order in after:
                assert frames[order["id"]]["status"] == "success", frames[order["id"]]
            ws_results_at = time.perf_counter()

        created = burst.created() | {during.json()["id"]: during.json()} | {o["id"]: o for o in after}
        assert len(burst.created()) == 200, burst.statuses()
        settled = wait_settled(client, list(deposits), set(created), timeout=90)
        check_money(client, deposits, settled)
        for order in settled[watched]:
            assert frames[order["id"]]["order_status"] == order["status"], (frames[order["id"]], order)
        print(f"\nbroker restart during a burst of 200: answers {burst.statuses()}; broker down for "
              f"{up_at - down_at:.1f} s; all ready {ready_at - up_at:.1f} s after start_app; "
              f"all {len(watched_ids)} results of the watched user on the old WebSocket "
              f"{ws_results_at - ready_at:.2f} s after ready")
    finally:
        shopper.http.close()


# ---------------------------------------------------------------------------------------
# Start-up order does not matter: a service starts while its dependency is down.
# ---------------------------------------------------------------------------------------


class TcpProxy:
    """A TCP forwarder on 127.0.0.1:`port` to `target`: "RabbitMQ is down" for the
    processes pointed at it until it starts, without stopping the shared broker."""

    def __init__(self, port: int, target: tuple[str, int]) -> None:
        self.port = port
        self.target = target
        self._server: socket.socket | None = None
        self._stopping = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        server.settimeout(0.1)
        self._server = server
        self._spawn(self._accept)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                downstream, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                downstream.close()
                continue
            downstream.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [downstream, upstream]
            self._spawn(self._pump, downstream, upstream)
            self._spawn(self._pump, upstream, downstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(5)
        for sock in [*sockets, *([self._server] if self._server else [])]:
            sock.close()


def _scenario_1(stack: Stack) -> None:
    """Scenario 1 for a new user, with time for the first result of a process just (re)started."""
    shopper = Shopper(stack.gateway_url, stack.ws_url)
    try:
        paid_order(shopper, timeout=30)
    finally:
        shopper.http.close()


def test_services_started_while_the_broker_is_unreachable_become_ready_by_themselves(
        running: Stack, client: httpx.Client) -> None:
    """The three processes start pointed at a broker address where nothing listens yet (a
    proxy to the real RabbitMQ, started later): they stay alive, live but not ready, keep
    taking orders, and become ready by themselves once the broker answers. (A proxy
    rather than `rabbitmqctl stop_app`, so that only one test stops the shared broker.)"""
    codes = running.stop()
    assert codes == {n: 0 for n in NAMES}, codes
    proxy = TcpProxy(AMQP_PROXY_PORT, ("127.0.0.1", 5672))
    retries_before = {n: _log_count(running, n, "broker unavailable, retrying") for n in NAMES}
    try:
        for name in NAMES:
            running[name].start({"GOZON_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{AMQP_PROXY_PORT}/{VHOST}"})
        wait_until(lambda: all(probe(running[n].port, "/healthz")[0] == 200 for n in NAMES), timeout=30,
                   what="every process to answer /healthz")
        # A few reconnect attempts later they are all still alive, and say why not ready.
        wait_until(lambda: all(_log_count(running, n, "broker unavailable, retrying") >= retries_before[n] + 3
                               for n in NAMES), timeout=15, what="each process to retry the broker")
        for name in NAMES:
            assert running[name].running(), f"{name} exited:\n{running[name].tail()}"
            status, body = probe(running[name].port, "/readyz")
            assert status == 503 and body["checks"]["broker"] is False, (name, status, body)
            assert probe(running[name].port, "/healthz")[0] == 200
        # PostgreSQL is up: accounts and orders work, and the order waits in the outbox.
        early_user = funded_user(client, 1000)
        early = client.post("/orders", json={"user_id": early_user, "amount": 300})
        assert early.status_code == 201, early.text

        proxy.start()
        wait_until(lambda: _all_ready(running), timeout=30, interval=0.2, what="every process ready after the broker came")
        settled = wait_settled(client, [early_user], {early.json()["id"]}, timeout=30)
        assert settled[early_user][0]["status"] == "finished"
        assert balance_of(client, early_user) == 700
        _scenario_1(running)
        codes = running.stop()
        assert codes == {n: 0 for n in NAMES}, codes
    finally:
        running.stop()
        proxy.stop()
        running.start()


def test_payments_started_before_its_database_retries_then_works(running: Stack, client: httpx.Client) -> None:
    """payments on a PostgreSQL that is not up yet: alive, retrying, 503 JSON, drains on
    SIGTERM; started again and the database brought up, it becomes ready by itself
    (creating and migrating its database) and payments go through."""
    cluster = PrivateCluster()
    payments = running["payments"]
    private_env = {"GOZON_PAYMENTS_DB": f"{cluster.dsn}/{TEST_SETTINGS.payments_db.rsplit('/', 1)[1]}"}
    try:
        cluster.init()  # initialised, not started: nothing listens on its port yet
        assert payments.stop() == 0
        retries_before = _log_count(running, "payments", "database unavailable, retrying")
        payments.start(private_env)
        wait_until(lambda: _log_count(running, "payments", "database unavailable, retrying") >= retries_before + 3,
                   timeout=20, what="payments to retry the database")
        assert payments.running(), payments.tail()
        assert probe(payments.port, "/healthz")[0] == 200
        status, body = probe(payments.port, "/readyz")
        assert status == 503 and body["checks"]["database"] is False, (status, body)
        for response in (client.get("/accounts/balance", params={"user_id": 1}),
                         client.post("/accounts", json={"user_id": new_user_id()})):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"].startswith("application/json")
            assert response.json()["error"] == "database_unavailable", response.json()
        started = time.perf_counter()
        assert payments.stop(timeout=10) == 0, payments.tail()
        print(f"\npayments with its database down: SIGTERM → exit 0 in {(time.perf_counter() - started) * 1000:.0f} ms")

        payments.start(private_env)
        wait_until(lambda: _log_count(running, "payments", "database unavailable, retrying") >= retries_before + 5,
                   timeout=20, what="payments to retry the database again")
        cluster.start()
        came_up = time.perf_counter()
        wait_until(lambda: probe(payments.port, "/readyz")[0] == 200 or not payments.running(), timeout=30,
                   interval=0.1, what="payments ready once its database is up")
        assert payments.running(), payments.tail()
        print(f"payments ready {time.perf_counter() - came_up:.2f} s after its PostgreSQL came up")
        _scenario_1(running)
        assert payments.stop() == 0, payments.tail()
    finally:
        payments.stop()
        try:
            cluster.stop()
        finally:
            cluster.remove()
            running.start()
