-- Kernel: the event bus. Events are written here in the same transaction as the state
-- change that caused them (the outbox); one delivery row per subscriber tracks where each
-- subscriber stands; the inbox records what a subscriber has handled.
CREATE TABLE bus_events (
    seq     BIGSERIAL PRIMARY KEY,
    id      TEXT      NOT NULL UNIQUE,
    source  TEXT      NOT NULL,
    type    TEXT      NOT NULL,
    subject TEXT      NOT NULL,
    time    TIMESTAMP NOT NULL,
    data    TEXT      NOT NULL
);
CREATE INDEX bus_events_type_idx ON bus_events (type, seq);

CREATE TABLE bus_deliveries (
    seq             BIGINT    NOT NULL REFERENCES bus_events (seq),
    subscriber      TEXT      NOT NULL,
    subject         TEXT      NOT NULL,
    status          TEXT      NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER   NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMP NOT NULL,
    lease_owner     TEXT,
    lease_until     TIMESTAMP,
    last_error      TEXT,
    delivered_at    TIMESTAMP,
    PRIMARY KEY (seq, subscriber)
);
CREATE INDEX bus_deliveries_pending_idx ON bus_deliveries (seq, subscriber) WHERE status = 'pending';
CREATE INDEX bus_deliveries_order_idx ON bus_deliveries (subscriber, subject, seq) WHERE status = 'pending';
CREATE INDEX bus_deliveries_status_idx ON bus_deliveries (status, seq);

CREATE TABLE bus_inbox (
    subscriber TEXT      NOT NULL,
    event_id   TEXT      NOT NULL,
    handled_at TIMESTAMP NOT NULL,
    PRIMARY KEY (subscriber, event_id)
);
