"""A burst of orders from a client in the background, so that a test can stop, kill or
cut something in the middle of it."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import httpx

from tests.support import wait_until

# Answers a careful client retries: the gateway or orders down or draining (502/503/504),
# or the same Idempotency-Key still in flight (409); None is no answer at all.
RETRIED = (None, 409, 502, 503, 504)
RETRY_PAUSE = 0.1  # seconds between a careful client's attempts


class Attempt(NamedTuple):
    """One POST as the client saw it: when it was sent (perf_counter), how long its
    answer took, its status (None: no answer) and, for a JSON error, its `error` code."""

    sent_at: float
    took: float
    status: int | None
    error: str | None


def _error_code(response: httpx.Response) -> str | None:
    if response.status_code < 400 or not response.headers.get("content-type", "").startswith("application/json"):
        return None
    return response.json().get("error")


class Burst:
    """POST /orders for every (user_id, amount), `workers` at a time, in a background
    thread, so that the test can kill something in the middle.

    With `retry_for` > 0 each order carries its own Idempotency-Key and is retried, as a
    careful client would, while the answer is 502/503/504/409 or none at all: every
    planned order then ends up created exactly once."""

    def __init__(self, http: httpx.Client, orders: list[tuple[int, int]], *, workers: int = 32,
                 retry_for: float = 0.0) -> None:
        self.http = http
        self.orders = orders
        self.workers = workers
        self.retry_for = retry_for
        self.responses: list[tuple[int, int, int | None, dict | str]] = []  # user, amount, status, body
        self.retries = 0
        self.attempts: list[Attempt] = []  # every POST, retries included
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="burst", daemon=True)
        self.started_at = 0.0
        self.finished_at = 0.0

    def _post(self, user_id: int, amount: int) -> None:
        headers = {"Idempotency-Key": f"burst-{uuid.uuid4()}"} if self.retry_for else {}
        deadline = time.monotonic() + self.retry_for
        while True:
            sent_at, error = time.perf_counter(), None
            try:
                response = self.http.post("/orders", json={"user_id": user_id, "amount": amount}, headers=headers)
                status, error = response.status_code, _error_code(response)
                body = response.json() if status == 201 else response.text
            except httpx.TransportError as exc:  # no answer: the order may or may not exist
                status, body = None, repr(exc)
            with self._lock:
                self.attempts.append(Attempt(sent_at, time.perf_counter() - sent_at, status, error))
            if status not in RETRIED or time.monotonic() > deadline:
                break
            with self._lock:
                self.retries += 1
            # The client's own pause between attempts (it paces the retries; there is no
            # condition to wait for: the next POST is what finds out whether orders is back).
            time.sleep(RETRY_PAUSE)
        with self._lock:
            self.responses.append((user_id, amount, status, body))

    def _run(self) -> None:
        self.started_at = time.perf_counter()
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda o: self._post(*o), self.orders))
        self.finished_at = time.perf_counter()

    def start(self) -> Burst:
        self._thread.start()
        return self

    def answered(self) -> int:
        with self._lock:
            return len(self.responses)

    def wait_answered(self, n: int, timeout: float = 30) -> None:
        wait_until(lambda: self.answered() >= n, timeout=timeout, interval=0.005, what=f"{n} POST /orders answers")

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the burst did not end within {timeout}s"

    def created(self) -> dict[int, dict]:
        """The orders answered 201, by id."""
        return {body["id"]: body for _, _, status, body in self.responses if status == 201}

    def statuses(self) -> dict:
        return dict(Counter(status for _, _, status, _ in self.responses))
