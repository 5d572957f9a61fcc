-- Kernel: Idempotency-Key records (Stripe semantics). The first response to a key is kept
-- and replayed for the same caller and the same request until the record expires.
CREATE TABLE idempotency_keys (
    caller        TEXT      NOT NULL,
    key           TEXT      NOT NULL,
    method        TEXT      NOT NULL,
    path          TEXT      NOT NULL,
    request_hash  TEXT      NOT NULL,
    state         TEXT      NOT NULL CHECK (state IN ('running', 'done')),
    status        INTEGER,
    content_type  TEXT,
    location      TEXT,
    etag          TEXT,
    body          BYTEA,
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (caller, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);
