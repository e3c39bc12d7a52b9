"""What every service's Quart app has: a 64 KiB body limit, JSON errors, a trace id
per request (bound to the logs and echoed in `X-Request-ID`), one log line per request,
and `/healthz` (alive) and `/readyz` (dependencies reachable)."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog
from quart import Quart, Response, g, request

from gozon import tracing
from gozon.web import errors

log = structlog.get_logger("gozon.web")

MAX_BODY = 64 * 1024


def create_app(name: str, checks: dict[str, Callable[[], bool]]) -> Quart:
    """A Quart app named `name`; `checks` say, by name, whether each dependency is up."""
    app = Quart(name)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.url_map.strict_slashes = False
    errors.install(app)

    @app.before_request
    async def bind_trace() -> None:
        structlog.contextvars.clear_contextvars()
        g.trace_id = tracing.trace_id_from(request.headers)
        g.started = time.perf_counter()
        structlog.contextvars.bind_contextvars(trace_id=g.trace_id)

    @app.after_request
    async def log_request(response: Response) -> Response:
        trace_id = getattr(g, "trace_id", None)
        if trace_id:
            response.headers[tracing.HEADER] = trace_id
        started = getattr(g, "started", None)
        log.info("request handled", method=request.method, path=request.path, status=response.status_code,
                 duration_ms=round((time.perf_counter() - started) * 1000, 2) if started else None)
        return response

    @app.get("/healthz")
    async def healthz() -> Response:
        return errors.json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        state = {check: ok() for check, ok in checks.items()}
        ready = all(state.values())
        return errors.json_response({"status": "ready" if ready else "not_ready", "checks": state},
                                    200 if ready else 503)

    return app
