-- Each reservation line keeps the product as it was priced when the stock was taken, so a
-- reservation answers with its prices (and again, unchanged, when the same id is retried).
ALTER TABLE product_reservation_lines ADD COLUMN sku TEXT NOT NULL DEFAULT '';
ALTER TABLE product_reservation_lines ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE product_reservation_lines ADD COLUMN unit_amount BIGINT NOT NULL DEFAULT 0;
ALTER TABLE product_reservation_lines ADD COLUMN currency TEXT NOT NULL DEFAULT '';
-- Lines reserved before this migration take the product's current figures.
UPDATE product_reservation_lines SET
    sku = (SELECT p.sku FROM products p WHERE p.id = product_reservation_lines.product_id),
    name = (SELECT p.name FROM products p WHERE p.id = product_reservation_lines.product_id),
    unit_amount = (SELECT p.price_amount FROM products p WHERE p.id = product_reservation_lines.product_id),
    currency = (SELECT p.price_currency FROM products p WHERE p.id = product_reservation_lines.product_id)
WHERE EXISTS (SELECT 1 FROM products p WHERE p.id = product_reservation_lines.product_id);
