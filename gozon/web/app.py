"""What every service's Quart app has: a body limit, JSON errors, a trace id
per request (bound to the logs and echoed in `X-Request-ID`), one log line and one
metric sample per request, `/healthz` (alive), `/readyz` (dependencies reachable now)
and `/metrics` (Prometheus, with the readiness checks run at each scrape)."""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Sequence

import anyio
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from quart import Quart, Response, g, request

from gozon import metrics, tracing
from gozon.runtime.tasks import task_group
from gozon.web import bodies, errors

log = structlog.get_logger("gozon.web")

# A check that has not answered within this has failed: a probe gets its answer within
# its own short timeout, even from the gateway, whose checks ask the services' /readyz.
CHECK_TIMEOUT = 1.0

# Whether a dependency is up: a flag read at once, or a round trip (e.g. `SELECT 1`).
Check = Callable[[], bool | Awaitable[bool]]


def create_app(name: str, checks: dict[str, Check], *, max_body: int,
               scrape: Sequence[Callable[[], Awaitable[None]]] = ()) -> Quart:
    """A Quart app named `name` that refuses bodies over `max_body` bytes; `checks`
    say, by name, whether each dependency is up; `scrape` hooks refresh gauges that are
    read at each `/metrics` request."""
    app = Quart(name, static_folder=None)  # no /static route: nothing is served by accident
    app.config[bodies.MAX_BODY] = max_body
    # Quart's own limit only guards against what `bodies.read` does not drain (see there).
    app.config["MAX_CONTENT_LENGTH"] = bodies.DRAIN_LIMIT
    app.url_map.strict_slashes = False
    errors.install(app, max_body)

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

    async def check_all() -> dict[str, bool]:
        state = dict.fromkeys(checks, False)

        async def run(name: str, check: Check) -> None:
            with anyio.move_on_after(CHECK_TIMEOUT):
                answer = check()
                state[name] = await answer if inspect.isawaitable(answer) else answer

        async with task_group() as tg:
            for name, check in checks.items():
                tg.start_soon(run, name, check)
        metrics.checked(state)
        return state

    @app.get("/readyz")
    async def readyz() -> Response:
        state = await check_all()
        ready = all(state.values())
        return errors.json_response({"status": "ready" if ready else "not_ready", "checks": state},
                                    200 if ready else 503)

    @app.get("/metrics")
    async def metrics_page() -> Response:
        await check_all()  # so a process that is up but not ready shows as such
        for refresh in scrape:
            await refresh()
        return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    return app
