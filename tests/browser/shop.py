"""The shopper's page as a shopper uses it in a browser: fields, buttons, and what it
shows — with every wait bounded, and a failure that says what the page showed."""

from __future__ import annotations

import itertools
import re
from urllib.parse import urlsplit

from playwright.sync_api import Page, expect

from tests.settings import ARTIFACTS
from tests.support import ROOT, Stack

SCREENSHOTS = ARTIFACTS / "screenshots"
WAIT_MS = 20_000
# The browser logs every 4xx/5xx answer as a console error; those are judged by the
# answers themselves (`Shop.refusals`), not by the log line.
HTTP_ERROR_LOG = re.compile(r"^Failed to load resource: the server responded with a status of \d+")
# The databases are new for the browser package: users 1, 2, 3… as in the original's tests.
new_user = itertools.count(1).__next__


class Shop:
    """The page as a shopper uses it: fields, buttons, and what it shows."""

    def __init__(self, page: Page, stack: Stack, opened_as: str, name: str) -> None:
        self.page = page
        self.stack = stack
        self.opened_as = opened_as
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")
        self.console_errors: list[str] = []
        self.allowed_errors: list[re.Pattern] = [HTTP_ERROR_LOG]
        # A new user has no account yet: the page asks for its balance and shows "no account".
        self.expected_refusals = {"GET /accounts/balance 404"}
        self.refusals: list[str] = []
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        page.on("response", lambda response: response.status >= 400 and self.refusals.append(
            f"{response.request.method} {urlsplit(response.url).path} {response.status}"))

    def open(self) -> Shop:
        if self.opened_as == "file":
            self.page.goto((ROOT / "client" / "index.html").as_uri() + f"?gateway={self.stack.gateway_url}")
        else:
            self.page.goto(self.stack.gateway_url + "/")
        return self

    def use_user(self, user_id: int | str) -> None:
        self.page.fill("#user-id", str(user_id))
        self.page.click("#change-user")

    def create_account(self) -> None:
        self.page.click("#create-account")

    def deposit(self, amount: int | str) -> None:
        self.page.fill("#deposit-amount", str(amount))
        self.page.click("#deposit")

    def buy(self, amount: int | str) -> None:
        self.page.fill("#order-amount", str(amount))
        self.page.click("#buy")

    def screenshot(self, label: str = "") -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=SCREENSHOTS / f"{self.name}{'-' + label if label else ''}.png", full_page=True)

    def open_account(self, user: int, deposit: int) -> None:
        """The user id, Create Account, Deposit: connected, with the balance shown."""
        self.use_user(user)
        self.create_account()
        self.sees("#notifications", f"Account created for user {user}.", "the account to be created")
        self.connected()
        self.deposit(deposit)
        self.balance(str(deposit))

    def shown(self) -> str:
        """What a shopper sees, for failure messages."""
        return self.page.inner_text("body")

    def sees(self, selector: str, text: str | re.Pattern, what: str, *, timeout: float = WAIT_MS) -> None:
        """Wait (bounded) until `selector` shows `text`; on failure say what the page showed."""
        try:
            expect(self.page.locator(selector).first).to_contain_text(text, timeout=timeout)
        except AssertionError:
            raise AssertionError(f"{what}: {selector} never showed {text!r}; the page showed:\n{self.shown()}") from None

    def connected(self) -> None:
        self.sees("#connection", "connected as user", "the WebSocket subscription")

    def balance(self, expected: str) -> None:
        try:
            expect(self.page.locator("#balance")).to_have_text(expected, timeout=WAIT_MS)
        except AssertionError:
            raise AssertionError(f"the balance is not {expected}; the page showed:\n{self.shown()}") from None

    def colour_of(self, selector: str) -> tuple[int, int, int]:
        rgb = self.page.locator(selector).first.evaluate("e => getComputedStyle(e).backgroundColor")
        return tuple(int(c) for c in re.findall(r"\d+", rgb)[:3])  # type: ignore[return-value]

    def allow_console(self, pattern: str) -> None:
        """A console error the browser itself logs for what the test does on purpose."""
        self.allowed_errors.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        """Console errors and refused requests that the test did not bring about on purpose."""
        return ([e for e in self.console_errors if not any(p.search(e) for p in self.allowed_errors)]
                + [r for r in self.refusals if r not in self.expected_refusals])
