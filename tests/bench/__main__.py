"""python -m tests.bench [--orders N --users U --inflight C --ramp/--no-ramp --quick]: start the
services on a test slot, then print their latencies when idle, a standard load's orders/s,
latencies and CPU per order, and an open-loop ramp up to the knee. With --soak [--orders
20000 --rate 50 --every 5]: a steady rate instead, watching memory, connections and tables
(tests/bench/soak.py)."""

import os

# A slot of its own (ports, databases, vhost): a test run or the dev stack is left alone.
os.environ.setdefault("GOZON_TEST_SLOT", "9")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import aiohttp  # noqa: E402

from tests.bench import cpu, report, soak, stack  # noqa: E402
from tests.bench.checks import audit  # noqa: E402
from tests.bench.load import AMOUNT, LoadGenerator  # noqa: E402
from tests.support import ROOT, Stack  # noqa: E402

DEPOSIT = 10**9  # enough for every order of every phase: each one is to succeed
RAMP = (25, 50, 100, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 2000, 2400, 3000)  # orders/s offered
KNEE_P99_MS = 250
WARM_UP = 20  # requests of each kind first, to open connections and fill caches
RESULT_TIMEOUT = 10  # s for one idle order's result
DRAIN_TIMEOUT = 60  # s for the standard load's last results
STEP_DRAIN_TIMEOUT = 20  # s for a ramp step's
SETTLE = 60  # s the last audit may wait for orders an overload left behind

say = partial(print, flush=True)


def machine() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    commit = (git("rev-parse", "--short", "HEAD") or "unknown") + (
        " with uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else "")
    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"Gozon benchmark, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M:%S} UTC, commit {commit}\n"
            f"machine: {os.cpu_count()} CPUs ({models[0] if models else platform.machine()}), "
            f"Linux {platform.release()}, "
            f"{platform.python_implementation()} {platform.python_version()}, aiohttp {aiohttp.__version__}; "
            f"load average {load}")


async def idle(load: LoadGenerator, services: Stack, samples: int) -> None:
    orders_url, payments_url = services.settings.orders_url, services.settings.payments_url
    for base in (load.gateway, orders_url):
        await load.one_at_a_time(base, WARM_UP, RESULT_TIMEOUT)
    for base in (load.gateway, payments_url):
        await load.balances_one_at_a_time(base, WARM_UP)
    say(f"\nidle: one request at a time, {samples} of each (an order once the last one's result came)")
    via = await load.one_at_a_time(load.gateway, samples, RESULT_TIMEOUT)
    direct = await load.one_at_a_time(orders_url, samples, RESULT_TIMEOUT)
    balance_via = await load.balances_one_at_a_time(load.gateway, samples)
    balance_direct = await load.balances_one_at_a_time(payments_url, samples)
    say(report.LATENCY_HEADER)
    say(report.latency_row("POST /orders via the gateway", via.answered_ms))
    say(report.latency_row("POST /orders straight to orders", direct.answered_ms))
    say(report.latency_row("GET /accounts/balance via the gateway", balance_via.answered_ms))
    say(report.latency_row("GET /accounts/balance to payments", balance_direct.answered_ms))
    say(report.latency_row("POST → WebSocket result", via.result_ms))
    say(report.latency_row("  the same, POST straight to orders", direct.result_ms))
    pairs = (("POST /orders", via, direct), ("GET /accounts/balance", balance_via, balance_direct))
    for what, through, straight in pairs:
        if through.answered_ms and straight.answered_ms:
            added = (report.percentile(sorted(through.answered_ms), 50)
                     - report.percentile(sorted(straight.answered_ms), 50))
            say(f"  → the gateway adds {added:.1f} ms to {what} (p50 against p50)")
    say(report.errors_line(via.errors + direct.errors + balance_via.errors + balance_direct.errors))


async def standard(load: LoadGenerator, meter: cpu.CpuMeter, orders: int) -> None:
    say(f"\nstandard load: {orders} orders of {AMOUNT} over {load.users} users (one WebSocket each), "
        f"{load.inflight} POSTs in flight, through the gateway")
    before = meter.sample()
    run = await load.collect(await load.closed_loop(orders), DRAIN_TIMEOUT)
    used = cpu.used(before, meter.sample())
    took = run.finished - run.started
    say(f"  {len(run.result_ms)} orders completed in {took:.2f} s: {run.rate():.0f} orders/s end to end; "
        f"POSTs answered at {run.answer_rate():.0f}/s, "
        f"the last result {run.finished - run.answered:.2f} s after the last answer")
    say(report.LATENCY_HEADER)
    say(report.latency_row("POST /orders", run.answered_ms))
    say(report.latency_row("POST → WebSocket result", run.result_ms))
    say(report.errors_line(run.errors))
    for line in report.cpu_table(used, max(len(run.result_ms), 1), os.cpu_count()):
        say(line)


async def ramp(load: LoadGenerator, meter: cpu.CpuMeter, rates: list[int], seconds: float) -> None:
    say(f"\nramp: open loop, {seconds:g} s a step of orders due on a fixed schedule, each one's latency counted "
        f"from when it was due\n  (at most {load.inflight} POSTs in flight: the rest wait their turn, and that "
        f"counts); achieved = results received / (last result − step start);\n"
        f"  the knee is the first step with POST → WebSocket p99 over {KNEE_P99_MS} ms or any error")
    say(report.RAMP_HEADER)
    last_good = None
    for rate in rates:
        before = meter.sample()
        run = await load.collect(await load.open_loop(rate, seconds), STEP_DRAIN_TIMEOUT)
        used = cpu.used(before, meter.sample())
        errors = sum(run.errors.values())
        say(report.ramp_row(rate, run.rate(), run.answered_ms, run.result_ms, errors, used, len(run.result_ms)))
        p99 = report.percentile(sorted(run.result_ms), 99) if run.result_ms else float("inf")
        if errors or p99 > KNEE_P99_MS:
            why = f"POST → WebSocket p99 {p99:.0f} ms"
            if errors:
                why += f", {report.errors_line(run.errors).strip()}"
            if last_good:
                say(f"  knee: between {last_good} and {rate} orders/s offered; at {rate}: {why}")
            else:
                say(f"  knee: below {rate} orders/s offered, the first step; at {rate}: {why}")
            return
        last_good = rate
        # Let the step's tail (orders recording their results) pass before the next one starts.
        await asyncio.sleep(1)
    say(f"  no knee up to {rates[-1]} orders/s offered")


async def bench(args: argparse.Namespace, services: Stack) -> None:
    async with LoadGenerator(services.gateway_url, args.users, args.inflight) as load:
        await load.open_accounts(DEPOSIT)
        await load.connect()
        pids = {name: services[name].proc.pid for name in ("gateway", "orders", "payments")}
        databases = [dsn.rsplit("/", 1)[1] for dsn in (services.settings.orders_db, services.settings.payments_db)]
        meter = cpu.CpuMeter(pids | {"load generator": os.getpid()}, databases)
        await idle(load, services, 50 if args.quick else 200)
        await standard(load, meter, args.orders)
        say(await audit(load.session, load.gateway, args.users, DEPOSIT, load.results, settle=10))
        if args.ramp:
            await ramp(load, meter, args.rates, 2 if args.quick else 4)
            say("\nafter the ramp")
            say(await audit(load.session, load.gateway, args.users, DEPOSIT, load.results, settle=SETTLE))
        if load.sockets_lost:
            say(f"  {load.sockets_lost} WebSockets were closed by the gateway during the run")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split(":", 1)[1].strip())
    parser.add_argument("--orders", type=int, help="orders of the standard load (1000), of a soak (20000)")
    parser.add_argument("--users", type=int, default=50, help="users, one WebSocket each (50)")
    parser.add_argument("--inflight", type=int, default=32, help="POSTs in flight at most (32)")
    parser.add_argument("--ramp", action=argparse.BooleanOptionalAction, default=True,
                        help="after the standard load, raise the offered rate to the knee (on)")
    parser.add_argument("--rates", type=lambda s: [int(r) for r in s.split(",")], default=list(RAMP),
                        help="the ramp's offered orders/s, comma-separated")
    parser.add_argument("--quick", action="store_true",
                        help="50 idle samples instead of 200, 2 s ramp steps instead of 4")
    parser.add_argument("--soak", action="store_true",
                        help="instead: orders at a steady rate, memory, connections and tables sampled")
    parser.add_argument("--rate", type=float, default=50, help="a soak's orders/s offered (50)")
    parser.add_argument("--every", type=float, default=5, help="seconds between a soak's samples (5)")
    parser.add_argument("--warm-up", type=int, default=2000, help="orders of a soak before memory counts (2000)")
    args = parser.parse_args()
    args.orders = args.orders or (20000 if args.soak else 1000)
    say(machine())
    started = time.monotonic()
    with stack.running(soak.SETTINGS) if args.soak else stack.running() as services:
        asyncio.run(soak.soak(args, services) if args.soak else bench(args, services))
    say(f"done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
