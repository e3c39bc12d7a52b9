"""The HTTP server actor: Hypercorn serving a Quart app until the process stops.

Hypercorn is given a shutdown trigger (so the supervisor, not Hypercorn, owns the
signals) and our loggers (so its records go through the structlog pipeline). On stop
it stops accepting, lets in-flight requests finish, and returns."""

from __future__ import annotations

import logging

import anyio
from hypercorn.asyncio import serve
from hypercorn.config import Config
from quart import Quart

GRACEFUL_TIMEOUT = 3.0
# Longer than clients keep idle connections (httpx and browsers: about 5 s; our proxy:
# PROXY_KEEPALIVE): a server that closes first races the client's next request on that
# connection, which then fails with no answer.
KEEP_ALIVE_TIMEOUT = 30
WS_PING_INTERVAL = 20


class HttpServer:
    def __init__(self, app: Quart, *, host: str, port: int) -> None:
        self.app = app
        self.config = Config()
        self.config.bind = [f"{host}:{port}"]
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self.config.accesslog = None
        self.config.graceful_timeout = GRACEFUL_TIMEOUT
        self.config.keep_alive_timeout = KEEP_ALIVE_TIMEOUT
        # Hypercorn pings WebSocket clients but ignores missing pongs; a peer that has
        # sent nothing (not even a pong) for three intervals is dead, and is closed.
        self.config.websocket_ping_interval = WS_PING_INTERVAL
        self.config.read_timeout = 3 * WS_PING_INTERVAL

    async def run(self, stop: anyio.Event) -> None:
        await serve(self.app, self.config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
