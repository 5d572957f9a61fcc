ALTER TABLE product_reservation_lines DROP COLUMN currency;
ALTER TABLE product_reservation_lines DROP COLUMN unit_amount;
ALTER TABLE product_reservation_lines DROP COLUMN name;
ALTER TABLE product_reservation_lines DROP COLUMN sku;
