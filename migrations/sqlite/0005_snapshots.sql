-- Where a video's actor may start instead of its whole stream: the folded status at `version`,
-- with the last event in fold order (protobuf, as in `events.payload`). Disposable: a rebuild
-- deletes them all, and one written by another fold version is ignored.
CREATE TABLE snapshots (
    video_id     TEXT PRIMARY KEY NOT NULL,
    version      INTEGER NOT NULL,
    fold_version INTEGER NOT NULL,
    status       TEXT NOT NULL,
    last_event   BLOB NOT NULL
) STRICT, WITHOUT ROWID;
