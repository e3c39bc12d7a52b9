"""The payments HTTP API: POST /accounts, POST /accounts/deposit, GET /accounts/balance."""

from __future__ import annotations

import structlog
from quart import Quart, Response

from gozon.config import Settings
from gozon.db import Database, outbox
from gozon.messages import MAX_ID
from gozon.payments import store
from gozon.payments.schemas import BalanceQuery, CreateAccount, Deposit
from gozon.web import bodies
from gozon.web.app import create_app
from gozon.web.errors import ApiError, json_response

log = structlog.get_logger("gozon.payments")


def _not_found(user_id: int) -> ApiError:
    return ApiError(404, "account_not_found", f"User {user_id} has no account.", "user_id")


def build(db: Database, ready: dict, settings: Settings) -> Quart:
    app = create_app("payments", ready, max_body=settings.max_body_bytes, scrape=[outbox.backlog_gauges(db)])

    @app.post("/accounts")
    async def create_account() -> Response:
        new = await bodies.body(CreateAccount)
        structlog.contextvars.bind_contextvars(user_id=new.user_id)
        try:
            async with db.acquire() as con:
                account = await store.create_account(con, new.user_id)
        except store.AccountExists:
            raise ApiError(409, "account_exists", f"User {new.user_id} already has an account.", "user_id") from None
        log.info("account created")
        return json_response(account, 201)

    @app.post("/accounts/deposit")
    async def deposit() -> Response:
        given = await bodies.body(Deposit)
        structlog.contextvars.bind_contextvars(user_id=given.user_id)
        try:
            async with db.acquire() as con:
                account = await store.deposit(con, given.user_id, given.amount)
        except store.AccountNotFound:
            raise _not_found(given.user_id) from None
        except store.BalanceOverflow:
            raise ApiError(422, "balance_overflow", f"The balance would exceed {MAX_ID}.", "amount") from None
        log.info("deposited", amount=given.amount, balance=account.balance)
        return json_response(account)

    @app.get("/accounts/balance")
    async def balance() -> Response:
        q = bodies.query(BalanceQuery)
        try:
            async with db.acquire() as con:
                return json_response(await store.balance(con, q.user_id))
        except store.AccountNotFound:
            raise _not_found(q.user_id) from None

    return app
