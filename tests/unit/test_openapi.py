"""The gateway's OpenAPI document as a client generator or schemathesis reads it: valid
OpenAPI 3.1, every route with every answer it gives, schemas that resolve, and query
parameters and headers that accept exactly what the services accept."""

from __future__ import annotations

import re
from collections.abc import Iterator

import jsonschema
import msgspec
import pytest
from quart import Quart
from schemathesis.specs.openapi.definitions import OPENAPI_31  # the OAS 3.1 schema, as published

from gozon.config import Settings
from gozon.gateway import openapi
from gozon.orders import api as orders_api
from gozon.web.errors import ApiError

ASSETS = {"/assets/{name}": ["style.css", "app.js", "index.html"], "/docs/{name}": []}
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi.document(ASSETS, Settings())


@pytest.fixture(scope="module")
def routes() -> tuple[openapi.Route, ...]:
    return openapi.routes(Settings())


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def schema_of(document: dict, path: str, method: str, code: int, media: str = openapi.JSON) -> dict:
    return document["paths"][path][method]["responses"][str(code)]["content"][media]["schema"]


def test_the_document_is_valid_openapi_3_1(document: dict) -> None:
    jsonschema.Draft202012Validator(OPENAPI_31).validate(document)
    assert document["openapi"] == "3.1.0"
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_document_is_json(document: dict) -> None:
    assert msgspec.json.decode(msgspec.json.encode(document)) == document


def test_every_route_is_documented_with_every_answer_it_gives(document: dict, routes: tuple) -> None:
    assert {(r.path, r.method.lower()) for r in routes} == {(p, m) for p, m, _ in operations(document)}
    for route in routes:
        operation = document["paths"][route.path][route.method.lower()]
        expected = set(route.replies) | ({200} if ASSETS.get(route.path) else set())
        assert set(operation["responses"]) == {str(code) for code in expected}, route.path
        assert operation["summary"] and operation["tags"] == [route.tag]
        assert all(reply["description"] for reply in operation["responses"].values())


def test_the_api_routes_are_there_with_their_answers(document: dict) -> None:
    answers = {(path, method): set(operation["responses"]) for path, method, operation in operations(document)}

    assert answers["/orders", "post"] == {"201", "400", "409", "413", "422", "502", "503", "504"}
    assert answers["/orders", "get"] == {"200", "422", "502", "503", "504"}
    assert answers["/orders/by-id", "get"] == {"200", "404", "422", "502", "503", "504"}
    assert answers["/accounts", "post"] == {"201", "400", "409", "413", "422", "502", "503", "504"}
    assert answers["/accounts/deposit", "post"] == {"200", "400", "404", "413", "422", "502", "503", "504"}
    assert answers["/accounts/balance", "get"] == {"200", "404", "422", "502", "503", "504"}
    assert answers["/ws", "get"] == {"101", "422", "426"}
    assert {"/healthz", "/readyz", "/metrics", "/", "/openapi.json", "/docs"} <= document["paths"].keys()


def test_every_error_answer_is_the_json_error_body(document: dict) -> None:
    for path, method, operation in operations(document):
        for code, reply in operation["responses"].items():
            if code.startswith(("4", "5")) and (path, code) != ("/readyz", "503"):
                assert reply["content"] == {openapi.JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}, \
                    (path, method, code)
    assert document["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_every_ref_resolves_to_a_component(document: dict) -> None:
    found = list(refs(document))
    components = document["components"]["schemas"]

    assert found, "no $ref at all"
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in components, ref


def test_bodies_and_answers_are_the_structs_the_services_use(document: dict) -> None:
    components = document["components"]["schemas"]

    for name in ("CreateAccount", "Deposit", "CreateOrder", "Account", "Balance", "Order", "Error",
                 "PaymentResultFrame", "Pong"):
        assert name in components, name
    for path, body in (("/accounts", "CreateAccount"), ("/accounts/deposit", "Deposit"), ("/orders", "CreateOrder")):
        assert document["paths"][path]["post"]["requestBody"] == {
            "required": True, "content": {openapi.JSON: {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
        assert components[body]["additionalProperties"] is False  # unknown fields are refused
    assert schema_of(document, "/orders", "post", 201) == {"$ref": "#/components/schemas/Order"}
    assert schema_of(document, "/orders", "get", 200) == {"type": "array",
                                                          "items": {"$ref": "#/components/schemas/Order"}}
    assert schema_of(document, "/accounts/balance", "get", 200) == {"$ref": "#/components/schemas/Balance"}
    assert components["CreateOrder"]["properties"]["amount"] == {"type": "integer", "minimum": 1,
                                                                 "maximum": 10**12}
    assert components["Order"]["properties"]["status"] == {"enum": ["cancelled", "finished", "new"]}


@pytest.mark.parametrize(("path", "expected"), [
    ("/orders", {"user_id": True, "limit": False, "before_id": False}),
    ("/orders/by-id", {"id": True}),
    ("/accounts/balance", {"user_id": True}),
    ("/ws", {"user_id": True}),
])
def test_query_parameters_are_the_query_struct_fields(document: dict, path: str, expected: dict) -> None:
    parameters = document["paths"][path]["get"]["parameters"]

    assert {p["name"]: p["required"] for p in parameters if p["in"] == "query"} == expected
    for parameter in parameters:
        assert parameter["schema"]["type"] == "integer" and parameter["schema"]["minimum"] == 1, parameter


def test_an_optional_query_parameter_is_absent_rather_than_null(document: dict) -> None:
    [before_id] = [p for p in document["paths"]["/orders"]["get"]["parameters"] if p["name"] == "before_id"]
    [limit] = [p for p in document["paths"]["/orders"]["get"]["parameters"] if p["name"] == "limit"]

    assert before_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert "null" not in repr(before_id)
    assert limit["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}


def test_every_path_template_has_its_path_parameter(document: dict) -> None:
    for path, _, operation in operations(document):
        templated = set(re.findall(r"{(\w+)}", path))
        declared = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
        assert templated == declared, path


def test_asset_routes_list_the_files_they_serve(document: dict) -> None:
    assets = document["paths"]["/assets/{name}"]["get"]
    [name] = assets["parameters"]

    assert name == {"name": "name", "in": "path", "required": True,
                    "schema": {"enum": ["app.js", "index.html", "style.css"]}}
    assert set(assets["responses"]["200"]["content"]) == {"text/css", "text/html", "text/javascript"}


def test_an_asset_route_with_no_file_takes_any_name_and_only_answers_404(document: dict) -> None:
    docs = document["paths"]["/docs/{name}"]["get"]

    assert docs["parameters"] == [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    assert set(docs["responses"]) == {"404"}


# The Idempotency-Key header: the document must accept exactly what POST /orders accepts.

def idempotency_header(document: dict) -> dict:
    [header] = [p for p in document["paths"]["/orders"]["post"]["parameters"] if p["in"] == "header"]
    return header


def test_the_idempotency_key_header_is_optional_and_described(document: dict) -> None:
    header = idempotency_header(document)

    assert header["name"] == "Idempotency-Key" and header["required"] is False
    assert header["schema"]["type"] == "string"
    assert "idempotency_key_reused" in header["description"]


async def orders_accepts(key: str) -> bool:
    async with Quart(__name__).test_request_context("/orders", method="POST", headers={"Idempotency-Key": key}):
        try:
            orders_api._idempotency_key()
        except ApiError as exc:
            assert (exc.status, exc.body.error) == (422, "invalid_idempotency_key")
            return False
        return True


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # Quart's request context needs asyncio
@pytest.mark.parametrize(("key", "valid"), [
    ("a", True),
    ("order-2026-11-25/42", True),
    ("!~" + "x" * 253, True),  # 255 characters, the ends of printable ASCII
    ("x" * 256, False),
    ("two words", False),
    ("caf\u00e9", False),
])
async def test_the_idempotency_key_pattern_is_what_the_orders_service_accepts(
    document: dict, key: str, valid: bool
) -> None:
    pattern = idempotency_header(document)["schema"]["pattern"]

    # JSON Schema's pattern is unanchored: the document's own anchors must do the work.
    assert (re.search(pattern, key) is not None) is valid
    assert await orders_accepts(key) is valid
