DROP INDEX bus_deliveries_retry_idx;
DROP INDEX bus_deliveries_held_idx;
