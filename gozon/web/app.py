"""What every service's Quart app has: a 64 KiB body limit, JSON errors, a trace id
per request (bound to the logs and echoed in `X-Request-ID`), one log line and one
metric sample per request, `/healthz` (alive), `/readyz` (dependencies reachable now)
and `/metrics` (Prometheus)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, g, request

from gozon import metrics, tracing
from gozon.web import errors

log = structlog.get_logger("gozon.web")

MAX_BODY = 64 * 1024

# A check that has not answered within this has failed: a probe gets its answer within
# its own short timeout, even from the gateway, whose checks ask the services' /readyz.
CHECK_TIMEOUT = 1.0

# Whether a dependency is up: a flag read at once, or a round trip (e.g. `SELECT 1`).
Check = Callable[[], bool | Awaitable[bool]]


def create_app(name: str, checks: dict[str, Check], *,
               scrape: Sequence[Callable[[], Awaitable[None]]] = ()) -> Quart:
    """A Quart app named `name`; `checks` say, by name, whether each dependency is up;
    `scrape` hooks refresh gauges that are read at each `/metrics` request."""
    app = Quart(name, static_folder=None)  # no /static route: nothing is served by accident
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
        seconds = None if started is None else time.perf_counter() - started
        log.info("request handled", method=request.method, path=request.path, status=response.status_code,
                 duration_ms=None if seconds is None else round(seconds * 1000, 2))
        if seconds is not None:
            rule = request.url_rule
            metrics.observe_request(request.method, rule and rule.rule, response.status_code, seconds)
        return response

    @app.get("/healthz")
    async def healthz() -> Response:
        return errors.json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        state = dict.fromkeys(checks, False)

        async def run(name: str, check: Check) -> None:
            with anyio.move_on_after(CHECK_TIMEOUT):
                answer = check()
                state[name] = await answer if inspect.isawaitable(answer) else answer

        async with anyio.create_task_group() as tg:
            for name, check in checks.items():
                tg.start_soon(run, name, check)
        ready = all(state.values())
        return errors.json_response({"status": "ready" if ready else "not_ready", "checks": state},
                                    200 if ready else 503)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        for refresh in scrape:
            await refresh()
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app
