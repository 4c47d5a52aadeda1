-- 0003_events_by_stream: a rebuild reads the log stream by stream. The UNIQUE (stream_id,
-- stream_version) index gives that order, but every row it finds is then looked up in the table,
-- whose pages are in position order: one random page read per event. This index carries the
-- payload too, so a rebuild walks it alone, as fast as a sequential read of the table; it costs
-- a second copy of each payload (not of the raw request) and one more index write per append.
CREATE INDEX events_by_stream ON events (stream_id, stream_version, position, payload);
-- The swap of a rebuild copies the status rows of appends made after the rebuild's position;
-- this finds them without scanning the table.
CREATE INDEX status_by_position ON status (position);
