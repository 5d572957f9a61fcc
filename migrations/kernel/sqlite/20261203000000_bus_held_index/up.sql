-- The deliveries that can hold back later ones of their subscriber and subject: leased (by
-- a relay, maybe one that died) or failed and waiting for a retry (a future next_attempt_at
-- always comes with last_error). The batch choice probes this small index for each candidate
-- instead of every pending delivery of its key, which made it slower as the backlog grew.
DROP INDEX bus_deliveries_order_idx;
CREATE INDEX bus_deliveries_held_idx ON bus_deliveries (subscriber, subject, seq)
    WHERE status = 'pending' AND (lease_until IS NOT NULL OR last_error IS NOT NULL);
