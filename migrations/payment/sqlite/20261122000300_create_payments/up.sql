-- Payment module: one row per payment attempt. Ids are UUID text; times are UTC; money is
-- integer minor units. Only the card's brand and last four digits are kept, never its number
-- or CVC. order_id and customer point into the order module, which owns them: no foreign keys.
CREATE TABLE payments (
    id           TEXT      PRIMARY KEY NOT NULL,
    order_id     TEXT      NOT NULL,
    customer     TEXT      NOT NULL,
    amount       BIGINT    NOT NULL,
    currency     TEXT      NOT NULL CHECK (length(currency) = 3),
    refunded     BIGINT    NOT NULL DEFAULT 0,
    status       TEXT      NOT NULL CHECK (status IN
                     ('processing', 'succeeded', 'failed', 'partially_refunded', 'refunded')),
    brand        TEXT      NOT NULL,
    last4        TEXT      NOT NULL CHECK (length(last4) = 4),
    failure_code TEXT,
    created_at   TIMESTAMP NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    CHECK (amount >= 0),
    -- The database refuses giving back more than was taken even if application code were wrong.
    CHECK (refunded >= 0 AND refunded <= amount)
);
CREATE INDEX payments_order_idx ON payments (order_id);
CREATE INDEX payments_customer_idx ON payments (customer, id);
-- An order has at most one payment that is not failed: of two concurrent attempts to pay one
-- order, the second fails here, and a declined card leaves the order payable again.
CREATE UNIQUE INDEX payments_one_live_per_order_idx ON payments (order_id)
    WHERE status <> 'failed';
