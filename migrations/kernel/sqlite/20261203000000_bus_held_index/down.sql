DROP INDEX bus_deliveries_held_idx;
CREATE INDEX bus_deliveries_order_idx ON bus_deliveries (subscriber, subject, seq) WHERE status = 'pending';
