"""Forwarding /accounts* to payments and /orders* to orders: method, path, query, body
and the headers that matter, and back the status, body and Content-Type. A service that
is down answers 502, one that is too slow 504, both as JSON.

One aiohttp `ClientSession` for the process's life: its pool hands out a connection in
constant time (httpx's scanned every pooled connection on every request)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import aiohttp
import structlog
from quart import Response, g, request
from yarl import URL

from gozon import tracing
from gozon.web import bodies
from gozon.web.errors import error_response

log = structlog.get_logger("gozon.gateway")

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "idempotency-key")
FORWARDED_RESPONSE_HEADERS = ("content-type", "allow", "retry-after")
_RESPONSE_HEADER_NAMES = {name.encode(): name for name in FORWARDED_RESPONSE_HEADERS}

# Idle connections are dropped well before the services' servers would close them
# (gozon.web.server.KEEP_ALIVE_TIMEOUT), so a request never races such a close.
# (aiohttp also retries an idempotent request once on a connection found closed.)
PROXY_KEEPALIVE = 10.0
MAX_CONNECTIONS = 200

# What aiohttp would add on its own: the service gets the caller's headers or none.
# Without Accept-Encoding the services answer uncompressed (Content-Encoding is not
# forwarded back, and aiohttp decompresses should one ever compress anyway).
_SKIP_AUTO_HEADERS = ("User-Agent", "Content-Type", "Accept", "Accept-Encoding")

Session = aiohttp.ClientSession  # what `client` yields, for the modules that pass it on


@asynccontextmanager
async def client(timeout: float) -> AsyncIterator[Session]:
    """The proxy's pooled session, closed on exit. `timeout` bounds a whole request
    (waiting for a pooled connection included); a TCP connect gets at most 3 s of it."""
    session = Session(
        connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=PROXY_KEEPALIVE),
        timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 3.0)),
        cookie_jar=aiohttp.DummyCookieJar(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        raise_for_status=False,
    )
    try:
        yield session
    finally:
        await session.close()


async def ready(http: Session, base_url: str) -> bool:
    """Whether the service at `base_url` says it is ready; the caller bounds the wait."""
    try:
        async with http.get(base_url + "/readyz", allow_redirects=False) as response:
            return response.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


def _as_sent(value: str) -> str:
    """A header value that aiohttp (which writes headers as UTF-8) sends as the bytes that
    came in: Quart decoded those as latin-1. Bytes that are not UTF-8 cannot be sent
    as they are; they go as U+FFFD, still not ASCII, so a service that judges the header
    refuses it as it would have refused the original (judging is the service's business)."""
    if value.isascii():
        return value
    return value.encode("latin-1").decode("utf-8", "replace")


async def forward(http: Session, service: str, base_url: str) -> Response:
    headers = {name: _as_sent(request.headers[name]) for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
    headers[tracing.HEADER] = g.trace_id
    # Path and query as they came in (percent-encoding and repeated keys untouched).
    raw_path = request.scope.get("raw_path")  # optional in ASGI; Hypercorn sets it
    target = base_url + (raw_path.decode("latin-1") if raw_path else quote(request.path))
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    body = await bodies.read()
    try:
        async with http.request(request.method, URL(target, encoded=True), data=body or None, headers=headers,
                                allow_redirects=False) as upstream:
            content = await upstream.read()
    except TimeoutError:  # aiohttp's ServerTimeoutError is one too
        log.warning("service timed out", upstream=service)
        return error_response(504, "service_timeout", f"The {service} service did not answer in time.")
    except aiohttp.ClientError as exc:
        log.warning("service unreachable", upstream=service, error=str(exc) or type(exc).__name__)
        return error_response(502, "service_unavailable", f"The {service} service is unavailable.")
    response = Response(content, status=upstream.status)
    forwarded: dict[str, list[str]] = {}
    for raw_name, raw_value in upstream.raw_headers:
        name = _RESPONSE_HEADER_NAMES.get(raw_name.lower())
        if name is not None:
            forwarded.setdefault(name, []).append(raw_value.decode("latin-1"))
    for name, values in forwarded.items():
        response.headers[name] = ", ".join(values)
    return response
