"""Trace ids: created at the gateway (or taken from `traceparent` / `X-Request-ID`),
carried in the `X-Request-ID` header, the outbox row and the AMQP correlation_id."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping

HEADER = "X-Request-ID"

_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_trace_id() -> str:
    return uuid.uuid4().hex


def trace_id_from(headers: Mapping[str, str]) -> str:
    """The caller's trace id if it sent a well-formed one, otherwise a new one."""
    match = _TRACEPARENT.match(headers.get("traceparent", "").strip().lower())
    if match and match.group(1) != "0" * 32:
        return match.group(1)
    request_id = headers.get(HEADER, "").strip()
    if _REQUEST_ID.match(request_id):
        return request_id
    return new_trace_id()


def trusted(trace_id: str | None) -> str | None:
    """`trace_id` if it is a short printable id (as one we made or took would be), None
    otherwise: an AMQP property is untrusted input, never stored or logged as it came."""
    return trace_id if trace_id is not None and _REQUEST_ID.fullmatch(trace_id) else None
