"""The orders process (`python -m supervisors.orders`).

Shared resources, owned here and closed last:
    database   asyncpg pool on GOZON_ORDERS_DB (connects, creates, migrates in the background)
    broker     one AMQP connection on GOZON_AMQP_URL (reconnects in the background)

Actors, one-for-one: a crashed actor restarts with exponential backoff (0.1 s doubling
to 30 s); more than GOZON_MAX_RESTARTS crashes in GOZON_RESTART_WINDOW seconds → exit 1.
    orders.http              POST/GET /orders on Hypercorn, port GOZON_ORDERS_PORT, and the
                             order writer it hands new orders to (one transaction per batch)
    orders.outbox_relay      outbox → orders_queue (payment requests)
    orders.results_consumer  payments_results_queue → order status, once per message
    orders.retention         purges sent outbox rows, old inbox ids and idempotency keys
SIGTERM/SIGINT: every actor drains and returns, then the resources close; exit 0.
"""

from __future__ import annotations

from datetime import timedelta

import anyio

from gozon.actors.relay import OutboxRelay
from gozon.actors.retention import Retention, outbox_and_inbox
from gozon.amqp.broker import open_broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import named_queue
from gozon.config import Settings
from gozon.db import open_database
from gozon.messages import PAYMENTS_RESULTS_QUEUE, PaymentResult
from gozon.orders import api, handlers, store
from gozon.orders.writer import OrderWriter
from gozon.runtime import Child
from gozon.runtime.tasks import task_group
from gozon.web.server import HttpServer
from supervisors.boot import run_actors, start


async def main(stop: anyio.Event, settings: Settings) -> None:
    async with (
        open_database(settings.orders_db, store.MIGRATIONS, pool_size=settings.db_pool_size) as db,
        open_broker(settings.amqp_url, "gozon orders") as broker,
    ):
        writer = OrderWriter(db, batch=settings.order_batch)
        consumer = Consumer(broker, named_queue(PAYMENTS_RESULTS_QUEUE), PaymentResult, handlers.payment_result(db),
                            workers=settings.inbox_workers, batch=settings.inbox_batch, ready=db.wait_ready)
        app = api.build(db, writer, {"database": db.ping, "broker": lambda: broker.ready,
                                     "consumer": lambda: consumer.consuming}, settings)
        server = HttpServer(app, host=settings.host, port=settings.orders_port)

        async def http(stop: anyio.Event) -> None:
            # The writer lives as long as the server: requests still in flight at a
            # drain are answered before it stops.
            async with task_group() as tg:
                tg.start_soon(writer.run, name="orders.order_writer")
                await server.run(stop)
                writer.close()

        relay = OutboxRelay(db, broker, batch=settings.outbox_batch, poll_interval=settings.outbox_poll_interval)
        retention = Retention(db, {
            **outbox_and_inbox(settings),
            "idempotency_keys": lambda con: store.purge_idempotency_keys(
                con, timedelta(hours=settings.idempotency_key_retention_hours)),
        }, every=settings.purge_interval)
        await run_actors([
            Child("orders.http", http),
            Child("orders.outbox_relay", relay.run),
            Child("orders.results_consumer", consumer.run),
            Child("orders.retention", retention.run),
        ], stop, settings)


if __name__ == "__main__":
    start("orders", main)
