CREATE TABLE orders (
    id         bigserial PRIMARY KEY,
    user_id    bigint NOT NULL CHECK (user_id > 0),
    amount     bigint NOT NULL CHECK (amount > 0),
    status     text NOT NULL DEFAULT 'new' CHECK (status IN ('new', 'finished', 'cancelled')),
    reason     text,
    trace_id   text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_user ON orders (user_id, id DESC);

-- Idempotency-Key of POST /orders, scoped to the user; the row is written in the
-- order's transaction, so a concurrent retry waits for it and then sees the order.
CREATE TABLE idempotency_keys (
    user_id    bigint NOT NULL,
    key        text NOT NULL,
    amount     bigint NOT NULL,
    order_id   bigint REFERENCES orders (id),  -- set in the same transaction
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
