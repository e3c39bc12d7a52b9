"""The load generator: one aiohttp session (one connection pool) carries every POST, GET
and WebSocket, so that measuring costs the machine little."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp
import msgspec

AMOUNT = 100
REQUEST_TIMEOUT = 30  # seconds waiting for a connection, or for an answer: then it is an error
PONG_TIMEOUT = 10
_JSON = {"Content-Type": "application/json"}
_decode = msgspec.json.decode


class Results:
    """The payment_result frames the users' WebSockets received, by order id."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.order_status: dict[int, str] = {}
        self.duplicates = 0
        self.misrouted = 0  # frames a user got for another user's order
        self._awaited: set[int] = set()
        self._complete = asyncio.Event()

    def record(self, user_id: int, frame: dict, at: float) -> None:
        order_id = frame["order_id"]
        if frame["user_id"] != user_id:
            self.misrouted += 1
        elif order_id in self.arrived:
            self.duplicates += 1
        else:
            self.arrived[order_id] = at
            self.order_status[order_id] = frame["order_status"]
            self._awaited.discard(order_id)
            if not self._awaited:
                self._complete.set()

    async def wait_for(self, order_ids: Iterable[int], timeout: float) -> set[int]:
        """Wait until each of `order_ids` has its frame; returns those still missing."""
        self._awaited = {order_id for order_id in order_ids if order_id not in self.arrived}
        if self._awaited:
            self._complete.clear()
            try:
                await asyncio.wait_for(self._complete.wait(), timeout)
            except TimeoutError:
                pass
        missing, self._awaited = self._awaited, set()
        return missing


@dataclass
class Run:
    """What one phase did; latencies in ms from each request's start, or its scheduled time."""

    started: float
    answered_ms: list[float] = field(default_factory=list)  # until the HTTP answer
    result_ms: list[float] = field(default_factory=list)  # until the WebSocket result
    counted_from: dict[int, float] = field(default_factory=dict)  # order id → start
    errors: Counter[str] = field(default_factory=Counter)
    answered: float = 0.0  # when the last answer came
    finished: float = 0.0  # when the last result came

    def rate(self) -> float:
        """Orders completed (result received) per second, end to end."""
        return len(self.result_ms) / (self.finished - self.started) if self.finished > self.started else 0.0

    def answer_rate(self) -> float:
        return len(self.answered_ms) / (self.answered - self.started) if self.answered > self.started else 0.0


class LoadGenerator:
    def __init__(self, gateway: str, users: int, inflight: int) -> None:
        self.gateway = gateway
        self.users = users
        self.inflight = inflight
        self.results = Results()
        self.sockets_lost = 0  # WebSockets the gateway closed during the run
        self._sockets: list[aiohttp.ClientWebSocketResponse] = []
        self._readers: list[asyncio.Task] = []
        self._closing = False

    async def __aenter__(self) -> LoadGenerator:
        # An open WebSocket keeps its connection taken from the pool, so the pool has room
        # for the users' sockets besides the `inflight` requests.
        connector = aiohttp.TCPConnector(limit=self.inflight + self.users)
        # Bounds on waiting for a connection and for each read rather than a total: aiohttp
        # would keep a total running for as long as a WebSocket holds its connection.
        timeout = aiohttp.ClientTimeout(total=None, connect=REQUEST_TIMEOUT, sock_read=REQUEST_TIMEOUT)
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing = True
        await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        await self.session.close()

    async def open_accounts(self, deposit: int) -> None:
        async def open_account(user_id: int) -> None:
            for path, body in (("/accounts", {"user_id": user_id}),
                               ("/accounts/deposit", {"user_id": user_id, "amount": deposit})):
                async with self.session.post(self.gateway + path, json=body) as response:
                    if response.status not in (200, 201):
                        raise RuntimeError(f"POST {path} for user {user_id}: {response.status} {await response.text()}")

        await asyncio.gather(*(open_account(user_id) for user_id in range(1, self.users + 1)))

    async def connect(self) -> None:
        """One WebSocket per user, each subscribed (its first ping answered) before any order."""
        await asyncio.gather(*(self._subscribe(user_id) for user_id in range(1, self.users + 1)))

    async def _subscribe(self, user_id: int) -> None:
        ws = await self.session.ws_connect(f"{self.gateway}/ws", params={"user_id": user_id})
        self._sockets.append(ws)
        await ws.send_str("ping")
        message = await ws.receive(timeout=PONG_TIMEOUT)
        if message.type is not aiohttp.WSMsgType.TEXT or _decode(message.data) != {"type": "pong"}:
            raise RuntimeError(f"user {user_id}'s WebSocket answered its ping with {message!r}")
        self._readers.append(asyncio.create_task(self._read(user_id, ws)))

    async def _read(self, user_id: int, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                frame = _decode(message.data)
                if frame.get("type") == "payment_result":
                    self.results.record(user_id, frame, time.perf_counter())
        if not self._closing:
            self.sockets_lost += 1

    async def _post(self, run: Run, base: str, user_id: int, counted_from: float) -> int | None:
        """POST one order; its latency and id go into `run`, a failure into its errors."""
        body = b'{"user_id":%d,"amount":%d}' % (user_id, AMOUNT)
        try:
            async with self.session.post(base + "/orders", data=body, headers=_JSON) as response:
                answer = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            run.errors[type(exc).__name__] += 1
            return None
        if response.status != 201:
            run.errors[f"HTTP {response.status}"] += 1
            return None
        run.answered = time.perf_counter()
        run.answered_ms.append((run.answered - counted_from) * 1000)
        order_id = _decode(answer)["id"]
        run.counted_from[order_id] = counted_from
        return order_id

    async def collect(self, run: Run, timeout: float) -> Run:
        """Wait (at most `timeout` s) for the run's results; one still missing is an error."""
        missing = await self.results.wait_for(run.counted_from, timeout)
        if missing:
            run.errors["no WebSocket result"] += len(missing)
        arrived = [(self.results.arrived[i], t) for i, t in run.counted_from.items() if i not in missing]
        run.result_ms = [(at - start) * 1000 for at, start in arrived]
        run.finished = max((at for at, _ in arrived), default=run.answered)
        return run

    async def closed_loop(self, orders: int) -> Run:
        """`orders` orders over the users in turn from `inflight` senders, each sending its
        next as soon as its last was answered."""
        run = Run(time.perf_counter())
        plan = iter(range(orders))  # shared: each sender takes the next order

        async def sender() -> None:
            for i in plan:
                await self._post(run, self.gateway, i % self.users + 1, time.perf_counter())

        await asyncio.gather(*(sender() for _ in range(self.inflight)))
        return run

    async def open_loop(self, rate: float, seconds: float) -> Run:
        """Orders due on a fixed schedule, `rate` a second, whatever the answers. A send that
        goes late (loop busy, pool full) counts its latency from when it was due, so a
        slow system cannot hide its slowness by holding the generator back."""
        run = Run(time.perf_counter())
        sends = []
        for i in range(round(rate * seconds)):
            due = run.started + i / rate
            if (ahead := due - time.perf_counter()) > 0:
                await asyncio.sleep(ahead)
            sends.append(asyncio.create_task(self._post(run, self.gateway, i % self.users + 1, due)))
        await asyncio.gather(*sends)
        return run

    async def one_at_a_time(self, base: str, samples: int, timeout: float) -> Run:
        """`samples` orders of user 1 sent to `base`, each once the last one's result came:
        the latencies of an idle system."""
        run = Run(time.perf_counter())
        for _ in range(samples):
            order_id = await self._post(run, base, 1, time.perf_counter())
            if order_id is not None:
                await self.results.wait_for((order_id,), timeout)
        return await self.collect(run, timeout)

    async def balances_one_at_a_time(self, base: str, samples: int) -> Run:
        run = Run(time.perf_counter())
        for _ in range(samples):
            started = time.perf_counter()
            try:
                async with self.session.get(base + "/accounts/balance", params={"user_id": 1}) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                run.errors[type(exc).__name__] += 1
                continue
            if response.status != 200:
                run.errors[f"HTTP {response.status}"] += 1
            else:
                run.answered_ms.append((time.perf_counter() - started) * 1000)
        return run
