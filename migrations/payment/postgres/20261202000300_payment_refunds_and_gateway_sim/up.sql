-- Refunds, one row each. A refund is reserved (`pending`) under the payment's row lock before
-- the gateway is called, so the amount it gives back is taken from what is left at once; it
-- becomes `succeeded` (and counts in payments.refunded) or `failed` (the amount is free again).
-- Its id is the idempotency key of the gateway call. `origin`: `request` (an admin asked) or
-- `cancellation` (a paid order was cancelled: retried until the gateway has done it).
CREATE TABLE payment_refunds (
    id           TEXT      PRIMARY KEY NOT NULL,
    payment_id   TEXT      NOT NULL,
    amount       BIGINT    NOT NULL CHECK (amount > 0),
    status       TEXT      NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    origin       TEXT      NOT NULL CHECK (origin IN ('request', 'cancellation')),
    failure_code TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL
);
CREATE INDEX payment_refunds_payment_idx ON payment_refunds (payment_id, status);
CREATE INDEX payment_refunds_status_idx ON payment_refunds (status, created_at);
CREATE INDEX payments_status_idx ON payments (status, created_at);

-- The simulated gateway's own memory (what a real processor keeps on its side): one row per
-- idempotency key, with what was done under it. Ids, amounts and outcomes only: never a card
-- number or CVC. `kind` is `charge`, `refund` or `void` (reconciliation closed a key under
-- which nothing had been done, so a call still in flight cannot act on it later).
CREATE TABLE payment_gateway_sim_operations (
    idempotency_key TEXT      PRIMARY KEY NOT NULL,
    kind            TEXT      NOT NULL CHECK (kind IN ('charge', 'refund', 'void')),
    payment_id      TEXT,
    amount          BIGINT    NOT NULL,
    currency        TEXT      NOT NULL,
    outcome         TEXT      NOT NULL CHECK (outcome IN ('captured', 'declined', 'refunded', 'voided')),
    decline_code    TEXT,
    created_at      TIMESTAMP NOT NULL
);
