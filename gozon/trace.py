"""`gozon trace`: one order's story across the three processes, told from their JSON log
lines in time order with the delay between steps.

Lines may be plain JSON or carry the prefix honcho (`17:53:26 orders.1 | {...}`) or
docker compose (`orders-1  | {...}`) puts before them; anything else is skipped.
"""

from __future__ import annotations

import fileinput
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

import msgspec

# Every line has these, or the header shows them: they are not repeated per step.
_OMITTED = ("ts", "level", "service", "event", "trace_id")

_decode = msgspec.json.Decoder().decode


def records(lines: Iterable[str]) -> Iterator[dict]:
    """The log records among `lines`: the JSON object after any prefix, if it has a
    timestamp and an event."""
    for line in lines:
        start = line.find("{")
        if start < 0:
            continue
        try:
            record = _decode(line[start:])
        except msgspec.DecodeError:
            continue
        if isinstance(record, dict) and "ts" in record and "event" in record:
            yield record


def select(all_records: Iterable[dict], key: str) -> tuple[list[str], list[dict]]:
    """The trace ids of `key` (a trace id, or an order id whose lines name its trace ids)
    and every record of those traces or of that order."""
    all_records = list(all_records)
    order_id = int(key) if key.isdigit() else None
    trace_ids = {key} | {r["trace_id"] for r in all_records if order_id is not None
                         and r.get("order_id") == order_id and r.get("trace_id")}
    chosen = [r for r in all_records if r.get("trace_id") in trace_ids
              or (order_id is not None and r.get("order_id") == order_id)]
    found = sorted({r["trace_id"] for r in chosen if r.get("trace_id")})
    return found, sorted(chosen, key=started)


def started(record: dict) -> datetime:
    """When the step began: a line with `duration_ms` (a request's) is written when the
    work ends, so it is placed where that work began."""
    at = datetime.fromisoformat(record["ts"])
    return at - timedelta(milliseconds=record.get("duration_ms") or 0)


def render(trace_ids: Sequence[str], steps: Sequence[dict]) -> Iterator[str]:
    """A header, then one line per step: time since the first step, delay since the
    previous one, service, event and the step's other fields."""
    first = started(steps[0])
    yield (f"trace {', '.join(trace_ids) or '(none)'}: {len(steps)} steps over"
           f" {_ms(started(steps[-1]) - first)} ms from {first.isoformat()}")
    width = max(len(step.get("service", "?")) for step in steps)
    previous = first
    for step in steps:
        at = started(step)
        fields = " ".join(f"{name}={value}" for name, value in step.items() if name not in _OMITTED)
        yield (f"{_ms(at - first):>10} ms {'+' + _ms(at - previous):>10} ms  "
               f"{step.get('service', '?'):<{width}}  {step['event']:<28} {fields}").rstrip()
        previous = at


def _ms(delta: timedelta) -> str:
    return f"{delta / timedelta(milliseconds=1):.1f}"


def run(key: str, paths: Sequence[str]) -> int:
    """Print the story of `key` from the log files `paths` (standard input if none)."""
    with fileinput.input(files=paths or ("-",), encoding="utf-8", errors="replace") as lines:
        trace_ids, steps = select(records(lines), key)
    if not steps:
        print(f"gozon trace: no log line of order or trace {key}", file=sys.stderr)
        return 1
    for line in render(trace_ids, steps):
        print(line)
    return 0
