-- Product module: catalog and inventory. Ids are UUID text; times are UTC.
CREATE TABLE products (
    id             TEXT    PRIMARY KEY NOT NULL,
    sku            TEXT    NOT NULL UNIQUE,
    name           TEXT    NOT NULL,
    description    TEXT    NOT NULL DEFAULT '',
    price_amount   BIGINT  NOT NULL CHECK (price_amount >= 0),
    price_currency TEXT    NOT NULL CHECK (length(price_currency) = 3),
    stock          BIGINT  NOT NULL CHECK (stock >= 0),
    -- The database refuses overselling even if application code were wrong.
    reserved       BIGINT  NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= stock),
    version        BIGINT  NOT NULL DEFAULT 1,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);
CREATE INDEX products_name_idx ON products (name, id);
CREATE INDEX products_price_idx ON products (price_amount, id);
CREATE INDEX products_created_idx ON products (created_at, id);

CREATE TABLE product_reservations (
    id         TEXT PRIMARY KEY NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('active', 'released', 'committed')),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- No foreign key to products: a line outlives a deleted product as history.
CREATE TABLE product_reservation_lines (
    reservation_id TEXT   NOT NULL REFERENCES product_reservations (id),
    product_id     TEXT   NOT NULL,
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, product_id)
);
CREATE INDEX product_reservation_lines_product_idx ON product_reservation_lines (product_id);
