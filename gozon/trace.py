"""`gozon trace`: one order's story across the three processes, told from their JSON log
lines in causal order with the delay between steps.

Lines may be plain JSON or carry the prefix honcho (`17:53:26 orders.1 | {...}`) or
docker compose (`orders-1  | {...}`) puts before them; anything else is skipped.
"""

from __future__ import annotations

import fileinput
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

import msgspec

# The causal chain of an order, as (service, event): (stage, branch). The processes'
# clocks disagree by a few milliseconds and a line is written a little after its work,
# so time alone can put a payment before the publish that caused it. A step therefore
# never comes before the first step of any lower stage on the trunk ("") or on its own
# branch; within that, and for every event not listed here (a duplicate skipped, a
# warning), its own time decides. Orders and the gateway consume the payment result
# independently: their branches keep their relative order by time.
CAUSAL = {
    ("gateway", "request handled"): (1, ""),  # POST /orders, as it began
    ("orders", "request handled"): (2, ""),
    ("orders", "order created"): (3, ""),
    ("orders", "outbox published"): (4, ""),  # payment_requested
    ("payments", "payment request received"): (5, ""),
    ("payments", "payment debited"): (6, ""),
    ("payments", "payment refused"): (6, ""),
    ("payments", "outbox published"): (7, ""),  # payment_result
    ("gateway", "payment result fanned out"): (8, "websocket"),
    ("gateway", "websocket frame sent"): (9, "websocket"),
    ("orders", "order status changed"): (8, "status"),
}
_UNLISTED = (0, None)

# Every line has these, or the header shows them: they are not repeated per step.
_OMITTED = ("ts", "level", "service", "event", "trace_id")

_decode = msgspec.json.Decoder().decode


def records(lines: Iterable[str]) -> Iterator[dict]:
    """The log records among `lines`: the JSON object after any prefix, if it has an
    ISO timestamp and an event."""
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = _decode(line[start:])
        except msgspec.DecodeError:
            continue
        if isinstance(record, dict) and "event" in record and _timestamp(record.get("ts")):
            yield record


def _timestamp(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def select(all_records: Iterable[dict], key: str) -> tuple[list[str], list[dict]]:
    """The trace ids of `key` (a trace id, or an order id whose lines name its trace ids)
    and every record of those traces or of that order, in causal order. A line without
    the order id (the relay's publish) is found through its trace id."""
    all_records = list(all_records)
    order_id = int(key) if key.isdigit() else None
    trace_ids = {key} | {r["trace_id"] for r in all_records if order_id is not None
                         and r.get("order_id") == order_id and r.get("trace_id")}
    chosen = [r for r in all_records if r.get("trace_id") in trace_ids
              or (order_id is not None and r.get("order_id") == order_id)]
    found = sorted({r["trace_id"] for r in chosen if r.get("trace_id")})
    return found, [record for _, record in placed(chosen)]


def started(record: dict) -> datetime:
    """When the step began by its own clock: a line with `duration_ms` (a request's, a
    publish's) is written when the work ends, so it is placed where that work began."""
    at = datetime.fromisoformat(record["ts"])
    return at - timedelta(milliseconds=record.get("duration_ms") or 0)


def placed(steps: Iterable[dict]) -> list[tuple[datetime, dict]]:
    """Each step with its place in time — its start, or later if a step it follows by
    `CAUSAL` began after it — sorted by that place, then by stage."""
    steps = list(steps)
    stage_of = [CAUSAL.get((step.get("service"), step.get("event")), _UNLISTED) for step in steps]
    at = [started(step) for step in steps]
    first: dict[tuple[int, str], datetime] = {}  # (stage, branch): its earliest placed step
    for n in sorted(range(len(steps)), key=lambda n: stage_of[n][0]):
        stage, branch = stage_of[n]
        if branch is None:
            continue
        causes = [when for (s, b), when in first.items() if s < stage and b in ("", branch)]
        at[n] = max([at[n], *causes])
        first[stage, branch] = min(at[n], first.get((stage, branch), at[n]))
    order = sorted(range(len(steps)), key=lambda n: (at[n], stage_of[n][0]))
    return [(at[n], steps[n]) for n in order]


def render(trace_ids: Sequence[str], steps: Sequence[dict]) -> Iterator[str]:
    """A header, then one line per step in causal order: time since the first step, delay
    since the previous one, service, event and the step's other fields."""
    timeline = placed(steps)
    first, last = timeline[0][0], timeline[-1][0]
    yield (f"trace {', '.join(trace_ids) or '(none)'}: {len(steps)} steps over"
           f" {_ms(last - first)} ms from {first.isoformat()}")
    width = max(len(step.get("service", "?")) for step in steps)
    previous = first
    for at, step in timeline:
        fields = " ".join(f"{name}={value}" for name, value in step.items() if name not in _OMITTED)
        yield (f"{_ms(at - first):>10} ms {'+' + _ms(at - previous):>10} ms  "
               f"{step.get('service', '?'):<{width}}  {step['event']:<28} {fields}").rstrip()
        previous = at


def _ms(delta: timedelta) -> str:
    return f"{delta / timedelta(milliseconds=1):.1f}"


def run(key: str, paths: Sequence[str]) -> int:
    """Print the story of `key` from the log files `paths` (standard input if none)."""
    if not paths and sys.stdin.isatty():  # else it would wait for lines in silence
        print("gozon trace: reading log lines from the terminal (Ctrl-D ends); name a log file,"
              " e.g. `gozon trace KEY gozon.log`", file=sys.stderr)
    with fileinput.input(files=paths or ("-",), encoding="utf-8", errors="replace") as lines:
        trace_ids, steps = select(records(lines), key)
    if not steps:
        print(f"gozon trace: no log line of order or trace {key}", file=sys.stderr)
        return 1
    for line in render(trace_ids, steps):
        print(line)
    return 0
