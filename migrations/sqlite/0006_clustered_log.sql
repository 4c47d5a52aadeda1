-- 0006_clustered_log: fewer B-trees for every append to touch, and each payload stored once.
--
-- The log becomes a table clustered by stream (WITHOUT ROWID, keyed by stream and version), so
-- reading a video's stream, and a rebuild reading every stream in order, walk the table itself:
-- 0003's covering index, which held a second copy of every payload, goes away. The global
-- position is a unique column the writer assigns (the next after the highest, under the write
-- lock, so positions stay in commit order and without gaps). Raw requests, read only for audit
-- and re-mapping, move to a table of their own keyed by position, so the log's rows stay small
-- and a raw request is written where the last one was.
--
-- The status table becomes WITHOUT ROWID too (its key is the video id: one B-tree instead of a
-- table plus an index on the key), and loses 0003's index on position: a rebuild's swap finds
-- the videos appended to after its position through the log's position index instead.
--
-- Copies every row once: on a large log, the first start of this version takes a while.

CREATE TABLE event_log (
    stream_id      TEXT    NOT NULL,
    stream_version INTEGER NOT NULL CHECK (stream_version >= 1),
    position       INTEGER NOT NULL CHECK (position >= 1),
    provider       TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    occurred_at    INTEGER NOT NULL, -- unix microseconds
    received_at    INTEGER NOT NULL, -- unix microseconds
    body_sha256    BLOB    NOT NULL CHECK (length(body_sha256) = 32),
    payload        BLOB    NOT NULL, -- codec::encode_event: the truth; the other columns derive from it
    -- One event per stream slot: the backstop of optimistic concurrency, and the table's order.
    PRIMARY KEY (stream_id, stream_version),
    -- The dedupe key: a redelivery can never be stored twice, whatever the caller checked.
    UNIQUE (provider, event_id),
    -- The global order; its index also answers "which streams moved after position p".
    UNIQUE (position)
) STRICT, WITHOUT ROWID;

INSERT INTO event_log (stream_id, stream_version, position, provider, event_id, kind,
    occurred_at, received_at, body_sha256, payload)
SELECT stream_id, stream_version, position, provider, event_id, kind, occurred_at, received_at,
    body_sha256, payload
FROM events ORDER BY stream_id, stream_version;

CREATE TABLE raw_deliveries (
    position INTEGER PRIMARY KEY NOT NULL, -- the event's global position
    raw      BLOB    NOT NULL              -- codec::encode_raw
) STRICT;

INSERT INTO raw_deliveries (position, raw) SELECT position, raw FROM events ORDER BY position;

DROP TABLE events;
ALTER TABLE event_log RENAME TO events;

CREATE TABLE status_by_video (
    video_id TEXT    PRIMARY KEY NOT NULL,
    provider TEXT    NOT NULL,
    status   TEXT    NOT NULL,
    version  INTEGER NOT NULL, -- events in the video's stream
    position INTEGER NOT NULL, -- global position of the event at that version (0 if unknown)
    doc      TEXT    NOT NULL  -- the VideoStatus JSON
) STRICT, WITHOUT ROWID;

INSERT INTO status_by_video (video_id, provider, status, version, position, doc)
SELECT video_id, provider, status, version, position, doc FROM status ORDER BY video_id;

-- Drops every index of the old table, whatever rebuild generation named it.
DROP TABLE status;
ALTER TABLE status_by_video RENAME TO status;

-- GET /videos pages are ordered by video_id; a filter plus that order is one index range scan.
CREATE INDEX status_by_status ON status (status, video_id);
CREATE INDEX status_by_provider ON status (provider, video_id);
