//! The `mux` mapper: Mux Video webhooks (`video.asset.*`, `video.upload.*`) → lifecycle events.
//!
//! One video, whatever Mux calls it: the app's own id from `passthrough` when the app set one
//! (`/data/passthrough` on assets, `/data/new_asset_settings/passthrough` on uploads), else the
//! asset id, else (an upload that never became an asset) the upload id. Every id Mux used is kept
//! in the event's metadata (`mux_asset_id`, `mux_upload_id`) so the video can be found by it.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{at, event_id, first_text, invalid, parse_object, required_text, time_at, video_id};
use crate::event::{Assets, EventKind, FailureReason, ProviderName, Source, VideoEvent};
use crate::providers::{MapError, Mapped, Verified};

const ASSET_ID_KEY: &str = "mux_asset_id";
const UPLOAD_ID_KEY: &str = "mux_upload_id";
const PASSTHROUGH_KEY: &str = "passthrough";

/// The metadata keys holding the other ids one video is known by (see `Provider::aliases`).
pub(crate) const ALIAS_KEYS: &[&str] = &[PASSTHROUGH_KEY, ASSET_ID_KEY, UPLOAD_ID_KEY];

/// The kind of a Mux event type; `None` for types that do not move the lifecycle.
fn kind_of(event_type: &str) -> Option<Tracked> {
    let tracked = match event_type {
        "video.upload.asset_created" => Tracked::Uploaded,
        "video.asset.created" => Tracked::ProcessingStarted,
        "video.asset.ready" => Tracked::Ready,
        // Extra renditions of an asset that is already playable: never a regression of `ready`.
        "video.asset.static_renditions.ready" | "video.asset.static_rendition.ready" => {
            Tracked::ProcessingCompleted
        }
        "video.asset.errored" | "video.upload.errored" | "video.upload.cancelled" => {
            Tracked::Failed
        }
        "video.asset.deleted" => Tracked::Deleted,
        _ => return None,
    };
    Some(tracked)
}

#[derive(Debug, Clone, Copy)]
enum Tracked {
    Uploaded,
    ProcessingStarted,
    ProcessingCompleted,
    Ready,
    Failed,
    Deleted,
}

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
    let event_id = event_id(required_text(&payload, "/id")?, "/id")?;
    let is_upload = event_type.starts_with("video.upload.");
    let ids = MuxIds::read(&payload, is_upload)?;

    let Some(tracked) = kind_of(event_type) else {
        return Ok(Mapped::Ignored {
            event_id,
            video_id: ids.video().ok(),
            event_type: event_type.to_string(),
        });
    };
    let occurred_at = time_at(&payload, "/created_at")?.ok_or(MapError::MissingTimestamp)?;
    let kind = match tracked {
        Tracked::Uploaded => EventKind::Uploaded,
        Tracked::ProcessingStarted => EventKind::ProcessingStarted,
        Tracked::ProcessingCompleted => EventKind::ProcessingCompleted,
        Tracked::Ready => EventKind::Ready,
        Tracked::Failed => EventKind::Failed {
            error: Some(failure(&payload)?),
        },
        Tracked::Deleted => EventKind::Deleted,
    };
    Ok(Mapped::Event(VideoEvent {
        event_id,
        video_id: ids.video()?,
        provider: provider.clone(),
        kind,
        occurred_at,
        received_at,
        source: Source::Webhook,
        assets: if is_upload {
            Assets::default()
        } else {
            assets(&payload)?
        },
        metadata: ids.metadata(&payload).into(),
    }))
}

/// The ids one Mux event carries.
struct MuxIds<'p> {
    passthrough: Option<&'p str>,
    asset: Option<&'p str>,
    upload: Option<&'p str>,
}

impl<'p> MuxIds<'p> {
    fn read(payload: &'p Value, is_upload: bool) -> Result<MuxIds<'p>, MapError> {
        let ids = if is_upload {
            MuxIds {
                passthrough: first_text(payload, &["/data/new_asset_settings/passthrough"])?,
                asset: first_text(payload, &["/data/asset_id"])?,
                upload: first_text(payload, &["/object/id", "/data/id"])?,
            }
        } else {
            MuxIds {
                passthrough: first_text(payload, &["/data/passthrough"])?,
                asset: first_text(payload, &["/object/id", "/data/id"])?,
                upload: first_text(payload, &["/data/upload_id"])?,
            }
        };
        Ok(ids)
    }

    fn video(&self) -> Result<crate::event::VideoId, MapError> {
        let (raw, pointer) = if let Some(passthrough) = self.passthrough {
            (passthrough, "/data/passthrough")
        } else if let Some(asset) = self.asset {
            (asset, "/object/id")
        } else if let Some(upload) = self.upload {
            (upload, "/object/id")
        } else {
            return Err(MapError::MissingField {
                pointer: "/object/id".into(),
            });
        };
        video_id(raw, pointer)
    }

    fn metadata(&self, payload: &Value) -> Value {
        let mut metadata = Map::new();
        for (key, id) in [(ASSET_ID_KEY, self.asset), (UPLOAD_ID_KEY, self.upload)] {
            if let Some(id) = id {
                metadata.insert(key.into(), json!(id));
            }
        }
        if let Some(passthrough) = self.passthrough {
            metadata.insert(PASSTHROUGH_KEY.into(), json!(passthrough));
        }
        if let Some(meta) = at(payload, "/data/meta") {
            metadata.insert("meta".into(), meta.clone());
        }
        Value::Object(metadata)
    }
}

/// `/data/errors {type, messages[]}` of an errored asset or upload.
fn failure(payload: &Value) -> Result<FailureReason, MapError> {
    let code = first_text(payload, &["/data/errors/type", "/data/error/type"])?;
    let messages: Vec<&str> = match at(payload, "/data/errors/messages") {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(_) => return Err(invalid("/data/errors/messages", "is not an array")),
    };
    let message = if messages.is_empty() {
        first_text(payload, &["/data/error/message"])?
            .or(code)
            .unwrap_or("Mux reported an error without a message")
            .to_string()
    } else {
        messages.join("; ")
    };
    Ok(FailureReason {
        code: code.map(str::to_string),
        message,
    })
}

/// Playback ids → stream and thumbnail URLs (the first public one, else the first), renditions →
/// resolutions, duration in seconds.
fn assets(payload: &Value) -> Result<Assets, MapError> {
    let playback_id = match at(payload, "/data/playback_ids") {
        None => None,
        Some(Value::Array(ids)) => ids
            .iter()
            .find(|id| id["policy"] == "public")
            .or_else(|| ids.first())
            .and_then(|id| id["id"].as_str()),
        Some(_) => return Err(invalid("/data/playback_ids", "is not an array")),
    };
    let mut resolutions: Vec<String> = match at(payload, "/data/static_renditions/files") {
        Some(Value::Array(files)) => files
            .iter()
            .filter(|file| file["status"].as_str().is_none_or(|s| s == "ready"))
            .filter_map(|file| {
                ["resolution_tier", "resolution", "name"]
                    .iter()
                    .find_map(|key| file[*key].as_str())
            })
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    if resolutions.is_empty() {
        if let Some(tier) = first_text(payload, &["/data/resolution_tier"])? {
            resolutions.push(tier.to_string());
        }
    }
    let duration_secs = match at(payload, "/data/duration") {
        None => None,
        Some(value) => Some(
            value
                .as_f64()
                .filter(|secs| *secs >= 0.0)
                .ok_or_else(|| invalid("/data/duration", "is not a non-negative number"))?,
        ),
    };
    Ok(Assets {
        resolutions,
        poster: playback_id.map(|id| format!("https://image.mux.com/{id}/thumbnail.jpg")),
        thumbnail: playback_id.map(|id| format!("https://image.mux.com/{id}/thumbnail.jpg")),
        playback_url: playback_id.map(|id| format!("https://stream.mux.com/{id}.m3u8")),
        duration_secs,
    })
}

#[cfg(test)]
mod tests {
    use super::super::golden::{event, map_fixture, received_at, time};
    use crate::event::EventKind;
    use crate::providers::{MapError, Mapped};

    fn mux(file: &str) -> Result<Mapped, MapError> {
        map_fixture("mux", &format!("mux/{file}"))
    }

    #[test]
    fn upload_asset_created_is_uploaded_under_the_apps_passthrough_id() {
        let event = event(mux("01-video.upload.asset_created.json").unwrap());
        assert_eq!(event.kind, EventKind::Uploaded);
        assert_eq!(event.video_id.as_str(), "vid_7731");
        assert_eq!(
            event.event_id.as_str(),
            "3f1c9a52-6a0e-4c71-9b3e-1d2f60a7c001"
        );
        assert_eq!(event.occurred_at, time("2026-11-23T10:00:01.204Z"));
        assert_eq!(event.received_at, received_at());
        assert_eq!(
            event.metadata["mux_upload_id"],
            "Lw8XkT2p9aHqb01Zx5m00cVvRr3sNdy4"
        );
        assert_eq!(
            event.metadata["mux_asset_id"],
            "Qm4Zt01vXy2cA7bLd9sHw00kPpN3eRuf6"
        );
    }

    #[test]
    fn every_event_of_one_asset_lands_on_one_video() {
        let files = [
            "01-video.upload.asset_created.json",
            "02-video.asset.created.json",
            "03-video.asset.ready.json",
            "04-video.asset.static_renditions.ready.json",
            "06-video.asset.deleted.json",
        ];
        let kinds: Vec<(String, &str)> = files
            .iter()
            .map(|file| {
                let event = event(mux(file).unwrap());
                (event.video_id.to_string(), event.kind.name())
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("vid_7731".to_string(), "uploaded"),
                ("vid_7731".to_string(), "processing_started"),
                ("vid_7731".to_string(), "ready"),
                ("vid_7731".to_string(), "processing_completed"),
                ("vid_7731".to_string(), "deleted"),
            ]
        );
    }

    #[test]
    fn ready_asset_carries_playback_thumbnail_duration_and_resolution() {
        let event = event(mux("03-video.asset.ready.json").unwrap());
        let assets = &event.assets;
        let playback = assets.playback_url.as_deref().unwrap();
        assert!(playback.starts_with("https://stream.mux.com/") && playback.ends_with(".m3u8"));
        assert!(assets
            .thumbnail
            .as_deref()
            .unwrap()
            .starts_with("https://image.mux.com/"));
        assert!(assets.duration_secs.unwrap() > 0.0);
        assert!(!assets.resolutions.is_empty());
        assert_eq!(event.metadata["passthrough"], "vid_7731");
    }

    #[test]
    fn errored_asset_fails_with_muxs_type_and_messages() {
        let event = event(mux("05-video.asset.errored.json").unwrap());
        assert_eq!(event.video_id.as_str(), "vid_7790");
        match event.kind {
            EventKind::Failed { error: Some(error) } => {
                assert_eq!(error.code.as_deref(), Some("invalid_input"));
                assert_eq!(
                    error.message,
                    "The input file could not be decoded as audio or video."
                );
            }
            other => panic!("expected failed, got {other:?}"),
        }
    }

    #[test]
    fn without_passthrough_the_asset_id_names_the_video_for_upload_and_asset_alike() {
        let strip = |file: &str| {
            let mut body: serde_json::Value =
                serde_json::from_slice(&crate::providers::test_support::fixture(file)).unwrap();
            body["data"].as_object_mut().unwrap().remove("passthrough");
            if let Some(settings) = body["data"]["new_asset_settings"].as_object_mut() {
                settings.remove("passthrough");
            }
            serde_json::to_vec(&body).unwrap()
        };
        let map = |file: &str| {
            event(
                super::super::golden::map_with(
                    crate::config::MapperConfig::Builtin("mux".into()),
                    &Default::default(),
                    &strip(file),
                )
                .unwrap(),
            )
        };
        let upload = map("mux/01-video.upload.asset_created.json");
        let ready = map("mux/03-video.asset.ready.json");
        assert_eq!(
            upload.video_id.as_str(),
            "Qm4Zt01vXy2cA7bLd9sHw00kPpN3eRuf6"
        );
        assert_eq!(ready.video_id, upload.video_id);
    }

    #[test]
    fn untracked_types_are_ignored_with_their_video() {
        let body =
            br#"{"type":"video.asset.track.ready","id":"e1","created_at":"2026-11-23T10:00:00Z",
            "object":{"type":"asset","id":"A1"},"data":{"id":"A1","passthrough":"vid_1"}}"#;
        let mapped = super::super::golden::map_with(
            crate::config::MapperConfig::Builtin("mux".into()),
            &Default::default(),
            body,
        )
        .unwrap();
        match mapped {
            Mapped::Ignored {
                video_id,
                event_type,
                ..
            } => {
                assert_eq!(event_type, "video.asset.track.ready");
                assert_eq!(video_id.unwrap().as_str(), "vid_1");
            }
            other => panic!("expected ignored, got {other:?}"),
        }
    }

    #[test]
    fn missing_id_and_time_are_named() {
        let no_id = br#"{"type":"video.asset.ready","created_at":"2026-11-23T10:00:00Z","object":{"id":"A1"},"data":{}}"#;
        let error = super::super::golden::map_with(
            crate::config::MapperConfig::Builtin("mux".into()),
            &Default::default(),
            no_id,
        )
        .unwrap_err();
        assert_eq!(error.code(), "missing_field");
        assert!(error.to_string().contains("/id"));
        let no_time = br#"{"type":"video.asset.ready","id":"e1","object":{"id":"A1"},"data":{}}"#;
        let error = super::super::golden::map_with(
            crate::config::MapperConfig::Builtin("mux".into()),
            &Default::default(),
            no_time,
        )
        .unwrap_err();
        assert_eq!(error.code(), "missing_timestamp");
    }
}
