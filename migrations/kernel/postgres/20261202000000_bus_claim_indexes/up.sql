-- Kernel: the relay's batch claim asks which (subscriber, subject) keys are held up — by a
-- live lease or by a failed delivery waiting for its retry — before it takes the oldest due
-- deliveries. These two small partial indexes answer that without reading the backlog.
CREATE INDEX bus_deliveries_held_idx ON bus_deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
CREATE INDEX bus_deliveries_retry_idx ON bus_deliveries (next_attempt_at)
    WHERE status = 'pending' AND last_error IS NOT NULL;
