"""`gozon trace` on hand-written log lines: which lines it reads, which it picks for an
order or a trace, the order it tells them in (by cause, whatever the clocks say) and
what it prints."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gozon import trace

T0 = datetime.fromisoformat("2026-11-25T18:07:34.500000+00:00")
TRACE = "aff70aea58c44bd49a33b0832517d850"


def line(service: str, event: str, at_ms: float, trace_id: str | None = TRACE, **fields: object) -> dict:
    """A record as the processes log it, written `at_ms` after T0."""
    record = {"ts": (T0 + timedelta(milliseconds=at_ms)).isoformat(), "level": "info",
              "service": service, "event": event, **fields}
    if trace_id is not None:
        record["trace_id"] = trace_id
    return record


def paid_order(order_id: int = 1, trace_id: str = TRACE) -> list[dict]:
    """Scenario 1's lines with clocks that agree: each step starts after its cause. The
    relay's publish carries no order id, as it soon will not."""
    o = {"order_id": order_id}
    return [
        line("gateway", "request handled", 13.1, trace_id, method="POST", path="/orders", status=201, duration_ms=13.1),
        line("orders", "request handled", 10.9, trace_id, method="POST", path="/orders", status=201,
             duration_ms=9.0, **o),
        line("orders", "order created", 10.5, trace_id, amount=200, **o),
        line("orders", "outbox published", 25.0, trace_id, message_id="m1", message_type="payment_requested",
             destination="orders_queue", duration_ms=11.0),
        line("payments", "payment request received", 20.0, trace_id, amount=200, **o),
        line("payments", "payment debited", 27.0, trace_id, amount=200, **o),
        line("payments", "outbox published", 40.0, trace_id, message_id="m2", message_type="payment_result",
             destination="payment_events_fanout", duration_ms=4.0),
        line("gateway", "payment result fanned out", 38.0, trace_id, status="success", connections=1, **o),
        line("gateway", "websocket frame sent", 39.0, trace_id, **o),
        line("orders", "order status changed", 63.0, trace_id, status="finished", **o),
    ]


def told(steps: list[dict]) -> list[tuple[str, str]]:
    return [(step["service"], step["event"]) for step in steps]


CHAIN = [
    ("gateway", "request handled"),
    ("orders", "request handled"),
    ("orders", "order created"),
    ("orders", "outbox published"),
    ("payments", "payment request received"),
    ("payments", "payment debited"),
    ("payments", "outbox published"),
]


# records()

def test_records_are_read_from_plain_honcho_and_compose_lines_and_junk_is_skipped() -> None:
    one, two, three = (line("orders", f"event {n}", n) for n in range(3))
    lines = [
        json.dumps(one) + "\n",
        f"17:53:26 orders.1   | {json.dumps(two)}\n",  # honcho
        f"payments-1  | {json.dumps(three)}\n",  # docker compose
        "17:53:25 system     | orders.1 started (pid=4242)\n",
        "Traceback (most recent call last):\n",
        "\n",
        '{"ts": "2026-11-25T18:07:34+00:00", "event": "cut short"\n',
        '{"event": "no timestamp"}\n',
        '{"ts": "2026-11-25T18:07:34+00:00", "level": "info"}\n',
        '{"ts": "yesterday", "event": "a timestamp that is not one"}\n',
        '{"ts": 1764094054, "event": "a number for a timestamp"}\n',
        'gateway-1  | [1, 2, {"ts": "x"}]\n',
    ]

    assert list(trace.records(lines)) == [one, two, three]


# select()

def other_order() -> list[dict]:
    return paid_order(order_id=2, trace_id="bb" * 16)


def test_an_order_id_finds_its_trace_including_the_publishes_that_do_not_name_the_order() -> None:
    mine = paid_order()
    trace_ids, steps = trace.select([*other_order(), *mine, line("orders", "database ready", 1.0, None)], "1")

    assert trace_ids == [TRACE]
    assert sorted(map(json.dumps, steps)) == sorted(map(json.dumps, mine))
    assert ("orders", "outbox published") in told(steps) and ("payments", "outbox published") in told(steps)


def test_an_order_id_finds_its_lines_that_carry_no_trace_id() -> None:
    stray = line("orders", "payment result for an order that is not new, ignored", 70.0, None, order_id=1)

    trace_ids, steps = trace.select([*paid_order(), stray, *other_order()], "1")

    assert trace_ids == [TRACE]
    assert steps[-1] == stray and len(steps) == len(paid_order()) + 1


def test_a_trace_id_finds_its_lines_only() -> None:
    trace_ids, steps = trace.select([*paid_order(), *other_order()], "bb" * 16)

    assert trace_ids == ["bb" * 16]
    assert {step.get("order_id") for step in steps} == {2, None}
    assert len(steps) == len(other_order())


def test_an_unknown_key_finds_nothing() -> None:
    assert trace.select(paid_order(), "99") == ([], [])
    assert trace.select(paid_order(), "no-such-trace") == ([], [])


# The order of the story

def test_steps_follow_the_causal_chain_when_the_clocks_agree() -> None:
    _, steps = trace.select(reversed(paid_order()), "1")

    assert told(steps) == [*CHAIN, ("gateway", "payment result fanned out"), ("gateway", "websocket frame sent"),
                           ("orders", "order status changed")]


def test_a_payment_logged_before_the_publish_that_caused_it_is_told_after_it() -> None:
    # Payments' clock is 20 ms behind orders': by timestamps it received and debited the
    # payment before orders began to publish the request.
    skewed = paid_order()
    for step in skewed:
        if step["service"] == "payments" and step["event"] != "outbox published":
            step["ts"] = (datetime.fromisoformat(step["ts"]) - timedelta(milliseconds=20)).isoformat()
    debited = next(s for s in skewed if s["event"] == "payment debited")
    published = next(s for s in skewed if s["event"] == "outbox published" and s["service"] == "orders")
    assert trace.started(debited) < trace.started(published)

    _, steps = trace.select(reversed(skewed), "1")  # placed at the same time, the stage decides

    assert told(steps)[:len(CHAIN)] == CHAIN
    story = list(trace.render([TRACE], steps))
    elapsed = [float(row.split()[0]) for row in story[1:]]
    assert elapsed == sorted(elapsed), "times shown go backwards"
    # Placed where the publish began (14.0 ms), not at its own time, and not moved later.
    assert re.search(r"^\s+14\.0 ms\s+\+0\.0 ms\s+payments\s+payment debited ", story[1 + CHAIN.index(
        ("payments", "payment debited"))])


def test_the_gateway_request_is_first_even_when_its_clock_is_late() -> None:
    late = paid_order()
    late[0]["ts"] = (datetime.fromisoformat(late[0]["ts"]) + timedelta(milliseconds=5)).isoformat()

    _, steps = trace.select(late, "1")

    assert told(steps)[:3] == CHAIN[:3]


FANNED_OUT, FRAME_SENT, STATUS_CHANGED = (("gateway", "payment result fanned out"), ("gateway", "websocket frame sent"),
                                          ("orders", "order status changed"))


@pytest.mark.parametrize(("status_changed_ms", "expected"), [
    (30.0, [STATUS_CHANGED, FANNED_OUT, FRAME_SENT]),  # before its cause: told right after it
    (38.5, [FANNED_OUT, STATUS_CHANGED, FRAME_SENT]),
    (39.5, [FANNED_OUT, FRAME_SENT, STATUS_CHANGED]),  # the frame is not held back by orders
    (63.0, [FANNED_OUT, FRAME_SENT, STATUS_CHANGED]),
])
def test_the_two_consumers_of_the_result_keep_their_order_by_time(
    status_changed_ms: float, expected: list[tuple[str, str]]
) -> None:
    records = paid_order()
    records[-1] = line("orders", "order status changed", status_changed_ms, status="finished", order_id=1)

    _, steps = trace.select(records, "1")

    assert told(steps) == [*CHAIN, *expected]


def test_the_websocket_frame_follows_the_fan_out_even_if_logged_before_it() -> None:
    records = paid_order()
    frame = next(s for s in records if s["event"] == "websocket frame sent")
    frame["ts"] = (T0 + timedelta(milliseconds=37.5)).isoformat()

    _, steps = trace.select(records, "1")

    assert told(steps)[-3:-1] == [("gateway", "payment result fanned out"), ("gateway", "websocket frame sent")]


def test_events_outside_the_chain_stay_where_they_happened() -> None:
    records = [
        *paid_order(),
        line("payments", "payment request received", 50.0, amount=200, redelivered=True, order_id=1),
        line("payments", "duplicate message skipped", 51.0, order_id=1),
        line("gateway", 'HTTP Request: POST http://127.0.0.1:8081/orders "HTTP/1.1 201 "', 12.0, logger="httpx"),
    ]

    _, steps = trace.select(records, "1")

    # The redelivery neither moves the first payment after it nor jumps ahead itself.
    assert told(steps) == [
        *CHAIN[:3],
        ("gateway", 'HTTP Request: POST http://127.0.0.1:8081/orders "HTTP/1.1 201 "'),
        *CHAIN[3:],
        ("gateway", "payment result fanned out"),
        ("gateway", "websocket frame sent"),
        ("payments", "payment request received"),
        ("payments", "duplicate message skipped"),
        ("orders", "order status changed"),
    ]


def test_a_line_with_a_duration_is_placed_where_its_work_began() -> None:
    publish = line("orders", "outbox published", 25.0, message_id="m1", duration_ms=11.0)

    assert trace.started(publish) == T0 + timedelta(milliseconds=14)
    assert trace.started(line("orders", "order created", 10.5)) == T0 + timedelta(milliseconds=10.5)


def test_the_causal_table_names_each_step_of_the_chain() -> None:
    """The table is what orders the story: the events the services log must be in it."""
    assert set(CHAIN) <= trace.CAUSAL.keys()
    assert {("gateway", "payment result fanned out"), ("gateway", "websocket frame sent"),
            ("orders", "order status changed"), ("payments", "payment refused")} <= trace.CAUSAL.keys()


# render()

def test_render_prints_a_header_then_one_aligned_line_per_step() -> None:
    trace_ids, steps = trace.select(paid_order(), "1")

    story = list(trace.render(trace_ids, steps))

    assert story[0] == f"trace {TRACE}: 10 steps over 63.0 ms from 2026-11-25T18:07:34.500000+00:00"
    assert story[1] == ("       0.0 ms       +0.0 ms  gateway   request handled              "
                        "method=POST path=/orders status=201 duration_ms=13.1")
    assert story[3] == "      10.5 ms       +8.6 ms  orders    order created                amount=200 order_id=1"
    assert story[4] == ("      14.0 ms       +3.5 ms  orders    outbox published             message_id=m1"
                        " message_type=payment_requested destination=orders_queue duration_ms=11.0")
    assert story[-1] == ("      63.0 ms      +24.0 ms  orders    order status changed         "
                         "status=finished order_id=1")
    assert len(story) == 11
    # ts, level, service, event and trace_id are shown once, not per step.
    assert not any(re.search(r"\b(ts|level|service|event|trace_id)=", row) for row in story[1:])


def test_render_names_every_trace_of_the_order() -> None:
    retried = [*paid_order(), line("gateway", "request handled", 80.0, "cc" * 16, method="POST", path="/orders",
                                   status=201, duration_ms=2.0, order_id=1)]

    trace_ids, steps = trace.select(retried, "1")

    assert trace_ids == sorted([TRACE, "cc" * 16])
    assert next(trace.render(trace_ids, steps)).startswith(f"trace {', '.join(sorted([TRACE, 'cc' * 16]))}: 11 steps")


def test_run_prints_the_story_of_a_log_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "gozon.log"
    log.write_text("".join(f"{s['service']}-1  | {json.dumps(s)}\n" for s in reversed(paid_order())))

    assert trace.run("1", [str(log)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"trace {TRACE}: 10 steps") and "payment debited" in out[6]

    assert trace.run("7", [str(log)]) == 1
    assert "no log line of order or trace 7" in capsys.readouterr().err


def test_without_a_log_file_on_a_terminal_it_says_what_it_waits_for() -> None:
    """`gozon trace 42` typed alone would otherwise sit on the terminal in silence."""
    terminal, keyboard = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "gozon.cli", "trace", "42"], stdin=keyboard,
                              capture_output=True, text=True, timeout=30,
                              # Typed before it starts, kept by the terminal: Ctrl-D, an empty input.
                              preexec_fn=lambda: os.write(terminal, b"\x04"))
    finally:
        os.close(terminal)
        os.close(keyboard)
    assert "name a log file" in done.stderr
    assert done.returncode == 1 and "no log line of order or trace 42" in done.stderr
