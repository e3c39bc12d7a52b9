"""The gateway process (`python -m supervisors.gateway`).

Shared resources, owned here and closed last:
    broker     one AMQP connection on GOZON_AMQP_URL (reconnects in the background)
    http       pooled HTTP client to GOZON_ORDERS_URL and GOZON_PAYMENTS_URL
    hub        who is connected to /ws, per user

Actors, one-for-one: a crashed actor restarts with exponential backoff (0.1 s doubling
to 30 s); more than GOZON_MAX_RESTARTS crashes in GOZON_RESTART_WINDOW seconds → exit 1.
    gateway.http            proxy + /ws on Hypercorn, port GOZON_GATEWAY_PORT
    gateway.events_consumer own exclusive queue on payment_events_fanout → hub inbox
    gateway.ws_hub          hub inbox → each connection's bounded queue
SIGTERM/SIGINT: every actor drains and returns, then the resources close; exit 0.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio

from gozon import metrics
from gozon.actors.inbox import InboxConsumer
from gozon.amqp.broker import open_broker
from gozon.amqp.topology import declare_private_queue
from gozon.config import Settings
from gozon.gateway import api, events, proxy
from gozon.gateway.hub import Hub
from gozon.runtime import Child, RestartPolicy, supervise
from gozon.web.server import HttpServer
from supervisors.boot import start


async def main(stop: anyio.Event, settings: Settings) -> None:
    hub = Hub(queue_size=settings.ws_queue_size)
    async with open_broker(settings.amqp_url) as broker, proxy.client(settings.proxy_timeout) as http:
        app = api.build(hub, http, orders_url=settings.orders_url, payments_url=settings.payments_url,
                        ready={"broker": lambda: broker.ready,
                               "orders": partial(proxy.ready, http, settings.orders_url),
                               "payments": partial(proxy.ready, http, settings.payments_url)},
                        client_dir=Path(settings.client_dir))
        metrics.WS_CONNECTIONS.set_function(lambda: hub.connections)
        consumer = InboxConsumer(broker, declare_private_queue, events.decoder, events.handler(hub),
                                 workers=1, dead_letters=False)
        await supervise(
            [
                Child("gateway.http", HttpServer(app, host=settings.host, port=settings.gateway_port).run),
                Child("gateway.events_consumer", consumer.run),
                Child("gateway.ws_hub", hub.run),
            ],
            stop=stop,
            policy=RestartPolicy(max_restarts=settings.max_restarts, window=settings.restart_window),
            on_restart=metrics.actor_restarted,
        )


if __name__ == "__main__":
    start("gateway", main)
