-- How many events of an unsaved-events file (named by the generation in its first
-- line) are already in the events table: written in the same transaction as they
-- are, so the next start imports each event of the file once, whenever the
-- server stopped.
CREATE TABLE unsaved_progress (
    generation TEXT    NOT NULL PRIMARY KEY,
    committed  INTEGER NOT NULL
);
