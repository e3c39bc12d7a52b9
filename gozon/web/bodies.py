"""Strict decoding of request bodies and query strings with msgspec: a value of the
wrong type or out of range is refused with a message that names the field; nothing
is coerced (`"100"`, `100.0` and `true` are not amounts)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar

import anyio
import msgspec
from quart import current_app, request

from gozon.web.errors import ApiError, too_large

T = TypeVar("T")

# The app's body limit, in its config.
MAX_BODY = "GOZON_MAX_BODY"
# A body over the limit is still read to its end, up to this much and this long,
# before the 413 goes out: a server that answers and closes while the client is still
# sending makes the client's kernel drop the answer (a TCP reset), and the client sees
# no answer at all.
DRAIN_LIMIT = 1024 * 1024
DRAIN_SECONDS = 1.0

_decoders: dict[type, msgspec.json.Decoder] = {}
_AT = re.compile(r"at `\$\.?([^`]*)`")
_NAMED = re.compile(r"(?:missing required|unknown) field `([^`]*)`")
_INTEGER = re.compile(r"-?[0-9]{1,30}")


def _field(message: str) -> str | None:
    match = _AT.search(message) or _NAMED.search(message)
    return match.group(1) if match and match.group(1) else None


async def read() -> bytes:
    """The request body; over the app's limit, a 413 once the body was drained."""
    limit = current_app.config[MAX_BODY]
    data = bytearray()
    async for chunk in request.body:
        data += chunk
        if len(data) > limit:
            break
    else:
        return bytes(data)
    seen = len(data)
    with anyio.move_on_after(DRAIN_SECONDS):
        async for chunk in request.body:
            seen += len(chunk)
            if seen > DRAIN_LIMIT:
                break  # not worth reading on: the connection will be closed instead
    raise ApiError(413, "body_too_large", too_large(limit))


async def body(kind: type[T]) -> T:
    """The request body as `kind`, whatever the Content-Type says (so `curl -d` works)."""
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    data = await read()
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
            if not _INTEGER.fullmatch(value):
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
