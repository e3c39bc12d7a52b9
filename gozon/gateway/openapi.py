"""The gateway's OpenAPI 3.1 document: a table of its routes whose bodies, query strings
and responses are the very msgspec types that decode requests and encode responses, so
the document cannot drift from what the code accepts and answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import GenericAlias

import msgspec

from gozon.config import Settings
from gozon.gateway.hub import PaymentResultFrame, Pong
from gozon.gateway.schemas import WsQuery
from gozon.orders.schemas import IDEMPOTENCY_KEY_PATTERN, CreateOrder, Order, OrderQuery, OrdersQuery
from gozon.payments.schemas import (
    Account,
    Balance,
    BalanceQuery,
    CreateAccount,
    Deposit,
)
from gozon.web.errors import Error, too_large

DESCRIPTION = (
    "Orders and payments: create an account, deposit, place orders; each order's payment result"
    " arrives on the WebSocket `/ws?user_id=N`. Ids and amounts are integers, written as such"
    ' (100, not 100.0 or "100"): ids from 1 to 2^63-1, amounts from 1 to 10^12. Bodies are JSON'
    ' whatever the Content-Type. Every error is JSON: `{"error": "<code>", "message":'
    ' "<sentence>", "field": "<name>"}` (`field` when one field is at fault); bad input changes'
    " nothing."
)
JSON = "application/json"
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".html": "text/html"}
TEXT = {"type": "string"}


@dataclass(frozen=True)
class Reply:
    description: str
    schema: object = Error  # a msgspec type, a JSON Schema dict, or None (no body)
    media: Sequence[str] = (JSON,)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI style: /assets/{name}
    summary: str
    tag: str
    replies: Mapping[int, Reply]
    query: type | None = None
    body: type | None = None
    headers: Sequence[dict] = field(default=())


# The answers that several routes share.
BAD_JSON = {400: Reply("The body is not JSON (`invalid_json`).")}
INVALID = {422: Reply("A field or query parameter is missing, unknown, of the wrong type or out of range"
                      " (`invalid_field`, `invalid_query`); `field` names it.")}
UPSTREAM = {
    502: Reply("The service behind the gateway is down (`service_unavailable`)."),
    503: Reply("The service's database is down (`database_unavailable`); retry shortly."),
    504: Reply("The service did not answer in time (`service_timeout`)."),
}
NOT_FOUND = {404: Reply("No such file (`not_found`).")}


def _page(description: str) -> dict[int, Reply]:
    return {200: Reply(description, TEXT, ("text/html",))}


def routes(settings: Settings) -> tuple[Route, ...]:
    """The gateway's routes, with the limits and the retention `settings` give."""
    body_limit = {413: Reply(too_large(settings.max_body_bytes).removesuffix(".") + " (`body_too_large`).")}
    idempotency_key = {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": "A retry with the same key and body gets the first answer and creates nothing;"
                       " the same key with another body gets 422 `idempotency_key_reused`."
                       f" Kept {settings.idempotency_key_retention_hours:g} h, per user.",
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},  # what the orders service applies
    }
    return (
        Route("POST", "/accounts", "Create the user's account, with a balance of 0", "accounts",
              {201: Reply("The new account.", Account),
               **BAD_JSON, 409: Reply("The user already has an account (`account_exists`)."), **body_limit, **INVALID,
               **UPSTREAM}, body=CreateAccount),
        Route("POST", "/accounts/deposit", "Add money to the user's account", "accounts",
              {200: Reply("The account with its new balance.", Account),
               **BAD_JSON, 404: Reply("The user has no account (`account_not_found`)."), **body_limit,
               422: Reply(INVALID[422].description + " Also `balance_overflow`: the balance would pass 2^63-1."),
               **UPSTREAM}, body=Deposit),
        Route("GET", "/accounts/balance", "The user's balance", "accounts",
              {200: Reply("The balance.", Balance), 404: Reply("The user has no account (`account_not_found`)."),
               **INVALID, **UPSTREAM}, query=BalanceQuery),
        Route("POST", "/orders", "Place an order; its payment result comes later on /ws", "orders",
              {201: Reply("The order, `new` until paid (`finished`) or refused (`cancelled`).", Order),
               **BAD_JSON,
               409: Reply("A request with the same Idempotency-Key is in progress (`request_in_progress`)."),
               **body_limit,
               422: Reply(INVALID[422].description + " Also `invalid_idempotency_key`, `idempotency_key_reused`."),
               **UPSTREAM}, body=CreateOrder, headers=(idempotency_key,)),
        Route("GET", "/orders", "The user's orders, newest first", "orders",
              {200: Reply("Up to `limit` orders with ids below `before_id`; [] when none.", list[Order]),
               **INVALID, **UPSTREAM}, query=OrdersQuery),
        Route("GET", "/orders/by-id", "One order", "orders",
              {200: Reply("The order.", Order), 404: Reply("There is no such order (`order_not_found`)."),
               **INVALID, **UPSTREAM}, query=OrderQuery),
        Route("GET", "/ws", "WebSocket: the user's payment results as they happen", "notifications",
              {101: Reply("The WebSocket. Each payment result of the user's orders arrives as a text frame"
                          " `PaymentResultFrame`; the text `ping` is answered with `Pong`. The subscription is"
                          " active once the first pong arrived.", None),
               422: Reply("`user_id` is missing or not an integer from 1 to 2^63-1 (`invalid_user_id`)."),
               426: Reply("A plain HTTP request: connect with a WebSocket (`websocket_required`).")},
              query=WsQuery),
        Route("GET", "/healthz", "Liveness: the gateway answers", "probes",
              {200: Reply("Alive.", {"type": "object", "properties": {"status": {"const": "ok"}}})}),
        Route("GET", "/readyz", "Readiness: the broker and both services are reachable", "probes",
              {code: Reply(text, {"type": "object", "required": ["status", "checks"],
                                  "properties": {"status": {"enum": ["ready", "not_ready"]},
                                                 "checks": {"type": "object",
                                                            "additionalProperties": {"type": "boolean"}}}})
               for code, text in ((200, "Ready."), (503, "Not ready; `checks` says what is down."))}),
        Route("GET", "/metrics", "Metrics in Prometheus' text format", "probes",
              {200: Reply("The metrics.", TEXT, ("text/plain",))}),
        Route("GET", "/", "The shopper's page", "page",
              {**_page("The page."), 404: Reply("The page is not installed (`not_found`).")}),
        Route("GET", "/assets/{name}", "The page's style and script", "page", NOT_FOUND),
        Route("GET", "/openapi.json", "This document", "docs",
              {200: Reply("The OpenAPI document.", {"type": "object"})}),
        Route("GET", "/docs", "Swagger UI for this document (works offline)", "docs", _page("Swagger UI.")),
        Route("GET", "/docs/{name}", "Swagger UI's style and script", "docs", NOT_FOUND),
    )


FRAMES = (PaymentResultFrame, Pong)  # on /ws: described in components, referenced in prose


def document(assets: Mapping[str, Sequence[str]], settings: Settings) -> dict:
    """The OpenAPI document; `assets` gives the file names each `{name}` route serves."""
    all_routes = routes(settings)
    kinds = list(dict.fromkeys([r.body for r in all_routes if r.body] + [
        reply.schema for r in all_routes for reply in r.replies.values()
        if isinstance(reply.schema, type | GenericAlias)  # a Struct, or e.g. list[Order]
    ] + list(FRAMES)))
    refs, components = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
    ref = dict(zip(kinds, refs, strict=True))
    paths: dict[str, dict] = {}
    for route in all_routes:
        replies = dict(route.replies)
        parameters = [*_parameters(route.query), *route.headers]
        if "{name}" in route.path:
            names = sorted(assets[route.path])
            parameters.append({"name": "name", "in": "path", "required": True,
                               "schema": {"enum": names} if names else TEXT})
            if names:
                media = sorted({MEDIA_TYPES[PurePath(name).suffix] for name in names})
                replies[200] = Reply("The file.", TEXT, media)
        operation: dict = {"summary": route.summary, "tags": [route.tag], "responses": {
            str(code): _response(reply, ref) for code, reply in sorted(replies.items())}}
        if parameters:
            operation["parameters"] = parameters
        if route.body:
            operation["requestBody"] = {"required": True, "content": {JSON: {"schema": ref[route.body]}}}
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gozon", "version": "1", "description": DESCRIPTION},
        "tags": [{"name": tag} for tag in dict.fromkeys(r.tag for r in all_routes)],
        "paths": paths,
        "components": {"schemas": components},
    }


def _response(reply: Reply, ref: Mapping[object, dict]) -> dict:
    response: dict = {"description": reply.description}
    if reply.schema is not None:
        schema = reply.schema if isinstance(reply.schema, dict) else ref[reply.schema]
        response["content"] = {media: {"schema": schema} for media in reply.media}
    return response


def _parameters(query: type | None) -> list[dict]:
    """A query Struct's fields as query parameters (a None default is just "absent")."""
    if query is None:
        return []
    _, components = msgspec.json.schema_components([query])
    schema = components[query.__name__]
    required = set(schema.get("required", ()))
    return [{"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
            for name, prop in schema["properties"].items()]


def _not_null(schema: dict) -> dict:
    options = [s for s in schema.get("anyOf", ()) if s != {"type": "null"}]
    return options[0] if len(options) == 1 else schema
