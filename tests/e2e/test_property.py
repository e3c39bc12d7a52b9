"""No input can break the gateway: a property-based run driven by its OpenAPI document
(schemathesis) against the live processes — no 5xx, every answer as documented — and
request bodies past the 64 KiB limit refused with a JSON 413 that changes nothing."""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.shopper import balance_of, funded_user, orders_of
from tests.settings import ARTIFACTS, TEST_SETTINGS
from tests.support import ROOT, Stack

CONFIG = Path(__file__).with_name("schemathesis.toml")  # the hooks, and /ws left out
MAX_BODY = TEST_SETTINGS.max_body_bytes  # the gateway's limit (64 KiB by default)
EXAMPLES_PER_OPERATION = 100  # with the coverage and stateful phases: ~1,700 cases, ~30 s


def test_property_based_run_finds_no_5xx_and_no_undocumented_answer(
        running: Stack, capsys: pytest.CaptureFixture) -> None:
    report = ARTIFACTS / "schemathesis" / "report.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    errors_before = len(running.errors())
    seed = random.randrange(2**32)  # a new exploration each run; printed, so a failure replays
    command = [Path(sys.executable).with_name("st"), "--config-file", CONFIG, "--no-color", "run",
               f"{running.gateway_url}/openapi.json", "--checks", "all", "--max-examples", EXAMPLES_PER_OPERATION,
               "--seed", seed, "--request-timeout", "20", "--report", "json", "--report-json-path", report]
    done = subprocess.run([str(part) for part in command], cwd=report.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=300, check=False)
    summary = json.loads(report.read_text())
    generated = summary["test_cases"]["generated"]
    with capsys.disabled():  # the figure is part of the run's output, passed or not
        print(f"\nschemathesis: {generated} generated cases over {summary['operations']['tested']} operations"
              f" (seed {seed}), {summary['test_cases']['with_failures']} with failures;"
              f" report in {report.relative_to(ROOT)}")
    assert done.returncode == 0, f"schemathesis found failures (seed {seed}):\n{done.stdout[-8000:]}{done.stderr}"
    assert summary["operations"]["tested"] == summary["operations"]["selected"] >= 13, summary["operations"]
    assert generated >= 1000, f"only {generated} cases were generated"
    assert running.errors()[errors_before:] == [], "a process logged an error during the run"


def _post(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, dict]:
    """POST with exactly these headers and as much body as `body` holds, then read the
    answer: http.client rather than httpx, since the answer must come before the body's end."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        connection.putrequest("POST", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        connection.send(body)
        response = connection.getresponse()
        return response.status, response.getheader("content-type", ""), json.loads(response.read())
    finally:
        connection.close()


def _chunked(size: int) -> bytes:
    chunk = b"x" * 8192
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(size // len(chunk)))


@pytest.mark.parametrize("path", ["/orders", "/accounts", "/accounts/deposit"])
def test_a_body_over_64_KiB_gets_a_json_413_and_changes_nothing(running: Stack, client: httpx.Client,
                                                                  path: str) -> None:
    user = funded_user(client, 500)
    body = json.dumps({"user_id": user, "amount": 100}).encode()
    padded = {size: body[:-1] + b" " * (size - len(body)) + b"}" for size in (MAX_BODY, MAX_BODY + 1)}
    refusals = {
        "one byte too many": _post(running["gateway"].port, path, {"Content-Length": str(MAX_BODY + 1)},
                                   padded[MAX_BODY + 1]),
        "4 MiB announced, none sent": _post(running["gateway"].port, path, {"Content-Length": str(4 * 2**20)}, b""),
        "chunked, past the limit": _post(running["gateway"].port, path, {"Transfer-Encoding": "chunked"},
                                         _chunked(MAX_BODY + 8192)),
    }
    for case, (status, content_type, answer) in refusals.items():
        assert (status, content_type, answer["error"]) == (413, "application/json", "body_too_large"), (case, answer)
    assert orders_of(client, user) == []
    assert balance_of(client, user) == 500
    if path == "/orders":  # exactly the limit is accepted
        assert client.post(path, content=padded[MAX_BODY]).status_code == 201
