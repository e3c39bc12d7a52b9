"""The orders process (`python -m supervisors.orders`).

Shared resources, owned here and closed last:
    database   asyncpg pool on GOZON_ORDERS_DB (connects, creates, migrates in the background)
    broker     one AMQP connection on GOZON_AMQP_URL (reconnects in the background)

Actors, one-for-one: a crashed actor restarts with exponential backoff (0.1 s doubling
to 30 s); more than GOZON_MAX_RESTARTS crashes in GOZON_RESTART_WINDOW seconds → exit 1.
    orders.http            POST/GET /orders on Hypercorn, port GOZON_ORDERS_PORT
    orders.outbox_relay    outbox → orders_queue (payment requests)
    orders.inbox_consumer  payments_results_queue → order status, once per message
    orders.retention       purges sent outbox rows, old inbox ids and idempotency keys
SIGTERM/SIGINT: every actor drains and returns, then the resources close; exit 0.
"""

from __future__ import annotations

import anyio

from gozon import metrics
from gozon.actors.inbox import InboxConsumer, named_queue
from gozon.actors.relay import OutboxRelay
from gozon.actors.retention import Retention, outbox_and_inbox
from gozon.amqp.broker import open_broker
from gozon.amqp.topology import PAYMENTS_RESULTS_QUEUE
from gozon.config import Settings
from gozon.db import open_database
from gozon.orders import api, inbox, store
from gozon.runtime import Child, RestartPolicy, supervise
from gozon.web.server import HttpServer
from supervisors.boot import start


async def main(stop: anyio.Event, settings: Settings) -> None:
    async with (
        open_database(settings.orders_db, store.MIGRATIONS, pool_size=settings.db_pool_size) as db,
        open_broker(settings.amqp_url) as broker,
    ):
        app = api.build(db, {"database": db.ping, "broker": lambda: broker.ready})
        relay = OutboxRelay(db, broker, batch=settings.outbox_batch, poll_interval=settings.outbox_poll_interval)
        consumer = InboxConsumer(broker, named_queue(PAYMENTS_RESULTS_QUEUE), inbox.decoder, inbox.handler(db),
                                 workers=settings.inbox_workers, ready=db.wait_ready)
        retention = Retention(db, [
            *outbox_and_inbox(settings.outbox_retention_hours),
            "DELETE FROM idempotency_keys WHERE created_at < now() - interval '24 hours'",
        ])
        await supervise(
            [
                Child("orders.http", HttpServer(app, host=settings.host, port=settings.orders_port).run),
                Child("orders.outbox_relay", relay.run),
                Child("orders.inbox_consumer", consumer.run),
                Child("orders.retention", retention.run),
            ],
            stop=stop,
            policy=RestartPolicy(max_restarts=settings.max_restarts, window=settings.restart_window),
            on_restart=metrics.actor_restarted,
        )


if __name__ == "__main__":
    start("orders", main)
