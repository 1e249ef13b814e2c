-- Every event of the chat, one row each. Timestamps are UTC milliseconds.
-- `session` is the connection the event came from; it survives /nick changes,
-- so a student can be followed across names, and it is unique across restarts.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    ts_ms     INTEGER NOT NULL,
    kind      TEXT    NOT NULL,  -- chat pm join leave nick op kick mute unmute announce quiet
    room      TEXT    NOT NULL,  -- for pm: the sender's room
    sender    TEXT    NOT NULL,  -- for nick: the old name
    recipient TEXT,              -- pm only
    text      TEXT,              -- chat/pm: the message; leave: the reason; nick: the new name
    session   INTEGER NOT NULL
);

-- History replay: the last N chat lines of one room.
CREATE INDEX events_room_chat ON events (room, id) WHERE kind = 'chat';
-- Report and transcript filters: a time window, one student's sessions.
CREATE INDEX events_ts ON events (ts_ms);
CREATE INDEX events_session ON events (session);
