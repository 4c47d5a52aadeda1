-- Other ids one video is known by (a provider's upload id, asset id, the app's own id): each alias
-- names exactly one video, and the first link wins. A video's own id is listed as its own alias
-- once any of its ids has been linked, so one lookup answers "which video is this id".
CREATE TABLE video_aliases (
    alias    TEXT PRIMARY KEY NOT NULL,
    video_id TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX video_aliases_by_video ON video_aliases (video_id);
