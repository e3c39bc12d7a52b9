"""The payments process (`python -m supervisors.payments`).

Shared resources, owned here and closed last:
    database   asyncpg pool on GOZON_PAYMENTS_DB (connects, creates, migrates in the background)
    broker     one AMQP connection on GOZON_AMQP_URL (reconnects in the background)

Actors, one-for-one: a crashed actor restarts with exponential backoff (0.1 s doubling
to 30 s); more than GOZON_MAX_RESTARTS crashes in GOZON_RESTART_WINDOW seconds → exit 1.
    payments.http              /accounts API on Hypercorn, port GOZON_PAYMENTS_PORT
    payments.requests_consumer orders_queue → one charge per order, result into the outbox
    payments.outbox_relay      outbox → payment_events_fanout (payment results)
    payments.retention         purges sent outbox rows and old inbox ids
SIGTERM/SIGINT: every actor drains and returns, then the resources close; exit 0.
"""

from __future__ import annotations

import anyio

from gozon.actors.relay import OutboxRelay
from gozon.actors.retention import Retention, outbox_and_inbox
from gozon.amqp.broker import open_broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import named_queue
from gozon.config import Settings
from gozon.db import open_database
from gozon.messages import ORDERS_QUEUE, PaymentRequested
from gozon.payments import api, handlers, store
from gozon.runtime import Child
from gozon.web.server import HttpServer
from supervisors.boot import run_actors, start


async def main(stop: anyio.Event, settings: Settings) -> None:
    async with (
        open_database(settings.payments_db, store.MIGRATIONS, pool_size=settings.db_pool_size) as db,
        open_broker(settings.amqp_url, "gozon payments") as broker,
    ):
        consumer = Consumer(broker, named_queue(ORDERS_QUEUE), PaymentRequested, handlers.payment_requested(db),
                            workers=settings.inbox_workers, batch=settings.inbox_batch, ready=db.wait_ready)
        app = api.build(db, {"database": db.ping, "broker": lambda: broker.ready,
                             "consumer": lambda: consumer.consuming}, settings)
        relay = OutboxRelay(db, broker, batch=settings.outbox_batch, poll_interval=settings.outbox_poll_interval)
        retention = Retention(db, outbox_and_inbox(settings), every=settings.purge_interval)
        await run_actors([
            Child("payments.http", HttpServer(app, host=settings.host, port=settings.payments_port).run),
            Child("payments.requests_consumer", consumer.run),
            Child("payments.outbox_relay", relay.run),
            Child("payments.retention", retention.run),
        ], stop, settings)


if __name__ == "__main__":
    start("payments", main)
