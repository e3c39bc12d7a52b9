-- Messages written in the same transaction as the change they announce; the relay
-- publishes pending rows (sent_at IS NULL) in id order and marks them once confirmed.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    message_id   uuid NOT NULL UNIQUE,
    exchange     text NOT NULL,
    routing_key  text NOT NULL,
    message_type text NOT NULL,
    payload      jsonb NOT NULL,
    trace_id     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    sent_at      timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- Wakes the relays (LISTEN outbox) when a transaction that wrote outbox rows commits.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();

-- Ids of the messages already handled, recorded in the handling transaction.
CREATE TABLE inbox (
    message_id   uuid PRIMARY KEY,
    message_type text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_received_at ON inbox (received_at);
