//! The `cloudflare-stream` mapper: a Cloudflare Stream video object (what its webhooks send, and
//! what its API answers) → a lifecycle event from `status.state`.
//!
//! Cloudflare sends no event id: the event id is the stable hash of provider and raw body, so a
//! redelivery of the same bytes dedupes. The video is the app's own id when the upload put one in
//! `meta.videoId` (or `meta.video_id`), else the Stream `uid`; the event time is `modified`.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{at, first_text, invalid, parse_object, percent_at, time_at, video_id};
use crate::event::{Assets, EventKind, FailureReason, ProviderName, Source, VideoEvent};
use crate::providers::native::stable_event_id;
use crate::providers::{MapError, Mapped, Verified};

const UID_KEY: &str = "cloudflare_uid";

/// The metadata keys holding the other ids one video is known by (see `Provider::aliases`).
pub(crate) const ALIAS_KEYS: &[&str] = &[UID_KEY];

pub(crate) fn map(
    provider: &ProviderName,
    _verified: &Verified,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Mapped, MapError> {
    let payload = parse_object(body)?;
    let event_id = stable_event_id(provider, body);
    let state = first_text(&payload, &["/status/state"])?.ok_or(MapError::MissingField {
        pointer: "/status/state".into(),
    })?;
    let (video_id, uid) = ids(&payload)?;
    let percent = percent_at(&payload, "/status/pctComplete")?;
    let ready_to_stream = at(&payload, "/readyToStream").and_then(Value::as_bool) == Some(true);

    let kind = match state {
        "downloading" | "queued" => EventKind::Uploaded,
        "inprogress" => match percent {
            Some(percent) => EventKind::Progress { percent },
            None => EventKind::ProcessingStarted,
        },
        // Playable before every rendition is done: processed, with `ready` still to come.
        "ready" if ready_to_stream && percent.is_some_and(|p| p < 100.0) => {
            EventKind::ProcessingCompleted
        }
        "ready" => EventKind::Ready,
        "error" => EventKind::Failed {
            error: Some(failure(&payload)?),
        },
        // `pendingupload` (a direct upload URL nobody used yet) and states Cloudflare may add.
        other => {
            return Ok(Mapped::Ignored {
                event_id,
                video_id: Some(video_id),
                event_type: format!("status.state={other}"),
            })
        }
    };
    let occurred_at = time_at(&payload, "/modified")?.ok_or(MapError::MissingTimestamp)?;
    let mut metadata = Map::new();
    metadata.insert(UID_KEY.into(), json!(uid));
    if let Some(meta) = at(&payload, "/meta") {
        metadata.insert("meta".into(), meta.clone());
    }
    Ok(Mapped::Event(VideoEvent {
        event_id,
        video_id,
        provider: provider.clone(),
        kind,
        occurred_at,
        received_at,
        source: Source::Webhook,
        assets: assets(&payload)?,
        metadata: Value::Object(metadata).into(),
    }))
}

/// The video (the app's id from `meta`, else the uid) and the Stream uid.
fn ids(payload: &Value) -> Result<(crate::event::VideoId, &str), MapError> {
    let uid = first_text(payload, &["/uid"])?.ok_or(MapError::MissingField {
        pointer: "/uid".into(),
    })?;
    let video = match first_text(payload, &["/meta/videoId", "/meta/video_id"])? {
        Some(app_id) => video_id(app_id, "/meta/videoId")?,
        None => video_id(uid, "/uid")?,
    };
    Ok((video, uid))
}

/// `errorReasonCode`/`errorReasonText`, or the legacy `errReasonCode`/`errReasonText`.
fn failure(payload: &Value) -> Result<FailureReason, MapError> {
    let code = first_text(
        payload,
        &["/status/errorReasonCode", "/status/errReasonCode"],
    )?;
    let text = first_text(
        payload,
        &["/status/errorReasonText", "/status/errReasonText"],
    )?;
    Ok(FailureReason {
        code: code.map(str::to_string),
        message: text
            .or(code)
            .unwrap_or("Cloudflare Stream reported an error without a reason")
            .to_string(),
    })
}

fn assets(payload: &Value) -> Result<Assets, MapError> {
    let duration_secs = match at(payload, "/duration") {
        None => None,
        // Cloudflare says -1 while the duration is unknown.
        Some(value) => {
            let secs = value
                .as_f64()
                .ok_or_else(|| invalid("/duration", "is not a number"))?;
            (secs >= 0.0).then_some(secs)
        }
    };
    let height = at(payload, "/input/height")
        .and_then(Value::as_i64)
        .filter(|h| *h > 0);
    Ok(Assets {
        resolutions: height.map(|h| vec![format!("{h}p")]).unwrap_or_default(),
        poster: None,
        thumbnail: first_text(payload, &["/thumbnail"])?.map(str::to_string),
        playback_url: first_text(payload, &["/playback/hls"])?.map(str::to_string),
        duration_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::golden::{event, map_fixture, time};
    use crate::event::EventKind;
    use crate::providers::{MapError, Mapped};

    fn cloudflare(file: &str) -> Result<Mapped, MapError> {
        map_fixture("cloudflare-stream", &format!("cloudflare-stream/{file}"))
    }

    #[test]
    fn states_map_to_the_lifecycle_in_order() {
        let kinds: Vec<EventKind> = [
            "01-queued.json",
            "02-inprogress.json",
            "03-ready-playable-partial.json",
            "04-ready.json",
        ]
        .iter()
        .map(|file| event(cloudflare(file).unwrap()).kind)
        .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Uploaded,
                EventKind::Progress { percent: 41.5 },
                EventKind::ProcessingCompleted,
                EventKind::Ready,
            ]
        );
    }

    #[test]
    fn the_apps_id_in_meta_names_the_video_and_the_uid_is_kept() {
        let event = event(cloudflare("04-ready.json").unwrap());
        assert_eq!(event.video_id.as_str(), "vid_7731");
        assert_eq!(
            event.metadata["cloudflare_uid"],
            "4be1c0a8f27d4e6c9a51d3b07e2f9c16"
        );
        assert!(event.event_id.as_str().starts_with("sha256:"));
        assert!(event
            .assets
            .playback_url
            .as_deref()
            .unwrap()
            .ends_with(".m3u8"));
        assert!(event.assets.thumbnail.is_some());
        assert_eq!(event.assets.resolutions, ["1080p"]);
    }

    #[test]
    fn modified_is_the_event_time_to_the_microsecond() {
        let event = event(cloudflare("03-ready-playable-partial.json").unwrap());
        assert_eq!(event.occurred_at, time("2026-11-23T10:00:14.002117Z"));
    }

    #[test]
    fn errors_carry_the_reason_in_both_spellings() {
        for file in ["05-error.json", "06-error-legacy-errReason-fields.json"] {
            match event(cloudflare(file).unwrap()).kind {
                EventKind::Failed { error: Some(error) } => {
                    assert!(error.code.as_deref().unwrap().starts_with("ERR_"), "{file}");
                    assert!(!error.message.is_empty(), "{file}");
                }
                other => panic!("{file}: expected failed, got {other:?}"),
            }
        }
        // No app id in meta: the uid names the video.
        let legacy = event(cloudflare("06-error-legacy-errReason-fields.json").unwrap());
        assert_eq!(legacy.video_id.as_str(), "c1e5a7b9d2f04c68a3b5e7d9f1a3c5e7");
        assert_eq!(legacy.assets.duration_secs, None);
    }

    #[test]
    fn the_same_bytes_get_the_same_event_id_and_other_bytes_another() {
        let first = event(cloudflare("04-ready.json").unwrap());
        let again = event(cloudflare("04-ready.json").unwrap());
        let other = event(cloudflare("03-ready-playable-partial.json").unwrap());
        assert_eq!(first.event_id, again.event_id);
        assert_ne!(first.event_id, other.event_id);
    }

    #[test]
    fn pending_upload_is_ignored_and_a_missing_state_is_named() {
        let pending =
            br#"{"uid":"u1","status":{"state":"pendingupload"},"modified":"2026-11-23T10:00:00Z"}"#;
        let mapped = super::super::golden::map_with(
            crate::config::MapperConfig::Builtin("cloudflare-stream".into()),
            &Default::default(),
            pending,
        )
        .unwrap();
        assert!(matches!(mapped, Mapped::Ignored { .. }), "{mapped:?}");
        let no_state = br#"{"uid":"u1","modified":"2026-11-23T10:00:00Z"}"#;
        let error = super::super::golden::map_with(
            crate::config::MapperConfig::Builtin("cloudflare-stream".into()),
            &Default::default(),
            no_state,
        )
        .unwrap_err();
        assert_eq!(error.code(), "missing_field");
        assert!(error.to_string().contains("/status/state"));
    }
}
