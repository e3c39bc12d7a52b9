"""The gateway process (`python -m supervisors.gateway`).

Shared resources, owned here and closed last:
    broker     one AMQP connection on GOZON_AMQP_URL (reconnects in the background)
    http       pooled HTTP client to GOZON_ORDERS_URL and GOZON_PAYMENTS_URL
    hub        who is connected to /ws, per user

Actors, one-for-one: a crashed actor restarts with exponential backoff (0.1 s doubling
to 30 s); more than GOZON_MAX_RESTARTS crashes in GOZON_RESTART_WINDOW seconds → exit 1.
    gateway.http              proxy + /ws on Hypercorn, port GOZON_GATEWAY_PORT
    gateway.results_consumer  its own durable queue on payment_events_fanout → hub.results
    gateway.ws_hub            hub.results → each connection's bounded queue
SIGTERM/SIGINT: every actor drains and returns, then the resources close; exit 0.
"""

from __future__ import annotations

from functools import partial

import anyio

from gozon import metrics
from gozon.amqp.broker import open_broker
from gozon.amqp.consumer import Consumer
from gozon.amqp.topology import gateway_queue
from gozon.config import Settings
from gozon.gateway import api, proxy, results
from gozon.gateway.hub import Hub
from gozon.messages import PaymentResult
from gozon.runtime import Child
from gozon.web.server import HttpServer
from supervisors.boot import run_actors, start


async def main(stop: anyio.Event, settings: Settings) -> None:
    with Hub(queue_size=settings.ws_queue_size) as hub:
        async with (
            open_broker(settings.amqp_url, "gozon gateway") as broker,
            proxy.client(settings.proxy_timeout) as http,
        ):
            queue = gateway_queue(settings.gateway_replica, expires=settings.gateway_queue_expiry)
            consumer = Consumer(broker, queue, PaymentResult, results.payment_result(hub),
                                workers=1, batch=settings.inbox_batch, dead_letters=False)
            app = api.build(hub, http, settings=settings,
                            ready={"broker": lambda: broker.ready,
                                   "consumer": lambda: consumer.consuming,
                                   "orders": partial(proxy.ready, http, settings.orders_url),
                                   "payments": partial(proxy.ready, http, settings.payments_url)})
            metrics.WS_CONNECTIONS.set_function(lambda: hub.connections)
            await run_actors([
                Child("gateway.http", HttpServer(app, host=settings.host, port=settings.gateway_port).run),
                Child("gateway.results_consumer", consumer.run),
                Child("gateway.ws_hub", hub.run),
            ], stop, settings)


if __name__ == "__main__":
    start("gateway", main)
