"""Bad input through the gateway: a 4xx with a JSON error body, and nothing written."""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import anyio
import asyncpg
import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.e2e.shopper import balance_of, funded_user, new_user_id, orders_of, wait_settled
from tests.settings import TEST_SETTINGS
from tests.support import Stack

MAX_ID = 2**63 - 1
ANY = object()  # the case does not say whether the error names a field


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    field: object = ANY  # the "field" the error body must name
    body: Callable[[int], object] | None = None  # JSON body, given the user id
    content: Callable[[int], bytes] | None = None  # raw body
    params: Callable[[int], dict] | None = None
    headers: dict = dataclasses.field(default_factory=dict)

    def send(self, http: httpx.Client, user: int) -> httpx.Response:
        kwargs: dict = {"headers": self.headers}
        if self.body is not None:
            kwargs["content"] = json.dumps(self.body(user)).encode()
        if self.content is not None:
            kwargs["content"] = self.content(user)
        if self.params is not None:
            kwargs["params"] = self.params(user)
        return http.request(self.method, self.path, **kwargs)


def order(**fields) -> Callable[[int], dict]:
    """A POST /orders body for the user, with `fields` replaced (None: left out)."""

    def make(user: int) -> dict:
        body = {"user_id": user, "amount": 100} | fields
        return {k: v for k, v in body.items() if v is not _DROP}

    return make


_DROP = object()

CASES = {
    # POST /orders: the body
    "order-malformed-json": Bad("POST", "/orders", 400, content=lambda u: b'{"user_id": %d, "amount": 100' % u),
    "order-empty-body": Bad("POST", "/orders", 400, content=lambda u: b""),
    "order-amount-string": Bad("POST", "/orders", 422, "amount", order(amount="100")),
    "order-amount-float": Bad("POST", "/orders", 422, "amount", content=lambda u: b'{"user_id": %d, "amount": 100.0}' % u),
    "order-amount-exponent": Bad("POST", "/orders", 422, "amount", content=lambda u: b'{"user_id": %d, "amount": 1e2}' % u),
    "order-amount-bool": Bad("POST", "/orders", 422, "amount", order(amount=True)),
    "order-amount-null": Bad("POST", "/orders", 422, "amount", order(amount=None)),
    "order-amount-missing": Bad("POST", "/orders", 422, "amount", order(amount=_DROP)),
    "order-user-missing": Bad("POST", "/orders", 422, "user_id", order(user_id=_DROP)),
    "order-amount-zero": Bad("POST", "/orders", 422, "amount", order(amount=0)),
    "order-amount-negative": Bad("POST", "/orders", 422, "amount", order(amount=-100)),
    "order-amount-too-large": Bad("POST", "/orders", 422, "amount", order(amount=10**12 + 1)),
    "order-amount-int64-overflow": Bad("POST", "/orders", 422, "amount", order(amount=2**64)),
    "order-user-id-2**63": Bad("POST", "/orders", 422, "user_id", order(user_id=2**63)),
    "order-user-id-0": Bad("POST", "/orders", 422, "user_id", order(user_id=0)),
    "order-user-id-negative": Bad("POST", "/orders", 422, "user_id", order(user_id=-1)),
    "order-user-id-string": Bad("POST", "/orders", 422, "user_id", lambda u: {"user_id": str(u), "amount": 100}),
    "order-unknown-field": Bad("POST", "/orders", 422, "discount", order(discount=5)),
    "order-body-list": Bad("POST", "/orders", 422, body=lambda u: [u, 100]),
    "order-body-string": Bad("POST", "/orders", 422, body=lambda u: "order"),
    "order-body-null": Bad("POST", "/orders", 422, body=lambda u: None),
    "order-body-over-64KiB": Bad("POST", "/orders", 413, body=lambda u: {"user_id": u, "amount": 100, "pad": "x" * 70_000}),
    # POST /orders: the Idempotency-Key
    "order-idempotency-key-empty": Bad("POST", "/orders", 422, "Idempotency-Key", order(), headers={"Idempotency-Key": ""}),
    "order-idempotency-key-256-chars": Bad("POST", "/orders", 422, "Idempotency-Key", order(),
                                           headers={"Idempotency-Key": "k" * 256}),
    "order-idempotency-key-not-ascii": Bad("POST", "/orders", 422, "Idempotency-Key", order(),
                                           headers={"Idempotency-Key": "clé".encode()}),
    # GET /orders, /orders/by-id: the query
    "orders-user-id-abc": Bad("GET", "/orders", 422, "user_id", params=lambda u: {"user_id": "abc"}),
    "orders-user-id-float": Bad("GET", "/orders", 422, "user_id", params=lambda u: {"user_id": "1.0"}),
    "orders-user-id-0": Bad("GET", "/orders", 422, "user_id", params=lambda u: {"user_id": "0"}),
    "orders-user-id-2**63": Bad("GET", "/orders", 422, "user_id", params=lambda u: {"user_id": str(2**63)}),
    "orders-user-id-missing": Bad("GET", "/orders", 422, "user_id", params=lambda u: {}),
    "orders-limit-0": Bad("GET", "/orders", 422, "limit", params=lambda u: {"user_id": u, "limit": 0}),
    "orders-limit-1001": Bad("GET", "/orders", 422, "limit", params=lambda u: {"user_id": u, "limit": 1001}),
    "orders-limit-abc": Bad("GET", "/orders", 422, "limit", params=lambda u: {"user_id": u, "limit": "abc"}),
    "orders-before-id-negative": Bad("GET", "/orders", 422, "before_id", params=lambda u: {"user_id": u, "before_id": -1}),
    "order-by-id-abc": Bad("GET", "/orders/by-id", 422, "id", params=lambda u: {"id": "abc"}),
    "order-by-id-missing": Bad("GET", "/orders/by-id", 422, "id", params=lambda u: {}),
    "order-by-id-unknown": Bad("GET", "/orders/by-id", 404, "id", params=lambda u: {"id": MAX_ID}),
    # /accounts
    "account-twice": Bad("POST", "/accounts", 409, "user_id", lambda u: {"user_id": u}),
    "account-user-id-0": Bad("POST", "/accounts", 422, "user_id", lambda u: {"user_id": 0}),
    "account-user-id-2**63": Bad("POST", "/accounts", 422, "user_id", lambda u: {"user_id": 2**63}),
    "account-malformed-json": Bad("POST", "/accounts", 400, content=lambda u: b"{user_id: 1}"),
    "deposit-amount-string": Bad("POST", "/accounts/deposit", 422, "amount", lambda u: {"user_id": u, "amount": "100"}),
    "deposit-amount-negative": Bad("POST", "/accounts/deposit", 422, "amount", lambda u: {"user_id": u, "amount": -5}),
    "deposit-amount-zero": Bad("POST", "/accounts/deposit", 422, "amount", lambda u: {"user_id": u, "amount": 0}),
    "deposit-amount-too-large": Bad("POST", "/accounts/deposit", 422, "amount",
                                    lambda u: {"user_id": u, "amount": 10**12 + 1}),
    "deposit-amount-float": Bad("POST", "/accounts/deposit", 422, "amount",
                                content=lambda u: b'{"user_id": %d, "amount": 5.0}' % u),
    "deposit-unknown-field": Bad("POST", "/accounts/deposit", 422, "currency",
                                 lambda u: {"user_id": u, "amount": 5, "currency": "RUB"}),
    "deposit-no-account": Bad("POST", "/accounts/deposit", 404, "user_id",
                              lambda u: {"user_id": new_user_id(), "amount": 5}),
    "balance-user-id-abc": Bad("GET", "/accounts/balance", 422, "user_id", params=lambda u: {"user_id": "abc"}),
    "balance-user-id-missing": Bad("GET", "/accounts/balance", 422, "user_id", params=lambda u: {}),
    # routes and methods
    "unknown-route": Bad("GET", "/nothing-here", 404),
    "unknown-route-under-orders": Bad("GET", "/orders/nothing-here", 404),
    "unknown-route-under-accounts": Bad("POST", "/accounts/withdraw", 404, body=lambda u: {"user_id": u, "amount": 5}),
    "put-orders": Bad("PUT", "/orders", 405, body=order()),
    "delete-orders": Bad("DELETE", "/orders", 405, params=lambda u: {"user_id": u}),
    "delete-accounts": Bad("DELETE", "/accounts", 405, body=lambda u: {"user_id": u}),
    "get-deposit": Bad("GET", "/accounts/deposit", 405, params=lambda u: {"user_id": u, "amount": 5}),
}


async def _counts() -> dict[str, int]:
    """Rows that only an HTTP request can add: if a count moved, a bad request wrote."""
    counts = {}
    for dsn, queries in (
        (TEST_SETTINGS.orders_db, {"orders": "SELECT count(*) FROM orders",
                                   "idempotency_keys": "SELECT count(*) FROM idempotency_keys"}),
        (TEST_SETTINGS.payments_db, {"accounts": "SELECT count(*) FROM accounts",
                                     "deposits": "SELECT count(*) FROM ledger WHERE kind = 'deposit'"}),
    ):
        con = await asyncpg.connect(dsn)
        try:
            for name, sql in queries.items():
                counts[name] = await con.fetchval(sql)
        finally:
            await con.close()
    return counts


@pytest.fixture(scope="module")
def victim(stack: Stack) -> Iterator[int]:
    """A user with an account, a balance of 1000 - 100 and one finished order."""
    stack.start()
    with httpx.Client(base_url=stack.gateway_url, timeout=15) as http:
        user = funded_user(http, 1000)
        placed = http.post("/orders", json={"user_id": user, "amount": 100})
        assert placed.status_code == 201
        wait_settled(http, [user], {placed.json()["id"]}, timeout=30)
        assert balance_of(http, user) == 900
        yield user


def _snapshot(http: httpx.Client, user: int) -> tuple:
    return balance_of(http, user), orders_of(http, user), anyio.run(_counts)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_request_is_a_json_4xx_and_changes_nothing(client: httpx.Client, victim: int, case: Bad) -> None:
    before = _snapshot(client, victim)
    response = case.send(client, victim)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == "application/json", response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) <= {"error", "message", "field"}, body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("message"), str) and body["message"], body
    if case.field is not ANY:
        assert body.get("field") == case.field, body
    assert _snapshot(client, victim) == before


def test_a_keep_alive_connection_carries_a_413_and_the_next_request(running) -> None:
    # The gateway reads a body over the limit to its end before it answers 413. Had it
    # answered while the body was still coming, it would have to close the connection,
    # racing the client's next request on it (which then gets no answer at all). The
    # body is sent in two parts, the second a little later, as a slow client would.
    body = b'{"user_id": 1, "amount": 1, "pad": "' + b"x" * 70_000 + b'"}'
    with socket.create_connection(("127.0.0.1", running["gateway"].port), timeout=10) as sock:
        sock.sendall(b"POST /orders HTTP/1.1\r\nHost: gozon\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:66_000])
        time.sleep(0.3)  # the slow client's pace, not a wait for anything
        sock.sendall(body[66_000:])
        replies = sock.makefile("rb")
        assert _status_and_body(replies)[0] == 413
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gozon\r\n\r\n")
        assert _status_and_body(replies) == (200, b'{"status":"ok"}')


def _status_and_body(replies) -> tuple[int, bytes]:
    """One HTTP/1.1 response read off a socket (its body framed by Content-Length)."""
    status = int(replies.readline().split()[1])
    length = 0
    while (line := replies.readline().strip()):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return status, replies.read(length)


def test_deposit_past_2_63_minus_1_is_refused_and_changes_nothing(client: httpx.Client) -> None:
    user = funded_user(client, 0)
    # One deposit is at most 10^12, so the API cannot bring a balance near 2^63-1 in
    # a test's time: the account's balance is set directly (with the ledger row that
    # accounts for it, so the books still add up for `gozon reconcile`), then the API
    # is used.
    near_max = MAX_ID - 5

    async def set_balance() -> None:
        con = await asyncpg.connect(TEST_SETTINGS.payments_db)
        try:
            async with con.transaction():
                await con.execute("INSERT INTO ledger (account_id, kind, amount) SELECT id, 'deposit', $2 - balance"
                                  " FROM accounts WHERE user_id = $1", user, near_max)
                await con.execute("UPDATE accounts SET balance = $2 WHERE user_id = $1", user, near_max)
        finally:
            await con.close()

    anyio.run(set_balance)
    assert balance_of(client, user) == near_max
    before = anyio.run(_counts)
    for amount in (6, 10**12):
        refused = client.post("/accounts/deposit", json={"user_id": user, "amount": amount})
        assert 400 <= refused.status_code < 500, refused.text
        assert refused.headers["content-type"].startswith("application/json")
        assert set(refused.json()) >= {"error", "message"}, refused.json()
        assert balance_of(client, user) == near_max
    assert anyio.run(_counts) == before
    # The very top is still reachable.
    topped = client.post("/accounts/deposit", json={"user_id": user, "amount": 5})
    assert topped.status_code == 200, topped.text
    assert topped.json()["balance"] == MAX_ID == balance_of(client, user)


@pytest.mark.parametrize("query", ["", "?user_id=", "?user_id=0", "?user_id=abc", "?user_id=-1", "?user_id=1.0",
                                   f"?user_id={2**63}", "?userid=5"])
def test_websocket_without_a_valid_user_id_is_refused(running: Stack, query: str) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(f"{running.ws_url}{query}", open_timeout=10) as ws:
        ws.send("ping")
        pytest.fail(f"the handshake was accepted, then: {ws.recv(timeout=5)}")
    response = refused.value.response
    assert 400 <= response.status_code < 500, response.status_code
    assert json.loads(response.body)["error"], response.body
