-- The class roster: each name bound to one person by a personal code, of which
-- only an argon2 hash is kept. Names are unique ignoring case, as nicks are.
CREATE TABLE roster (
    name      TEXT    NOT NULL PRIMARY KEY COLLATE NOCASE,
    role      TEXT    NOT NULL DEFAULT 'student',  -- student | instructor
    full_name TEXT,
    code_hash TEXT    NOT NULL,
    added_ms  INTEGER NOT NULL
);

-- The account an event belongs to: the roster name of whoever did it, NULL
-- without a roster (then the report follows the name given at log-in).
ALTER TABLE events ADD COLUMN account TEXT;
