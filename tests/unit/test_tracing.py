"""Which trace id a request gets: the caller's W3C `traceparent` trace id, else its
`X-Request-ID` if it is a sane token, else a new one — never an unusable header value."""

from __future__ import annotations

import re

import pytest

from gozon import tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
NEW = re.compile(r"[0-9a-f]{32}")


def is_new(trace_id: str) -> bool:
    return NEW.fullmatch(trace_id) is not None


def test_the_trace_id_of_a_valid_traceparent_is_taken() -> None:
    assert tracing.trace_id_from({"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}) == TRACE_ID


def test_an_upper_case_or_padded_traceparent_is_taken_in_lower_case() -> None:
    headers = {"traceparent": f"  00-{TRACE_ID.upper()}-00F067AA0BA902B7-01 "}

    assert tracing.trace_id_from(headers) == TRACE_ID


def test_traceparent_wins_over_x_request_id() -> None:
    headers = {"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", "X-Request-ID": "checkout-42"}

    assert tracing.trace_id_from(headers) == TRACE_ID


@pytest.mark.parametrize("traceparent", [
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id: invalid by W3C
    f"00-{TRACE_ID[:-1]}-00f067aa0ba902b7-01",  # 31 hex digits
    f"00-{TRACE_ID}0-00f067aa0ba902b7-01",  # 33
    f"00-{TRACE_ID[:-1]}g-00f067aa0ba902b7-01",
    f"00-{TRACE_ID}-00f067aa0ba902b-01",  # short parent id
    f"0-{TRACE_ID}-00f067aa0ba902b7-01",
    f"00-{TRACE_ID}-00f067aa0ba902b7",  # no flags
    f"00_{TRACE_ID}_00f067aa0ba902b7_01",
    TRACE_ID,
    "",
])
def test_a_malformed_traceparent_is_ignored(traceparent: str) -> None:
    assert tracing.trace_id_from({"traceparent": traceparent, "X-Request-ID": "from-the-caller"}) == "from-the-caller"
    assert is_new(tracing.trace_id_from({"traceparent": traceparent}))
    assert tracing.trace_id_from({"traceparent": traceparent}) != TRACE_ID


@pytest.mark.parametrize("request_id", [
    "a", "checkout-42", "A.b_c:d-e", "0" * 32, "x" * 128, "urn:uuid:9f1c2ab4-5b1e-4c3e-8a55-1b2f8e9d0c11",
])
def test_a_sane_x_request_id_is_the_trace_id(request_id: str) -> None:
    assert tracing.trace_id_from({tracing.HEADER: request_id}) == request_id


def test_an_x_request_id_is_taken_without_surrounding_whitespace() -> None:
    assert tracing.trace_id_from({tracing.HEADER: "  checkout-42\t"}) == "checkout-42"


@pytest.mark.parametrize("request_id", [
    "x" * 129,  # longer than 128
    "",
    "   ",
    "two words",
    "line\nbreak",
    "a/b",
    "a=b",
    'quote"d',
    "ünïcode",
    "{}",
])
def test_an_unusable_x_request_id_gets_a_new_trace_id(request_id: str) -> None:
    trace_id = tracing.trace_id_from({tracing.HEADER: request_id})

    assert is_new(trace_id)
    assert trace_id != request_id.strip()


def test_without_headers_every_request_gets_a_new_distinct_trace_id() -> None:
    ids = [tracing.trace_id_from({}) for _ in range(1000)] + [tracing.new_trace_id() for _ in range(1000)]

    assert all(map(is_new, ids))
    assert len(set(ids)) == len(ids)


def test_the_header_is_x_request_id() -> None:
    assert tracing.HEADER == "X-Request-ID"
