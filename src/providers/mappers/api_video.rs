//! The `api-video` mapper: api.video webhooks → lifecycle events.
//!
//! api.video sends no event id (the stable hash of provider and raw body dedupes redeliveries)
//! and no `ready`, `failed` or `deleted` event: an encoded rendition is as far as webhooks go, so
//! every `video.encoding.quality.completed` is `processing_completed` with its quality as the
//! resolution. The event time is `emittedAt`.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{at, first_text, parse_object, required_text, time_at, video_id};
use crate::event::{Assets, EventKind, ProviderName, Source, VideoEvent};
use crate::providers::native::stable_event_id;
use crate::providers::{MapError, Mapped, Verified};

pub(crate) fn map(
    provider: &ProviderName,
    _verified: &Verified,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Mapped, MapError> {
    let payload = parse_object(body)?;
    let event_type = match at(&payload, "/type") {
        None => return Err(MapError::MissingEventType),
        Some(Value::String(event_type)) => event_type.as_str(),
        Some(_) => return Err(MapError::InvalidEventType),
    };
    let event_id = stable_event_id(provider, body);
    let kind = match event_type {
        "video.source.recorded" => EventKind::Uploaded,
        "video.encoding.quality.completed" => EventKind::ProcessingCompleted,
        other => {
            let video_id =
                first_text(&payload, &["/videoId"])?.and_then(|raw| video_id(raw, "/videoId").ok());
            return Ok(Mapped::Ignored {
                event_id,
                video_id,
                event_type: other.to_string(),
            });
        }
    };
    let video_id = video_id(required_text(&payload, "/videoId")?, "/videoId")?;
    let occurred_at = time_at(&payload, "/emittedAt")?.ok_or(MapError::MissingTimestamp)?;
    let quality = first_text(&payload, &["/quality"])?;
    let encoding = first_text(&payload, &["/encoding"])?;
    let mut metadata = serde_json::Map::new();
    if let Some(encoding) = encoding {
        metadata.insert("encoding".into(), json!(encoding));
    }
    if let Some(live_stream) = first_text(&payload, &["/liveStreamId"])? {
        metadata.insert("live_stream_id".into(), json!(live_stream));
    }
    Ok(Mapped::Event(VideoEvent {
        event_id,
        video_id,
        provider: provider.clone(),
        kind,
        occurred_at,
        received_at,
        source: Source::Webhook,
        assets: Assets {
            resolutions: quality.map(|q| vec![q.to_string()]).unwrap_or_default(),
            ..Assets::default()
        },
        metadata: Value::Object(metadata).into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::super::golden::{event, map_fixture, time};
    use crate::event::EventKind;
    use crate::providers::Mapped;

    #[test]
    fn source_recorded_then_encoded_qualities() {
        let files = [
            "01-video.source.recorded.json",
            "02-video.encoding.quality.completed-hls-240p.json",
            "03-video.encoding.quality.completed-hls-720p.json",
            "04-video.encoding.quality.completed-mp4.json",
        ];
        let events: Vec<_> = files
            .iter()
            .map(|file| event(map_fixture("api-video", &format!("api-video/{file}")).unwrap()))
            .collect();
        assert_eq!(events[0].kind, EventKind::Uploaded);
        assert!(events[1..]
            .iter()
            .all(|e| e.kind == EventKind::ProcessingCompleted));
        assert!(events
            .iter()
            .all(|e| e.video_id.as_str() == "vi4mQ7xZ2kR9tB1nC5dW8yL"));
        assert_eq!(events[2].assets.resolutions, ["720p"]);
        assert_eq!(events[2].metadata["encoding"], "hls");
        assert_eq!(events[3].occurred_at, time("2026-11-23T13:01:02.377Z"));
        // No id in the body: a hash of the bytes, distinct per delivery.
        let mut ids: Vec<_> = events.iter().map(|e| e.event_id.clone()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 4);
    }

    #[test]
    fn caption_generated_is_ignored() {
        let mapped = map_fixture("api-video", "api-video/05-video.caption.generated.json").unwrap();
        match mapped {
            Mapped::Ignored { event_type, .. } => {
                assert_eq!(event_type, "video.caption.generated")
            }
            other => panic!("expected ignored, got {other:?}"),
        }
    }
}
