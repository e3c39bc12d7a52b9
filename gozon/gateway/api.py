"""The gateway's HTTP surface: the proxied API, `/ws`, the page and the docs (`pages`),
and CORS for the page opened as a local file (no credentials are involved, so any
origin may call)."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import structlog
from quart import Quart, Response, request, websocket

from gozon import metrics
from gozon.config import Settings
from gozon.gateway import openapi, pages, proxy
from gozon.gateway.hub import PONG, Connection, Hub, Outgoing
from gozon.gateway.schemas import WsQuery
from gozon.messages import MAX_ID
from gozon.runtime.tasks import task_group
from gozon.web import bodies
from gozon.web.app import create_app
from gozon.web.errors import ApiError, error_response

log = structlog.get_logger("gozon.gateway")

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
PROXY_ENDPOINT = "proxy "  # how the endpoints of proxied routes begin
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type, Idempotency-Key, X-Request-ID, traceparent",
    "Access-Control-Expose-Headers": "X-Request-ID",
    "Access-Control-Max-Age": "600",
}


def build(hub: Hub, http: proxy.Session, *, ready: dict, settings: Settings) -> Quart:
    app = create_app("gateway", ready, max_body=settings.max_body_bytes)
    pages.install(app, Path(settings.client_dir), settings)

    @app.before_request
    async def preflight() -> Response | None:
        if request.method == "OPTIONS":
            return Response("", status=204)
        return None

    @app.after_request
    async def cors(response: Response) -> Response:
        response.headers.update(CORS_HEADERS)
        return response

    documented = {route.path for route in openapi.routes(settings)}
    for prefix, service, url in (("/accounts", "payments", settings.payments_url),
                                 ("/orders", "orders", settings.orders_url)):

        async def forward(service: str = service, url: str = url, **_: str) -> Response:
            return await proxy.forward(http, service, url)

        # A rule per documented route, so a request's metrics name the route it called
        # (deposit is not balance); any other path under the prefix is proxied all the
        # same, by a catch-all rule that keeps its label one of two.
        for path in sorted(p for p in documented if p == prefix or p.startswith(prefix + "/")):
            app.add_url_rule(_rule(path), f"{PROXY_ENDPOINT}{service} {path}", forward, methods=METHODS)
        app.add_url_rule(f"{prefix}/<path:rest>", f"{PROXY_ENDPOINT}{service} *", forward, methods=METHODS)

    @app.get("/ws")
    async def ws_without_upgrade() -> Response:
        response = error_response(426, "websocket_required",
                                  "/ws is a WebSocket: connect to ws://<gateway>/ws?user_id=N.")
        response.headers["Upgrade"] = "websocket"
        return response

    @app.websocket("/ws")
    async def ws() -> Response | None:
        try:
            user_id = bodies.query(WsQuery, websocket.args).user_id
        except ApiError as exc:
            return error_response(exc.status, "invalid_user_id",
                                  f"Connect to /ws?user_id=N with N a whole number from 1 to {MAX_ID}.",
                                  "user_id")
        await websocket.accept()
        connection = hub.register(user_id)
        with structlog.contextvars.bound_contextvars(user_id=user_id):
            log.info("websocket connected", connections=hub.connections)
            try:
                await _serve(connection)
            finally:
                hub.unregister(connection)
                log.info("websocket disconnected", connections=hub.connections)
        return None

    return app


def _rule(path: str) -> str:
    """The URL rule of an OpenAPI path: /orders/{order_id} is /orders/<order_id>."""
    return re.sub(r"\{(\w+)\}", r"<\1>", path)


async def _serve(connection: Connection) -> None:
    """Send the connection's queue and answer pings until the client goes (Quart then
    cancels this) or falls too far behind: then stop, even mid-send, and close it."""
    async with task_group() as tg:

        async def send() -> None:
            async for frame in connection.outgoing:
                await websocket.send(frame.text)
                metrics.WS_FRAMES_SENT.inc()
                if frame.order_id is not None:
                    log.info("websocket frame sent", order_id=frame.order_id, trace_id=frame.trace_id)

        async def receive() -> None:
            while True:
                if await websocket.receive() == "ping":
                    connection.offer(Outgoing(PONG))

        tg.start_soon(send)
        tg.start_soon(receive)
        await connection.too_slow.wait()
        tg.cancel_scope.cancel()
    with anyio.move_on_after(1):
        await websocket.close(1013, "too slow; reconnect")
