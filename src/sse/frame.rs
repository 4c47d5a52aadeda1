//! The SSE wire format, written as bytes once and shared. A change fans out to every subscriber
//! of its video and every global one: its status is serialized once per stalled flag and its
//! frame encoded once per stream kind, then each subscriber gets a reference-counted clone of the
//! same bytes instead of serializing and formatting its own copy.
//!
//! The bytes are those warp's `sse::Event` writes (`event:` / `data:` per line / `id:` / a blank
//! line, no space after the colons), so clients and the tests see no difference.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use crate::projection::stall::StatusView;
use crate::projection::VideoStatus;

/// The comment a quiet stream sends so that proxies and clients see it alive.
pub const KEEP_ALIVE: &[u8] = b":\n\n";

/// One event: its name, its data (one `data:` line per line of it, as the SSE format requires
/// for data that spans lines) and, when it has one, its id.
pub fn encode(event: &str, data: &str, id: Option<u64>) -> Bytes {
    let lines = data.split('\n');
    let mut frame = BytesMut::with_capacity(event.len() + data.len() + 48);
    frame.put_slice(b"event:");
    frame.put_slice(event.as_bytes());
    frame.put_u8(b'\n');
    for line in lines {
        frame.put_slice(b"data:");
        frame.put_slice(line.as_bytes());
        frame.put_u8(b'\n');
    }
    if let Some(id) = id {
        frame.put_slice(b"id:");
        frame.put_slice(id.to_string().as_bytes());
        frame.put_u8(b'\n');
    }
    frame.put_u8(b'\n');
    frame.freeze()
}

/// The reconnection delay a client should use, as the first frame of every stream.
pub fn retry(millis: u64) -> Bytes {
    Bytes::from(format!("retry:{millis}\n\n"))
}

/// A `status` event for `status` as readers see it at the time of the read (`stalled`). `id` is
/// `None` for a status only time changed (it became stalled): an event without an id leaves the
/// client's `Last-Event-ID` where it was.
pub fn status(id: Option<u64>, status: &VideoStatus, stalled: bool) -> Bytes {
    encode("status", &status_json(status, stalled), id)
}

fn status_json(status: &VideoStatus, stalled: bool) -> String {
    serde_json::to_string(&StatusView { status, stalled }).unwrap_or_default()
}

/// A status as the hub hands it to subscribers, with its frames encoded on first use and kept:
/// the first subscriber to need a frame pays for it, the others clone it.
#[derive(Debug)]
pub struct Published {
    pub status: Arc<VideoStatus>,
    /// Its global position, the id on `GET /events`; `None` when no event put it there (a
    /// status that became stalled, or one re-read after the hub fell behind).
    pub position: Option<u64>,
    /// The data JSON, by stalled flag (`false`, `true`): shared by both stream kinds.
    json: [OnceLock<String>; 2],
    /// `GET /videos/{id}/events` frames (`id:` the version), by stalled flag.
    video_frames: [OnceLock<Bytes>; 2],
    /// `GET /events` frames (`id:` the position, if any), by stalled flag.
    global_frames: [OnceLock<Bytes>; 2],
}

impl Published {
    pub fn new(status: Arc<VideoStatus>, position: Option<u64>) -> Published {
        Published {
            status,
            position,
            json: Default::default(),
            video_frames: Default::default(),
            global_frames: Default::default(),
        }
    }

    /// The frame of a video's own stream: `id:` the video's version.
    pub fn video_frame(&self, stalled: bool) -> Bytes {
        self.video_frames[usize::from(stalled)]
            .get_or_init(|| encode("status", self.json(stalled), Some(self.status.version)))
            .clone()
    }

    /// The frame of the global stream: `id:` the global position, none without one.
    pub fn global_frame(&self, stalled: bool) -> Bytes {
        self.global_frames[usize::from(stalled)]
            .get_or_init(|| encode("status", self.json(stalled), self.position))
            .clone()
    }

    fn json(&self, stalled: bool) -> &str {
        self.json[usize::from(stalled)].get_or_init(|| status_json(&self.status, stalled))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::event::{Assets, ProviderName, VideoId};
    use crate::lifecycle::Status;

    fn sample() -> VideoStatus {
        let at = Utc.timestamp_opt(1_795_428_000, 0).unwrap();
        VideoStatus {
            video_id: VideoId::parse("vid_42").unwrap(),
            provider: ProviderName::parse("demo").unwrap(),
            status: Status::Processing,
            progress: Some(42.5),
            assets: Assets::default(),
            error: None,
            metadata: serde_json::json!({ "title": "two\nlines and a \"quote\"" }).into(),
            version: 7,
            updated_at: at,
            last_event_at: at,
        }
    }

    fn text(bytes: &Bytes) -> &str {
        std::str::from_utf8(bytes).unwrap()
    }

    #[test]
    fn an_event_with_an_id_is_name_data_id_and_a_blank_line() {
        assert_eq!(
            text(&encode("reset", r#"{"position":5}"#, Some(12))),
            "event:reset\ndata:{\"position\":5}\nid:12\n\n"
        );
    }

    #[test]
    fn an_event_without_an_id_has_no_id_line() {
        assert_eq!(
            text(&encode("shutdown", "bye", None)),
            "event:shutdown\ndata:bye\n\n"
        );
    }

    #[test]
    fn data_spanning_lines_gets_one_data_line_per_line() {
        assert_eq!(
            text(&encode("note", "one\ntwo\n\nfour", Some(0))),
            "event:note\ndata:one\ndata:two\ndata:\ndata:four\nid:0\n\n"
        );
    }

    #[test]
    fn the_bytes_are_those_warp_writes_for_the_same_event() {
        for (data, id) in [
            ("plain", None),
            ("a\nb", Some(3)),
            ("", Some(u64::MAX)),
            ("trailing\n", None),
        ] {
            let mut warp_event = warp::sse::Event::default().event("status").data(data);
            if let Some(id) = id {
                warp_event = warp_event.id(id.to_string());
            }
            assert_eq!(text(&encode("status", data, id)), warp_event.to_string());
        }
        let warp_retry = warp::sse::Event::default().retry(Duration::from_millis(3000));
        assert_eq!(text(&retry(3000)), warp_retry.to_string());
        let warp_comment = warp::sse::Event::default().comment("");
        assert_eq!(KEEP_ALIVE, warp_comment.to_string().as_bytes());
    }

    #[test]
    fn a_status_frame_carries_the_view_with_its_stalled_flag_on_one_data_line() {
        let frame = status(Some(7), &sample(), true);
        let body = text(&frame);
        let json = body
            .strip_prefix("event:status\ndata:")
            .and_then(|rest| rest.strip_suffix("\nid:7\n\n"))
            .unwrap_or_else(|| panic!("unexpected frame {body:?}"));
        assert!(
            !json.contains('\n'),
            "the JSON escapes its newlines: {json}"
        );
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(parsed["stalled"], true);
        assert_eq!(parsed["version"], 7);
        assert_eq!(parsed["metadata"]["title"], "two\nlines and a \"quote\"");
    }

    #[test]
    fn a_published_status_frames_each_stream_kind_with_its_own_id() {
        let status = Arc::new(sample());
        let change = Published::new(Arc::clone(&status), Some(1234));
        assert_eq!(
            change.video_frame(false),
            super::status(Some(7), &status, false)
        );
        assert_eq!(
            change.global_frame(false),
            super::status(Some(1234), &status, false)
        );
        assert_eq!(
            change.global_frame(true),
            super::status(Some(1234), &status, true)
        );
        let stalled = Published::new(Arc::clone(&status), None);
        assert_eq!(
            stalled.global_frame(true),
            super::status(None, &status, true)
        );
        assert_eq!(
            stalled.video_frame(true),
            super::status(Some(7), &status, true)
        );
    }

    #[test]
    fn a_published_frame_is_encoded_once_and_shared() {
        let change = Published::new(Arc::new(sample()), Some(1));
        let first = change.global_frame(false);
        let second = change.global_frame(false);
        assert_eq!(
            first.as_ptr(),
            second.as_ptr(),
            "the same bytes, not a copy"
        );
        assert_ne!(
            change.global_frame(true).as_ptr(),
            first.as_ptr(),
            "the stalled flag has its own frame"
        );
    }
}
