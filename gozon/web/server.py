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


class HttpServer:
    def __init__(self, app: Quart, *, host: str, port: int) -> None:
        self.app = app
        self.config = Config()
        self.config.bind = [f"{host}:{port}"]
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self.config.accesslog = None
        self.config.graceful_timeout = GRACEFUL_TIMEOUT
        self.config.websocket_ping_interval = 20.0

    async def run(self, stop: anyio.Event) -> None:
        await serve(self.app, self.config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
