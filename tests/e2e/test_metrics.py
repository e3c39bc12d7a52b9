"""The operator's view of the three processes: `/healthz` and `/readyz` as a probe reads
them, and `/metrics` as Prometheus scrapes it. The stack is shared by every e2e test, so
the counters are compared before and after each test's own doings, never as absolutes."""

from __future__ import annotations

import uuid

import anyio
import asyncpg
import httpx

from gozon.amqp.topology import ORDERS_QUEUE, dead_letter_queue
from gozon.messages import PaymentRequested
from tests.e2e.probe import probe
from tests.e2e.scrape import SERVICES, Scrape, scrape_all, scrape_when
from tests.e2e.shopper import Shopper, balance_of, funded_user, next_result, wait_settled
from tests.integration.helpers import amqp_message, drain, publish
from tests.settings import TEST_SETTINGS
from tests.support import Stack, wait_until

HTTP = "gozon_http_request_duration_seconds_count"
PROCESSED = "gozon_inbox_processed_total"
DUPLICATES = "gozon_inbox_duplicates_skipped_total"
DEAD_LETTERED = "gozon_inbox_dead_lettered_total"
PUBLISHED = "gozon_outbox_published_total"
PENDING = "gozon_outbox_pending_rows"
OLDEST = "gozon_outbox_oldest_pending_age_seconds"
WS_OPEN = "gozon_ws_connections"
WS_FRAMES = "gozon_ws_frames_sent_total"
RESTARTS = "gozon_actor_restarts_total"
READY = "gozon_ready"


def requests(scrape: Scrape, method: str, route: str, status: int) -> float:
    return scrape(HTTP, method=method, route=route, status=str(status))


# ---------------------------------------------------------------------------------------
# Readiness (what the compose healthchecks ask).
# ---------------------------------------------------------------------------------------


def test_every_service_is_alive_and_ready_with_every_check_passing(running: Stack) -> None:
    checks = {"gateway": ["broker", "consumer", "orders", "payments"], "orders": ["database", "broker", "consumer"],
              "payments": ["database", "broker", "consumer"]}
    for name, expected in checks.items():
        assert probe(running[name].port, "/healthz") == (200, {"status": "ok"}), name
        assert probe(running[name].port, "/readyz") == (200, {"status": "ready",
                                                               "checks": dict.fromkeys(expected, True)}), name


def test_the_gateway_is_not_ready_while_payments_is_stopped(running: Stack) -> None:
    gateway = running["gateway"].port
    assert running["payments"].stop() == 0, running["payments"].tail()
    try:
        status, body = probe(gateway, "/readyz")
        assert (status, body) == (503, {"status": "not_ready",
                                        "checks": {"broker": True, "consumer": True, "orders": True,
                                                   "payments": False}})
        assert probe(gateway, "/healthz") == (200, {"status": "ok"}), "the gateway itself is alive"
        # What the alert GozonServiceNotReady reads: the checks run at the scrape.
        scrape = Scrape(running, "gateway")
        assert (scrape(READY, check="payments"), scrape(READY, check="orders")) == (0, 1)
    finally:
        running.start()
    assert probe(gateway, "/readyz")[0] == 200, "ready again once payments is back"
    assert Scrape(running, "gateway")(READY, check="payments") == 1


# ---------------------------------------------------------------------------------------
# Metrics after a scenario.
# ---------------------------------------------------------------------------------------


def test_a_paid_and_a_refused_order_move_the_counters_of_every_service(running: Stack, shopper: Shopper) -> None:
    before = scrape_all(running)
    assert shopper.create_account().status_code == 201
    assert shopper.deposit(300).status_code == 200
    with shopper.connect() as ws:
        assert Scrape(running, "gateway")(WS_OPEN) == before["gateway"](WS_OPEN) + 1
        paid, refused = shopper.order(200), shopper.order(500)
        results = {frame["order_id"]: frame["status"] for frame in (next_result(ws), next_result(ws))}
    assert results == {paid["id"]: "success", refused["id"]: "failed"}
    assert shopper.http.get("/no/such/route/4711").status_code == 404

    def settled() -> dict[str, Scrape] | None:
        """Every service done with both orders: results handled, outboxes drained, the
        WebSocket closed on the server's side too."""
        now = scrape_all(running)
        done = (all(now[name](PROCESSED) >= before[name](PROCESSED) + 2 for name in SERVICES)
                and all(now[name](PENDING) == 0 for name in ("orders", "payments"))
                and now["gateway"](WS_OPEN) == before["gateway"](WS_OPEN))
        return now if done else None

    after = wait_until(settled, timeout=30, interval=0.1, what="both orders handled everywhere")

    def moved(service: str, name: str, **labels: str) -> float:
        return after[service](name, **labels) - before[service](name, **labels)

    def moved_requests(service: str, method: str, route: str, status: int) -> float:
        return requests(after[service], method, route, status) - requests(before[service], method, route, status)

    # HTTP requests by route (the URL rule) and status, at the gateway and behind it.
    assert moved_requests("gateway", "POST", "/accounts", 201) == 1
    assert moved_requests("gateway", "POST", "/accounts/deposit", 200) == 1
    assert moved_requests("gateway", "POST", "/orders", 201) == 2
    assert moved_requests("gateway", "GET", "unmatched", 404) == 1
    assert "/no/such/route" not in after["gateway"].text, "a raw path became a label"
    assert moved_requests("payments", "POST", "/accounts", 201) == 1
    assert moved_requests("payments", "POST", "/accounts/deposit", 200) == 1
    assert moved_requests("orders", "POST", "/orders", 201) == 2
    # Each order: one payment request out of orders' outbox into payments' inbox, one
    # result out of payments' outbox into orders' inbox and the gateway's.
    for service in SERVICES:
        assert moved(service, PROCESSED) == 2, service
        assert moved(service, DUPLICATES) == 0, service
        assert after[service].total(DEAD_LETTERED) == before[service].total(DEAD_LETTERED), service
    for service in ("orders", "payments"):
        assert moved(service, PUBLISHED) >= 2, service
        assert after[service](OLDEST) == 0, service
    # The pong and the two results; the connection is counted out again once closed.
    assert moved("gateway", WS_FRAMES) == 3
    assert after["gateway"](WS_OPEN) == before["gateway"](WS_OPEN)
    for service in SERVICES:
        assert after[service].total(RESTARTS) == before[service].total(RESTARTS), f"an actor of {service} crashed"
        assert RESTARTS in after[service].text, f"{service} does not expose {RESTARTS}"


def test_the_gateway_names_the_route_each_request_called_and_bounds_unknown_paths(
        running: Stack, shopper: Shopper) -> None:
    before = Scrape(running, "gateway")
    assert shopper.create_account().status_code == 201
    assert shopper.deposit(100).status_code == 200
    assert shopper.balance() == 100
    unknown = [shopper.http.get(f"/accounts/no-such-route/{n}") for n in range(3)]
    assert [(r.status_code, r.json()["error"]) for r in unknown] == [(404, "not_found")] * 3, "not proxied"
    after = Scrape(running, "gateway")

    def moved(method: str, route: str, status: int) -> float:
        return requests(after, method, route, status) - requests(before, method, route, status)

    assert moved("POST", "/accounts/deposit", 200) == 1
    assert moved("GET", "/accounts/balance", 200) == 1
    assert moved("GET", "/accounts/<path:rest>", 404) == 3, "unknown paths under one bounded label"
    assert "no-such-route" not in after.text, "a raw path became a label"


def test_a_duplicate_delivery_shows_as_one_skipped_duplicate(running: Stack, client: httpx.Client) -> None:
    user = funded_user(client, 1000)
    placed = client.post("/orders", json={"user_id": user, "amount": 100})
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["id"]
    wait_settled(client, [user], {order_id}, timeout=30)
    before = Scrape(running, "payments")

    # The same payment request again, with the message id it already had: as a relay
    # that lost the broker's confirm would publish it again.
    message_id = anyio.run(_outbox_message_id, order_id)
    anyio.run(publish, ORDERS_QUEUE, amqp_message(PaymentRequested(order_id=order_id, user_id=user, amount=100),
                                                  message_id=message_id))

    after = scrape_when(running, "payments", lambda now: now(PROCESSED) > before(PROCESSED),
                        "payments to handle the redelivered request")
    assert after(PROCESSED) - before(PROCESSED) == 1
    assert after(DUPLICATES) - before(DUPLICATES) == 1
    assert balance_of(client, user) == 900, "the redelivered request was charged"


def test_a_poison_message_is_dead_lettered_and_counted(running: Stack) -> None:
    before = Scrape(running, "payments")
    message_id = uuid.uuid4()
    poison = amqp_message(PaymentRequested(order_id=1, user_id=1, amount=1), message_id=message_id, body=b"{not json")
    anyio.run(publish, ORDERS_QUEUE, poison)

    after = scrape_when(running, "payments", lambda now: now.total(DEAD_LETTERED) > before.total(DEAD_LETTERED),
                        "payments to dead-letter the poison message")
    assert after(DEAD_LETTERED, queue=ORDERS_QUEUE) - before(DEAD_LETTERED, queue=ORDERS_QUEUE) == 1
    assert after.total(DEAD_LETTERED) - before.total(DEAD_LETTERED) == 1
    assert after(PROCESSED) == before(PROCESSED), "the poison message was handled"
    dead = anyio.run(drain, dead_letter_queue(ORDERS_QUEUE))
    assert str(message_id) in {letter.message_id for letter in dead}


async def _outbox_message_id(order_id: int) -> uuid.UUID:
    con = await asyncpg.connect(TEST_SETTINGS.orders_db)
    try:
        return await con.fetchval("SELECT message_id FROM outbox WHERE message_type = 'payment_requested'"
                                  " AND (payload->>'order_id')::bigint = $1", order_id)
    finally:
        await con.close()
