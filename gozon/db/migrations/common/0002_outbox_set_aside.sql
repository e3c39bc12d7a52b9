-- A row the broker refuses for good (e.g. unroutable) is set aside with its reason, so
-- that the rows behind it flow; it waits for an operator. Retention purges sent rows
-- only (sent_at < ...), so a row set aside (sent_at NULL) is kept.
ALTER TABLE outbox ADD COLUMN set_aside_at timestamptz, ADD COLUMN set_aside_reason text;

-- Pending now means neither sent nor set aside.
DROP INDEX outbox_pending;
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL AND set_aside_at IS NULL;
-- Few rows, read at every metrics scrape and listed for operators.
CREATE INDEX outbox_set_aside ON outbox (id) WHERE set_aside_at IS NOT NULL;
