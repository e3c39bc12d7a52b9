"""python -m tests.bench --soak [--orders 20000 --rate 50 --every 5]: orders at a steady
rate (open loop) through the gateway with every user's WebSocket open, and every few
seconds each process's memory, files and connections, and the tables and queues that
must not grow; then whether memory levelled off after the warm-up, and the money audit."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from functools import partial
from typing import NamedTuple

import asyncpg
import msgspec

from gozon.config import Settings
from tests.bench import report
from tests.bench.checks import audit
from tests.bench.load import LoadGenerator
from tests.bench.probes import Queues, Tables, Usage, tables, usage
from tests.settings import TEST_SETTINGS
from tests.support import Stack

SERVICES = ("gateway", "orders", "payments")
DEPOSIT = 10**9
DRAIN_TIMEOUT = 60  # s for the last results once the last order was sent
# Short keeping, so that a soak of minutes shows rows purged rather than a day's worth kept.
SETTINGS: Settings = msgspec.structs.replace(
    TEST_SETTINGS, outbox_retention_hours=18 / 3600, inbox_retention_days=60 / 86400, purge_interval=5.0)
COOL_DOWN = 18 + 60 + 2 * 5  # s watched after the load: sent outbox rows and inbox ids all purged
FLAT_KIB_PER_1000 = 64  # RSS slope under which a process counts as flat (64 bytes an order)

say = partial(print, flush=True)


class Sample(NamedTuple):
    elapsed: float
    done: int  # orders whose result came over the WebSocket
    usage: dict[str, Usage | None]
    orders_db: Tables
    payments_db: Tables
    queues: dict[str, int | None]


HEADER = ("  {:>5}{:>7} │{:>6}{:>6}{:>6} │{:>4}{:>4}{:>4} │{:>4}{:>4}{:>4} │{:>5}{:>6}{:>6}{:>5} │{:>5}{:>6}{:>6} │"
          "{:>5}{:>5}{:>5}").format
GROUPS = ("  " + " " * 12 + "".join(f" │{label:^{width}}" for label, width in (
    ("RSS MiB", 18), ("fds", 12), ("tcp", 12), ("orders db", 22), ("payments db", 17), ("queued", 15))))
LEGEND = ("  (s: since the first order; done: results received; RSS MiB, fds, tcp: established TCP connections, of\n"
          "  gateway, orders, payments; outbox pending/sent and inbox rows of the orders database (with its\n"
          "  idempotency keys) and the payments database; ready messages in orders_queue, payments_results_queue\n"
          "  and the gateway's queue)")


def _cell(value: object, fmt: str = "") -> str:
    return "—" if value is None else format(value, fmt)


def row(s: Sample) -> str:
    u = [s.usage[name] for name in SERVICES]
    o, p, q = s.orders_db, s.payments_db, s.queues
    return HEADER(f"{s.elapsed:.0f}", s.done, *(_cell(x and x.rss_kib / 1024, ".1f") for x in u),
                  *(_cell(x and x.fds) for x in u), *(_cell(x and x.tcp) for x in u),
                  o.pending, o.sent, o.inbox, _cell(o.idempotency_keys), p.pending, p.sent, p.inbox,
                  *(_cell(q[k]) for k in ("orders_queue", "results", "gateway")))


def header(settings: Settings, args: argparse.Namespace) -> str:
    return (f"\nsoak: {args.orders} orders at {args.rate:g}/s (open loop: each due on a fixed schedule) over "
            f"{args.users} users, one WebSocket each, through the gateway; a sample every {args.every:g} s\n"
            f"  the services run with short retention to show purging: GOZON_OUTBOX_RETENTION_HOURS="
            f"{settings.outbox_retention_hours:.4f} ({settings.outbox_retention_hours * 3600:.0f} s), "
            f"GOZON_INBOX_RETENTION_DAYS={settings.inbox_retention_days:.6f} "
            f"({settings.inbox_retention_days * 86400:.0f} s), GOZON_PURGE_INTERVAL={settings.purge_interval:g}\n"
            f"{LEGEND}\n"
            + GROUPS + "\n"
            + HEADER("s", "done", "gw", "ord", "pay", "gw", "ord", "pay", "gw", "ord", "pay",
                     "pend", "sent", "inbox", "keys", "pend", "sent", "inbox", "ordq", "res", "gw"))


def _slope(points: list[tuple[int, float]]) -> float | None:
    """Least-squares KiB per 1,000 orders over (orders done, RSS KiB) points."""
    if len(points) < 3 or points[-1][0] == points[0][0]:
        return None
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var * 1000 if var else None


def summary(samples: list[Sample], warm_up: int) -> list[str]:
    """Each process's RSS after the warm-up and at the end of the load, its growth per 1,000
    orders, and the slope over the first and second half of what came after the warm-up."""
    after = [s for s in samples if s.done >= warm_up]
    if len(after) < 2:
        return [f"  memory: too few samples after the warm-up of {warm_up} orders to say"]
    first, last = after[0], after[-1]
    lines = [f"  memory after the warm-up ({first.done} orders, {first.elapsed:.0f} s) against the end of the load "
             f"({last.done} orders, {last.elapsed:.0f} s):",
             f"  {'':<10}{'warm MiB':>9}{'end MiB':>9}{'KiB/1000':>10}   least-squares KiB/1000 orders: "
             f"1st half, 2nd half"]
    half = len(after) // 2
    for name in SERVICES:
        if first.usage[name] is None or last.usage[name] is None:
            lines.append(f"  {name:<10} gone during the run")
            continue
        warm, end = first.usage[name].rss_kib, last.usage[name].rss_kib
        growth = (end - warm) / (last.done - first.done) * 1000 if last.done > first.done else 0.0
        halves = [_slope([(s.done, s.usage[name].rss_kib) for s in part if s.usage[name]])
                  for part in (after[: half + 1], after[half:])]
        first_half, second = halves
        verdict = ("too few samples" if second is None or first_half is None
                   else "levelled off" if second < FLAT_KIB_PER_1000
                   else "rising, but slowing" if second < first_half / 2 else "still rising")
        lines.append(f"  {name:<10}{warm / 1024:>9.1f}{end / 1024:>9.1f}{growth:>10.0f}   "
                     + ", ".join(_cell(h, ".0f") for h in halves) + f"  → {verdict}")
    lines.append(f"  (flat: under {FLAT_KIB_PER_1000} KiB per 1,000 orders over the second half; RSS also counts "
                 f"heap that glibc keeps\n  once Python freed it, which grows with fragmentation: README, Figures, Soak)")
    return lines


async def _sample(started: float, base: int, load: LoadGenerator, pids: dict[str, int],
                  cons: tuple[asyncpg.Connection, asyncpg.Connection], queues: Queues) -> Sample:
    return Sample(time.perf_counter() - started, len(load.results.arrived) - base, usage(pids),
                  await tables(cons[0], idempotency=True), await tables(cons[1], idempotency=False),
                  await queues.depths())


async def soak(args: argparse.Namespace, services: Stack) -> None:
    settings = services.settings
    say(header(settings, args))
    pids = {name: services[name].proc.pid for name in SERVICES}
    cons = (await asyncpg.connect(settings.orders_db), await asyncpg.connect(settings.payments_db))
    try:
        async with (LoadGenerator(services.gateway_url, args.users, args.inflight) as load,
                    Queues(settings.amqp_url, f"gateway.{settings.gateway_replica}") as queues):
            await load.open_accounts(DEPOSIT)
            await load.connect()
            base = len(load.results.arrived)
            started = time.perf_counter()
            sending = asyncio.create_task(load.open_loop(args.rate, args.orders / args.rate))
            samples: list[Sample] = []
            drain_deadline = None
            while True:
                sample = await _sample(started, base, load, pids, cons, queues)
                say(row(sample))
                samples.append(sample)
                if sending.done():
                    drain_deadline = drain_deadline or time.perf_counter() + DRAIN_TIMEOUT
                    if sample.done >= args.orders or time.perf_counter() > drain_deadline:
                        break
                await asyncio.sleep(args.every - (time.perf_counter() - started) % args.every)
            run = await load.collect(sending.result(), 1)
            say(f"  load: {len(run.result_ms)} orders completed in {run.finished - run.started:.0f} s "
                f"({run.rate():.1f} orders/s end to end, {args.rate:g}/s offered)")
            say(report.LATENCY_HEADER)
            say(report.latency_row("POST /orders", run.answered_ms))
            say(report.latency_row("POST → WebSocket result (from due)", run.result_ms))
            say(report.errors_line(run.errors))
            say(f"  idle {COOL_DOWN} s after the load: the retention actors purge what is past keeping")
            cool_until = time.perf_counter() + COOL_DOWN
            while time.perf_counter() < cool_until:
                await asyncio.sleep(min(args.every, max(cool_until - time.perf_counter(), 0)))
                say(row(await _sample(started, base, load, pids, cons, queues)))
            for line in summary(samples, args.warm_up):
                say(line)
            say(await audit(load.session, load.gateway, args.users, DEPOSIT, load.results, settle=10))
            if load.sockets_lost:
                say(f"  {load.sockets_lost} WebSockets were closed by the gateway during the run")
    finally:
        for con in cons:
            await con.close()
    say(f"  load generator RSS {usage({'self': os.getpid()})['self'].rss_kib / 1024:.0f} MiB")
