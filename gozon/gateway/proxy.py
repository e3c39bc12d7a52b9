"""Forwarding /accounts* to payments and /orders* to orders: method, path, query, body
and the headers that matter, and back the status, body and Content-Type. A service that
is down answers 502, one that is too slow 504, both as JSON."""

from __future__ import annotations

import httpx
import structlog
from quart import Response, g, request

from gozon import tracing
from gozon.web.errors import error_response

log = structlog.get_logger("gozon.gateway")

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key")
FORWARDED_RESPONSE_HEADERS = ("content-type", "allow", "retry-after")


# Idle connections are dropped well before the services' servers would close them
# (gozon.web.server.KEEP_ALIVE_TIMEOUT), so a request never races such a close.
PROXY_KEEPALIVE = 10.0


def client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=64, keepalive_expiry=PROXY_KEEPALIVE),
    )


async def ready(http: httpx.AsyncClient, base_url: str) -> bool:
    """Whether the service at `base_url` says it is ready; the caller bounds the wait."""
    try:
        return (await http.get(base_url + "/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def forward(http: httpx.AsyncClient, service: str, base_url: str) -> Response:
    # As the bytes that came in (Quart decodes them as latin-1): judging a header is the
    # service's business, and httpx refuses to encode non-ASCII text.
    headers = {name: request.headers[name].encode("latin-1")
               for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers[tracing.HEADER] = g.trace_id.encode()
    body = await request.get_data(cache=False)
    try:
        upstream = await http.request(
            request.method, base_url + request.path, params=list(request.args.items(multi=True)),
            content=body, headers=headers,
        )
    except httpx.TimeoutException:
        log.warning("service timed out", upstream=service)
        return error_response(504, "service_timeout", f"The {service} service did not answer in time.")
    except httpx.TransportError as exc:
        log.warning("service unreachable", upstream=service, error=str(exc) or type(exc).__name__)
        return error_response(502, "service_unavailable", f"The {service} service is unavailable.")
    response = Response(upstream.content, status=upstream.status_code)
    for name in FORWARDED_RESPONSE_HEADERS:
        if name in upstream.headers:
            response.headers[name] = upstream.headers[name]
    return response
