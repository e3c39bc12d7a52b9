"""The payments API's request and response bodies."""

from __future__ import annotations

from datetime import datetime

import msgspec

from gozon.messages import Amount, Id


class CreateAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id


class Deposit(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    user_id: Id
    amount: Amount


class BalanceQuery(msgspec.Struct, frozen=True):
    user_id: Id


class Account(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    user_id: int
    balance: int
    created_at: datetime


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    user_id: int
    balance: int
