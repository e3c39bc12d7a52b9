"""The original's page tests (Test 1, Test 2) and what a shopper expects beyond them, in a
real browser: the page as a local file on a desktop and served by the gateway on a phone."""

from __future__ import annotations

import pytest

from tests.browser.shop import Shop, new_user

pytestmark = pytest.mark.browser
BOTH = pytest.mark.parametrize("shop", ["desktop-file", "phone-served"], indirect=True)


def _order_row(shop: Shop, status: str) -> str:
    """The id of the only order in the list, once it shows `status`."""
    shop.sees("#orders li", status, f"the order to be {status} in the list")
    rows = shop.page.locator("#orders li")
    assert rows.count() == 1, shop.shown()
    return rows.first.get_attribute("data-order-id") or ""


def _fits_the_screen(shop: Shop) -> None:
    overflow = shop.page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


@BOTH
def test_1_paid_order_is_green_and_balance_800(shop: Shop) -> None:
    user = new_user()
    shop.open()
    shop.use_user(user)  # as in the original: the user id, Create Account, then Change User
    shop.create_account()
    shop.sees("#notifications", f"Account created for user {user}.", "the account to be created")
    shop.use_user(user)
    shop.connected()
    shop.deposit(1000)
    shop.balance("1000")
    shop.buy(200)
    order_id = _order_row(shop, "finished")
    shop.sees("#notifications .note.success", f"Order {order_id}: success", "a green notification")
    red, green, blue = shop.colour_of("#notifications .note.success")
    assert green > red and green > blue, f"the success notification is not green: rgb{(red, green, blue)}"
    shop.balance("800")
    _fits_the_screen(shop)


@BOTH
def test_2_refused_order_is_red_and_balance_stays_100(shop: Shop) -> None:
    shop.open().open_account(new_user(), 100)
    shop.buy(500)
    order_id = _order_row(shop, "cancelled")
    shop.sees("#notifications .note.failed", f"Order {order_id}: failed — not enough money on the account",
              "a red notification with the reason in words")
    red, green, blue = shop.colour_of("#notifications .note.failed")
    assert red > green and red > blue, f"the failure notification is not red: rgb{(red, green, blue)}"
    shop.sees(f'#orders li[data-order-id="{order_id}"]', "not enough money", "the reason in the order list")
    shop.balance("100")
    _fits_the_screen(shop)


def test_creating_an_account_twice_says_so_and_keeps_the_balance(shop: Shop) -> None:
    user = new_user()
    shop.open().open_account(user, 300)
    shop.expected_refusals.add("POST /accounts 409")
    shop.create_account()
    shop.sees("#notifications .note.error", f"User {user} already has an account.", "the server's message")
    shop.page.click("#check-balance")
    shop.balance("300")


def test_bad_input_is_explained_and_never_sent(shop: Shop) -> None:
    sent: list[str] = []
    shop.page.on("request", lambda request: request.method == "POST" and sent.append(request.url))
    shop.open()
    for bad in ("abc", "0", "-1", "1.5", str(2**63)):
        shop.use_user(bad)
        shop.sees("#user-id-error", "User ID must be a whole number", f"a refusal of user id {bad!r}")
    assert shop.page.get_attribute("#user-id", "aria-invalid") == "true"
    shop.use_user(new_user())
    shop.connected()
    for bad in ("0", "ten", "1e3", str(10**12 + 1)):
        shop.deposit(bad)
        shop.sees("#deposit-amount-error", "Amount must be a whole number", f"a refusal of deposit {bad!r}")
        shop.buy(bad)
        shop.sees("#order-amount-error", "Amount must be a whole number", f"a refusal of order amount {bad!r}")
    assert sent == [], f"invalid input was sent: {sent}"
    shop.page.fill("#gateway", "not a gateway")
    shop.page.click("#use-gateway")
    shop.sees("#gateway-error", "The gateway is an address like", "a refusal of the gateway address")


def test_results_still_arrive_after_the_gateway_restarts(shop: Shop) -> None:
    shop.open().open_account(new_user(), 1000)
    # While the gateway is down the browser itself logs the refused connections.
    shop.allow_console(r"WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|ERR_CONNECTION_RESET")
    gateway = shop.stack["gateway"]
    assert gateway.stop() == 0
    shop.sees("#connection", "reconnecting in", "the page to notice the gateway is gone")
    assert shop.page.get_attribute("#connection", "data-state") == "offline"
    shop.screenshot("gateway-down")
    gateway.start()
    gateway.wait_ready()
    shop.connected()
    shop.buy(300)
    order_id = _order_row(shop, "finished")
    shop.sees("#notifications .note.success", f"Order {order_id}: success", "the result after the restart")
    shop.balance("700")
