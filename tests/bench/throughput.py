"""Throughput benchmark (prints figures, asserts nothing; not part of the test run).

    .venv/bin/python -m tests.bench.throughput [--orders 2000] [--concurrency 64]

Starts the three processes on a test slot (GOZON_TEST_SLOT, default 9), funds 20 users,
fires the orders through the gateway from an async client and reports: how fast the
gateway accepted them, how long until every order was terminal (read from the orders
database), end-to-end orders per second, and POST → WebSocket latency percentiles for
orders placed one at a time on the then idle system.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GOZON_TEST_SLOT", "9")

import anyio  # noqa: E402
import asyncpg  # noqa: E402
import httpx  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from tests.conftest import TEST_SETTINGS  # noqa: E402
from tests.support import Stack, reset_databases, reset_vhost  # noqa: E402

USERS = 20


async def place_all(gateway: str, orders: list[tuple[int, int]], concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=gateway, limits=limits, timeout=30) as http:
        queue = list(reversed(orders))

        async def worker() -> None:
            while queue:
                user_id, amount = queue.pop()
                response = await http.post("/orders", json={"user_id": user_id, "amount": amount})
                assert response.status_code == 201, response.text

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for _ in range(concurrency):
                tg.start_soon(worker)
        return time.perf_counter() - started


async def wait_terminal(dsn: str, expected: int, timeout: float = 300) -> float:
    con = await asyncpg.connect(dsn)
    try:
        with anyio.fail_after(timeout):
            while await con.fetchval("SELECT count(*) FROM orders WHERE status <> 'new'") < expected:
                await anyio.sleep(0.02)
        return time.perf_counter()
    finally:
        await con.close()


async def latency(gateway: str, ws_url: str, user_id: int, samples: int) -> list[float]:
    found = []
    async with httpx.AsyncClient(base_url=gateway) as http, connect(f"{ws_url}?user_id={user_id}") as ws:
        await ws.send("ping")
        await ws.recv()
        for _ in range(samples):
            started = time.perf_counter()
            response = await http.post("/orders", json={"user_id": user_id, "amount": 1})
            order_id = response.json()["id"]
            while True:
                frame = await ws.recv()
                if f'"order_id":{order_id},' in frame:
                    break
            found.append((time.perf_counter() - started) * 1000)
    return found


def percentile(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))]


async def main(orders: int, concurrency: int) -> None:
    settings = TEST_SETTINGS
    await reset_databases(settings)
    reset_vhost()
    stack = Stack(settings, Path(tempfile.mkdtemp(prefix="gozon-bench-")))
    stack.start()
    try:
        gateway = stack.gateway_url
        async with httpx.AsyncClient(base_url=gateway) as http:
            for user_id in range(1, USERS + 1):
                await http.post("/accounts", json={"user_id": user_id})
                await http.post("/accounts/deposit", json={"user_id": user_id, "amount": 10**9})
        plan = [(random.randint(1, USERS), random.randint(1, 1000)) for _ in range(orders)]
        started = time.perf_counter()
        accepted_in = await place_all(gateway, plan, concurrency)
        done_at = await wait_terminal(settings.orders_db, orders)
        total = done_at - started
        print(f"{orders} orders, {concurrency} concurrent clients, {USERS} users")
        print(f"  accepted by the gateway in {accepted_in:.2f} s ({orders / accepted_in:.0f} POST/s)")
        print(f"  all terminal after {total:.2f} s: {orders / total:.0f} orders/s end to end "
              f"(last result {total - accepted_in:.2f} s after the last POST)")
        samples = await latency(gateway, stack.ws_url, 1, 50)
        print(f"  POST → WS result on the idle system, {len(samples)} orders: median {statistics.median(samples):.1f} ms, "
              f"p90 {percentile(samples, 0.9):.1f} ms, p99 {percentile(samples, 0.99):.1f} ms")
    finally:
        stack.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    anyio.run(main, args.orders, args.concurrency)
