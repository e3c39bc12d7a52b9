CREATE TABLE accounts (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL UNIQUE CHECK (user_id > 0),
    balance    bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per order ever asked to be paid, whatever the outcome: the order is
-- charged at most once even if it were requested again under a new message id.
CREATE TABLE payments (
    order_id   bigint PRIMARY KEY,
    user_id    bigint NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),
    status     text NOT NULL CHECK (status IN ('success', 'failed')),
    reason     text,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every movement of money: deposits, and exactly one debit per paid order.
CREATE TABLE ledger (
    id         bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id),
    kind       text NOT NULL CHECK (kind IN ('deposit', 'debit')),
    amount     bigint NOT NULL CHECK (amount > 0),
    order_id   bigint UNIQUE REFERENCES payments (order_id),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'debit') = (order_id IS NOT NULL))
);
CREATE INDEX ledger_by_account ON ledger (account_id);
