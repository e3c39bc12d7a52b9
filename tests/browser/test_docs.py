"""Swagger UI at /docs, in a real browser: it loads with nothing from the internet, and
"Try it out" calls the gateway and shows its answer."""

from __future__ import annotations

import httpx
import pytest

from tests.browser.shop import Shop, new_user

pytestmark = pytest.mark.browser


def test_try_it_out_gets_a_balance_from_the_gateway(shop: Shop) -> None:
    gateway = shop.stack.gateway_url
    user = new_user()
    with httpx.Client(base_url=gateway) as http:
        assert http.post("/accounts", json={"user_id": user}).status_code == 201
        assert http.post("/accounts/deposit", json={"user_id": user, "amount": 4242}).status_code == 200
    elsewhere: list[str] = []
    shop.page.on("request", lambda request: request.url.startswith((gateway, "data:")) or elsewhere.append(request.url))

    shop.page.goto(f"{gateway}/docs")
    operation = shop.page.locator("#operations-accounts-get_accounts_balance")
    shop.sees("#operations-accounts-get_accounts_balance", "/accounts/balance", "the operation in Swagger UI")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.locator('input[placeholder="user_id"]').fill(str(user))
    operation.get_by_role("button", name="Execute").click()
    shop.sees("#operations-accounts-get_accounts_balance .live-responses-table", '"balance": 4242',
              "the gateway's answer under Try it out")
    shop.sees("#operations-accounts-get_accounts_balance .live-responses-table .response .response-col_status", "200",
              "the answer's status")
    assert elsewhere == [], f"the docs asked other hosts for: {elsewhere}"
