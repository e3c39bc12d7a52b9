"""After the load: money conserved for every user, and every order's result received over
its user's WebSocket, read back through the gateway."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.bench.load import Results


async def _get(session: aiohttp.ClientSession, url: str, **params: int) -> object:
    async with session.get(url, params=params) as response:
        if response.status != 200:
            raise RuntimeError(f"GET {url} {params}: {response.status} {await response.text()}")
        return await response.json()


async def _orders_of(session: aiohttp.ClientSession, gateway: str, user_id: int) -> list[dict]:
    orders: list[dict] = []
    while True:
        page = await _get(session, gateway + "/orders", user_id=user_id, limit=1000,
                          **({"before_id": orders[-1]["id"]} if orders else {}))
        orders += page
        if len(page) < 1000:
            return orders


async def _audit_user(session: aiohttp.ClientSession, gateway: str, user_id: int, deposit: int,
                      results: Results) -> tuple[int, list[str]]:
    orders = await _orders_of(session, gateway, user_id)
    balance = (await _get(session, gateway + "/accounts/balance", user_id=user_id))["balance"]
    finished = sum(order["amount"] for order in orders if order["status"] == "finished")
    problems = []
    if balance != deposit - finished:
        problems.append(f"user {user_id}: balance {balance} ≠ deposit {deposit} − finished orders {finished}")
    for order in orders:
        if order["status"] != "finished":
            problems.append(f"order {order['id']} is {order['status']} ({order.get('reason')})")
        if order["id"] not in results.arrived:
            problems.append(f"order {order['id']}: no payment_result frame")
        elif results.order_status[order["id"]] != order["status"]:
            problems.append(f"order {order['id']}: frame says {results.order_status[order['id']]}, "
                            f"the order {order['status']}")
    return len(orders), problems


async def audit(session: aiohttp.ClientSession, gateway: str, users: int, deposit: int, results: Results,
                settle: float) -> str:
    """Every user's balance is the deposit less their finished orders, every order finished
    (each user was funded for all), and each one's frame received once. Asked again for up
    to `settle` seconds while something is wrong, as orders left behind by an overload
    may still be on their way."""
    deadline = time.monotonic() + settle
    while True:
        audited = await asyncio.gather(*(_audit_user(session, gateway, user_id, deposit, results)
                                         for user_id in range(1, users + 1)))
        orders = sum(count for count, _ in audited)
        problems = [problem for _, found in audited for problem in found]
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    # Waiting mends neither of these.
    if results.duplicates:
        problems.append(f"{results.duplicates} frames received twice")
    if results.misrouted:
        problems.append(f"{results.misrouted} frames sent to another user's WebSocket")
    if not problems:
        return (f"  audit: OK — {orders} orders of {users} users all finished, each user's balance = "
                f"deposit − finished orders, every order's result received once over its user's WebSocket")
    shown = "\n".join(f"    {problem}" for problem in problems[:20])
    return f"  audit: FAILED — {len(problems)} problems over {orders} orders:\n{shown}"
