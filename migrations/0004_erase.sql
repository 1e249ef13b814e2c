-- A running server looks for new `erase` events every few seconds (SPEC 12):
-- this keeps that look one index step, however large the table grows.
CREATE INDEX events_erase ON events (id) WHERE kind = 'erase';
