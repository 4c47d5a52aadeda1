-- 0001_init: the event log, the status table written beside it, the audit log and the
-- quarantine. Applied once by SqliteStore::open (recorded in schema_migrations); never edit a
-- migration that has shipped, add the next one.

-- The log. `position` is the global position: AUTOINCREMENT never hands out a number twice,
-- and with one writer the numbers are assigned in commit order, without gaps.
-- `payload` (codec::encode_event) is the truth; the other columns are for lookups and for
-- people reading the database, and are derived from it.
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL CHECK (stream_version >= 1),
    provider       TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL, -- unix microseconds
    received_at    INTEGER NOT NULL, -- unix microseconds
    body_sha256    BLOB    NOT NULL CHECK (length(body_sha256) = 32),
    payload        BLOB    NOT NULL,
    raw            BLOB    NOT NULL, -- codec::encode_raw
    -- The dedupe key: a redelivery can never be stored twice, whatever the caller checked.
    UNIQUE (provider, event_id),
    -- One event per stream slot: the backstop of optimistic concurrency.
    UNIQUE (stream_id, stream_version)
) STRICT;

-- The current status of each video, upserted in the same transaction as the event that
-- produced it. `doc` is the VideoStatus JSON; the other columns serve the filters of GET /videos.
CREATE TABLE status (
    video_id TEXT    PRIMARY KEY NOT NULL,
    provider TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    version  INTEGER NOT NULL, -- events in the video's stream
    position INTEGER NOT NULL, -- global position of the event at that version (0 if unknown)
    doc      TEXT    NOT NULL
) STRICT;

-- GET /videos pages are ordered by video_id; a filter plus that order is one index range scan.
CREATE INDEX status_by_status ON status (status, video_id);
CREATE INDEX status_by_provider ON status (provider, video_id);

-- Verified deliveries kept but not folded (untracked type, id reused with another body).
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    event_id    TEXT,
    video_id    TEXT,
    kind        TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    received_at TEXT    NOT NULL, -- RFC 3339 with nanoseconds
    raw         BLOB    NOT NULL  -- codec::encode_raw
) STRICT;

-- Verified requests that could not be mapped, kept whole so they can be replayed after a fix.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    provider    TEXT    NOT NULL,
    error_code  TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    received_at TEXT    NOT NULL, -- RFC 3339 with nanoseconds
    raw         BLOB    NOT NULL  -- codec::encode_raw
) STRICT;
