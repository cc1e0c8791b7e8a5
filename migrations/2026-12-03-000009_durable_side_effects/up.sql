-- `abandoned`: the delivery's endpoint is no longer configured; settled at
-- start-up so it leaves the backlog and is purged with its event.
ALTER TABLE event_deliveries DROP CONSTRAINT event_deliveries_state_check;
ALTER TABLE event_deliveries ADD CONSTRAINT event_deliveries_state_check
    CHECK (state IN ('held', 'pending', 'delivered', 'failed', 'abandoned'));
-- A held delivery's `next_attempt_at` is the end of its hold
-- (`events.hold_for`): the worker releases the expired ones each round.
CREATE INDEX event_deliveries_held ON event_deliveries (next_attempt_at)
    WHERE state = 'held';
