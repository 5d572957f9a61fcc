-- Order module. `reserving` is internal: an order being placed (stock not yet reserved);
-- the API never shows it, and the expiry sweep cancels one left behind by a crash.
CREATE TABLE orders (
    id            TEXT      PRIMARY KEY NOT NULL,
    customer      TEXT      NOT NULL,
    status        TEXT      NOT NULL CHECK (status IN ('reserving', 'pending_payment', 'paid', 'shipped', 'delivered', 'cancelled')),
    total_amount  BIGINT    NOT NULL CHECK (total_amount >= 0),
    currency      TEXT      NOT NULL,
    cancel_reason TEXT,
    expires_at    TIMESTAMP NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);
CREATE INDEX orders_customer_idx ON orders (customer, id);
CREATE INDEX orders_status_idx ON orders (status, expires_at);

CREATE TABLE order_items (
    order_id    TEXT   NOT NULL REFERENCES orders (id),
    product_id  TEXT   NOT NULL,
    sku         TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    unit_amount BIGINT NOT NULL CHECK (unit_amount >= 0),
    quantity    BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (order_id, product_id)
);
