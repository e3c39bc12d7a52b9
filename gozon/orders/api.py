"""The orders HTTP API: POST /orders, GET /orders, GET /orders/by-id."""

from __future__ import annotations

import re

import structlog
from quart import Quart, Response, g, request

from gozon import metrics
from gozon.config import Settings
from gozon.db import Database, outbox
from gozon.orders import store
from gozon.orders.writer import OrderWriter
from gozon.orders.schemas import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_PATTERN, CreateOrder, OrderQuery, OrdersQuery
from gozon.web import bodies
from gozon.web.app import create_app
from gozon.web.errors import ApiError, json_response

log = structlog.get_logger("gozon.orders")

_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)


def _idempotency_key() -> str | None:
    key = request.headers.get(IDEMPOTENCY_KEY)
    if key is not None and not _KEY.match(key):
        raise ApiError(422, "invalid_idempotency_key",
                       "Idempotency-Key must be 1 to 255 printable ASCII characters.", IDEMPOTENCY_KEY)
    return key


def build(db: Database, writer: OrderWriter, ready: dict, settings: Settings) -> Quart:
    app = create_app("orders", ready, max_body=settings.max_body_bytes, scrape=[outbox.backlog_gauges(db)])

    @app.post("/orders")
    async def create_order() -> Response:
        key = _idempotency_key()
        new = await bodies.body(CreateOrder)
        structlog.contextvars.bind_contextvars(user_id=new.user_id)
        try:
            if key is None:  # the common case: written with whatever orders are waiting
                order, created = await writer.place(new, g.trace_id), True
            else:  # its own transaction, which a concurrent twin waits on
                async with db.acquire() as con:
                    order, created = await store.create_order(con, new, trace_id=g.trace_id, idempotency_key=key)
        except store.KeyReused:
            raise ApiError(422, "idempotency_key_reused",
                           "This Idempotency-Key was used with a different body.", IDEMPOTENCY_KEY) from None
        except store.KeyBusy:
            raise ApiError(409, "request_in_progress",
                           "A request with this Idempotency-Key is still in progress; retry shortly.") from None
        structlog.contextvars.bind_contextvars(order_id=order.id)
        if created:
            metrics.ORDERS_PLACED.inc()
        log.info("order created" if created else "order replayed for idempotency key", amount=order.amount)
        return json_response(order, 201)

    @app.get("/orders")
    async def list_orders() -> Response:
        q = bodies.query(OrdersQuery)
        async with db.acquire() as con:
            return json_response(await store.list_orders(con, q.user_id, q.limit, q.before_id))

    @app.get("/orders/by-id")
    async def get_order() -> Response:
        q = bodies.query(OrderQuery)
        async with db.acquire() as con:
            order = await store.get_order(con, q.id)
        if order is None:
            raise ApiError(404, "order_not_found", f"There is no order {q.id}.", "id")
        return json_response(order)

    return app
