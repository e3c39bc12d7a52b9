"""Strict decoding of request bodies and query strings with msgspec: a value of the
wrong type or out of range is refused with a message that names the field; nothing
is coerced (`"100"`, `100.0` and `true` are not amounts)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import msgspec
from quart import request

from gozon.web.errors import ApiError

T = TypeVar("T")

_decoders: dict[type, msgspec.json.Decoder] = {}
_AT = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")
_INTEGER = re.compile(r"^-?[0-9]{1,30}$")


def _field(message: str) -> str | None:
    match = _AT.search(message) or _NAMED.search(message)
    return match.group(1) if match and match.group(1) else None


async def body(kind: type[T]) -> T:
    """The request body as `kind`, whatever the Content-Type says (so `curl -d` works)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    data = await request.get_data(cache=False)
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ApiError(422, "invalid_field", _sentence(str(exc)), _field(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "invalid_json", f"The body is not valid JSON: {exc}.") from None


def query(kind: type[T], args: Mapping[str, str] | None = None) -> T:
    """The query string (of the request, or `args`) as `kind`; integer fields must be
    plain decimal integers."""
    args = request.args if args is None else args
    given: dict[str, object] = {}
    hints = msgspec.structs.fields(kind)  # type: ignore[arg-type]
    for field in hints:
        value = args.get(field.encode_name)
        if value is None:
            continue
        if _is_int(field.type):
            if not _INTEGER.match(value):
                raise ApiError(422, "invalid_query", f"Query parameter `{field.name}` must be an integer.", field.name)
            given[field.encode_name] = int(value)
        else:
            given[field.encode_name] = value
    try:
        return msgspec.convert(given, kind)
    except msgspec.ValidationError as exc:
        message = _sentence(str(exc)).replace("Object missing required field", "Missing query parameter")
        raise ApiError(422, "invalid_query", message, _field(str(exc))) from None


def _is_int(annotation: object) -> bool:
    # int, Annotated[int, Meta(...)], or either of them | None (e.g. `before_id`)
    info = msgspec.inspect.type_info(annotation)
    options = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return any(isinstance(option, msgspec.inspect.IntType) for option in options)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")
