DROP INDEX event_deliveries_held;
-- The previous schema has no `abandoned`: it was a delivery that never
-- happened, the closest of which is `failed`.
UPDATE event_deliveries SET state = 'failed' WHERE state = 'abandoned';
ALTER TABLE event_deliveries DROP CONSTRAINT event_deliveries_state_check;
ALTER TABLE event_deliveries ADD CONSTRAINT event_deliveries_state_check
    CHECK (state IN ('held', 'pending', 'delivered', 'failed'));
