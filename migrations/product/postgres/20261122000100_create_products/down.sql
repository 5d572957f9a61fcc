DROP TABLE product_reservation_lines;
DROP TABLE product_reservations;
DROP TABLE products;
