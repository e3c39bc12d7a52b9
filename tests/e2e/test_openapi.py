"""The OpenAPI document against the routes that really exist: every route the gateway
answers (its own, and the services' routes it proxies) is described, and every described
operation is answered by a route rather than a routing 404/405. Swagger UI needs nothing
from the internet."""

from __future__ import annotations

import re

import httpx
import schemathesis
from werkzeug.routing import Rule

from gozon.gateway import api
from gozon.gateway.hub import Hub
from gozon.orders import api as orders_api
from gozon.payments import api as payments_api
from tests.settings import TEST_SETTINGS
from tests.support import Stack

AUTOMATIC = {"HEAD", "OPTIONS"}  # added to every route by Quart (OPTIONS is the CORS preflight)
ROUTING_ERRORS = {"not_found", "method_not_allowed"}


def _operations(rules) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) for werkzeug rules."""
    return {(method, re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule))
            for rule in rules for method in (rule.methods or set()) - AUTOMATIC}


def _existing_routes() -> set[tuple[str, str]]:
    """The gateway's own routes, plus, for each prefix it proxies (e.g. /orders/<path:rest>),
    the routes of the service behind it under that prefix: those are the ones that answer."""
    with Hub(queue_size=1) as hub:
        gateway = api.build(hub, None, ready={}, settings=TEST_SETTINGS)
    services = [*orders_api.build(None, None, {}, TEST_SETTINGS).url_map.iter_rules(),
                *payments_api.build(None, {}, TEST_SETTINGS).url_map.iter_rules()]
    own: list[Rule] = []
    proxied: list[Rule] = []
    for rule in gateway.url_map.iter_rules():
        prefix = rule.rule.removesuffix("/<path:rest>")
        if rule.endpoint.startswith(api.PROXY_ENDPOINT):  # a proxied route, or a catch-all
            proxied += [r for r in services if r.rule == prefix or r.rule.startswith(prefix + "/")]
        else:
            own.append(rule)
    return _operations(own) | _operations(proxied)


def _documented(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}


def test_the_document_is_valid_openapi_3_1(stack: Stack) -> None:
    document = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    assert document["openapi"].startswith("3.1"), document["openapi"]
    schemathesis.openapi.from_dict(document).validate()  # against the OpenAPI 3.1 meta-schema


def test_every_route_is_documented_and_every_documented_route_exists(stack: Stack) -> None:
    document = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    existing, documented = _existing_routes(), _documented(document)
    assert existing - documented == set(), "routes the document does not describe"
    assert documented - existing == set(), "described routes that do not exist"


def test_every_documented_operation_is_answered_by_its_route(stack: Stack) -> None:
    """On the live gateway: whatever the answer to a bare request (often 400/422 for what
    is missing), it is never "no such route" or "wrong method"."""
    document = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    path = path.replace(f"{{{parameter['name']}}}", parameter["schema"]["enum"][0])
            response = httpx.request(method, stack.gateway_url + path, timeout=10)
            code = response.json().get("error") if "json" in response.headers["content-type"] else None
            assert code not in ROUTING_ERRORS, f"{method.upper()} {path}: {response.status_code} {response.text}"


def test_swagger_ui_is_served_from_the_gateway_itself(stack: Stack) -> None:
    page = httpx.get(f"{stack.gateway_url}/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text), "the docs load something from elsewhere"
    assets = re.findall(r"(?:src|href)=\"(/docs/[^\"]+)\"", page.text)
    assert len(assets) == 2, page.text
    for asset in assets:
        response = httpx.get(stack.gateway_url + asset)
        assert response.status_code == 200 and len(response.content) > 10_000, (asset, response.status_code)
