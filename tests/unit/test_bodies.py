"""Strict decoding of bodies and query strings: what a client sent wrong comes back as
the status, error code, field and sentence it reads — worded from msgspec's own error
text, which these tests pin — and nothing is coerced."""

from __future__ import annotations

import msgspec
import pytest
from gozon.config import Settings
from gozon.orders.schemas import CreateOrder, OrdersQuery
from gozon.payments.schemas import Deposit
from gozon.web import bodies
from gozon.web.app import create_app
from gozon.web.errors import ApiError

LIMIT = Settings().max_body_bytes
app = create_app("bodies", {}, max_body=LIMIT)


def on_asyncio(test):
    """Quart's request context needs asyncio: this test does not run on trio."""
    return pytest.mark.anyio(pytest.mark.parametrize("anyio_backend", ["asyncio"])(test))


class Item(msgspec.Struct, forbid_unknown_fields=True):
    amount: int


class Basket(msgspec.Struct, forbid_unknown_fields=True):
    """Nested, unlike today's bodies: so a path deep in the body is pinned too."""

    items: list[Item]


async def decode(kind: type, data: bytes, content_type: str = "application/json") -> object:
    async with app.test_request_context("/x", method="POST", data=data, headers={"Content-Type": content_type}):
        return await bodies.body(kind)


def refusal(exc: pytest.ExceptionInfo[ApiError]) -> tuple[int, str, str | None, str]:
    return exc.value.status, exc.value.body.error, exc.value.body.field, exc.value.body.message


# body()

@pytest.mark.parametrize(("content_type"), ["application/json", "text/plain", "application/x-www-form-urlencoded"])
@on_asyncio
async def test_a_valid_body_is_decoded_whatever_the_content_type(content_type: str) -> None:
    order = await decode(CreateOrder, b'{"user_id": 7, "amount": 200}', content_type)

    assert order == CreateOrder(user_id=7, amount=200)


@pytest.mark.parametrize(("data", "field", "message"), [
    (b'{"amount": 5}', "user_id", "Object missing required field `user_id`."),
    (b'{"user_id": 1, "amount": 5, "coupon": "x"}', "coupon", "Object contains unknown field `coupon`."),
    (b'{"user_id": "1", "amount": 5}', "user_id", "Expected `int`, got `str` - at `$.user_id`."),
    (b'{"user_id": 1, "amount": "100"}', "amount", "Expected `int`, got `str` - at `$.amount`."),
    (b'{"user_id": 1, "amount": 100.0}', "amount", "Expected `int`, got `float` - at `$.amount`."),
    (b'{"user_id": 1, "amount": 1e3}', "amount", "Expected `int`, got `float` - at `$.amount`."),
    (b'{"user_id": 1, "amount": true}', "amount", "Expected `int`, got `bool` - at `$.amount`."),
    (b'{"user_id": 1, "amount": null}', "amount", "Expected `int`, got `null` - at `$.amount`."),
    (b'{"user_id": 0, "amount": 5}', "user_id", "Expected `int` >= 1 - at `$.user_id`."),
    (b'{"user_id": 1, "amount": 0}', "amount", "Expected `int` >= 1 - at `$.amount`."),
    (b'{"user_id": 1, "amount": 1000000000001}', "amount", "Expected `int` <= 1000000000000 - at `$.amount`."),
    (b'{"user_id": 1, "amount": 100000000000000000000000000000}', "amount",
     "Expected `int` <= 1000000000000 - at `$.amount`."),
    (b'{"user_id": 9223372036854775808, "amount": 5}', "user_id",
     "Expected `int` <= 9223372036854775807 - at `$.user_id`."),
    (b'[1, 200]', None, "Expected `object`, got `array`."),
])
@on_asyncio
async def test_a_wrong_field_is_refused_with_422_naming_it(data: bytes, field: str | None, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        await decode(CreateOrder, data)

    assert refusal(refused) == (422, "invalid_field", field, message)


@on_asyncio
async def test_every_body_type_refuses_unknown_fields() -> None:
    with pytest.raises(ApiError) as refused:
        await decode(Deposit, b'{"user_id": 1, "amount": 5, "currency": "EUR"}')

    assert refusal(refused) == (422, "invalid_field", "currency", "Object contains unknown field `currency`.")


@on_asyncio
async def test_a_wrong_field_deep_in_the_body_is_named_by_its_path() -> None:
    with pytest.raises(ApiError) as refused:
        await decode(Basket, b'{"items": [{"amount": 1}, {"amount": "2"}]}')

    assert refusal(refused) == (422, "invalid_field", "items[1].amount",
                                "Expected `int`, got `str` - at `$.items[1].amount`.")


@pytest.mark.parametrize(("data", "message"), [
    (b"", "The body is not valid JSON: Input data was truncated."),
    (b'{"user_id": 1,', "The body is not valid JSON: Input data was truncated."),
    (b"user_id=1&amount=5", "The body is not valid JSON: JSON is malformed: invalid character (byte 0)."),
    (b'{"user_id": 1, "amount": 5} {}',
     "The body is not valid JSON: JSON is malformed: trailing characters (byte 29)."),
])
@on_asyncio
async def test_a_body_that_is_not_json_is_refused_with_400(data: bytes, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        await decode(CreateOrder, data)

    assert refusal(refused) == (400, "invalid_json", None, message)


# query()

def test_a_valid_query_is_decoded_with_its_defaults() -> None:
    assert bodies.query(OrdersQuery, {"user_id": "3"}) == OrdersQuery(user_id=3, limit=100, before_id=None)
    assert bodies.query(OrdersQuery, {"user_id": "3", "limit": "1000", "before_id": "9223372036854775807"}) == \
        OrdersQuery(user_id=3, limit=1000, before_id=2**63 - 1)


@on_asyncio
async def test_the_query_is_read_from_the_request() -> None:
    async with app.test_request_context("/orders?user_id=3&limit=2&before_id=7"):
        assert bodies.query(OrdersQuery) == OrdersQuery(user_id=3, limit=2, before_id=7)
    async with app.test_request_context("/orders?user_id=%2B3"):  # +3
        with pytest.raises(ApiError) as refused:
            bodies.query(OrdersQuery)
    assert refusal(refused) == (422, "invalid_query", "user_id", "Query parameter `user_id` must be an integer.")


def test_a_missing_query_parameter_is_named() -> None:
    with pytest.raises(ApiError) as refused:
        bodies.query(OrdersQuery, {"limit": "5"})

    assert refusal(refused) == (422, "invalid_query", "user_id", "Missing query parameter `user_id`.")


@pytest.mark.parametrize("value", [
    "+1", "1.0", "1e3", " 1", "1 ", "1\n", "0x1", "1_000", "", "one", "true", "\u0661",  # ARABIC-INDIC DIGIT ONE
    "9" * 31,  # longer than any id: refused before int() is asked to parse it
])
@pytest.mark.parametrize("name", ["user_id", "limit", "before_id"])
def test_a_query_integer_must_be_plain_decimal_digits(name: str, value: str) -> None:
    with pytest.raises(ApiError) as refused:
        bodies.query(OrdersQuery, {"user_id": "1", name: value})

    assert refusal(refused) == (422, "invalid_query", name, f"Query parameter `{name}` must be an integer.")


@pytest.mark.parametrize(("args", "field", "message"), [
    ({"user_id": "0"}, "user_id", "Expected `int` >= 1 - at `$.user_id`."),
    ({"user_id": "-1"}, "user_id", "Expected `int` >= 1 - at `$.user_id`."),
    ({"user_id": "9223372036854775808"}, "user_id", "Expected `int` <= 9223372036854775807 - at `$.user_id`."),
    ({"user_id": "9" * 30}, "user_id", "Expected `int` <= 9223372036854775807 - at `$.user_id`."),
    ({"user_id": "1", "limit": "0"}, "limit", "Expected `int` >= 1 - at `$.limit`."),
    ({"user_id": "1", "limit": "1001"}, "limit", "Expected `int` <= 1000 - at `$.limit`."),
    ({"user_id": "1", "before_id": "0"}, "before_id", "Expected `int` >= 1 - at `$.before_id`."),
])
def test_a_query_integer_out_of_range_is_refused_naming_it(args: dict, field: str, message: str) -> None:
    with pytest.raises(ApiError) as refused:
        bodies.query(OrdersQuery, args)

    assert refusal(refused) == (422, "invalid_query", field, message)


@on_asyncio
async def test_a_body_at_the_limit_is_read_and_one_over_it_is_refused_once_drained() -> None:
    at_limit = b'{"user_id": 1, "amount": 2}'.ljust(LIMIT, b" ")
    assert await decode(CreateOrder, at_limit) == CreateOrder(user_id=1, amount=2)
    with pytest.raises(ApiError) as refused:
        await decode(CreateOrder, at_limit + b" ")
    assert refusal(refused) == (413, "body_too_large", None, "The request body is larger than 64 KiB.")
