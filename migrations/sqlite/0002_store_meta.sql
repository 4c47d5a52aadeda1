-- 0002_store_meta: facts about the stored data itself, e.g. which fold (code) version built the
-- status table, so a newer fold can rebuild it from the log on start.
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) STRICT;
