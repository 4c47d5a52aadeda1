//! The `native` mapper: video-status' own payload `{id, type, timestamp, data{...}}` (DESIGN.md
//! "The native mapper") → `VideoEvent`. Parses at the edge: ids, times and kinds leave here typed,
//! and nothing downstream sees this JSON. Trusts only what `verify` proved (the delivery id).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::mappers::{invalid, TrackedKind, KIND_NAMES};
use super::{ConfigIssue, MapError, Mapped, Verified};
use crate::event::{
    Assets, EventId, EventKind, FailureReason, ProviderName, Source, VideoEvent, VideoId,
};

type Object = Map<String, Value>;

/// The built-in event types this mapper turns into lifecycle events; any other type is ignored
/// unless the provider's `[provider.types]` adds it.
fn builtin_type(event_type: &str) -> Option<TrackedKind> {
    let tracked = match event_type {
        "video.uploaded" => TrackedKind::Uploaded,
        "video.processing.started" => TrackedKind::ProcessingStarted,
        "video.processing.progress" => TrackedKind::Progress,
        "video.processing.completed" => TrackedKind::ProcessingCompleted,
        "video.ready" => TrackedKind::Ready,
        "video.failed" | "video.processing.failed" => TrackedKind::Failed,
        "video.deleted" => TrackedKind::Deleted,
        _ => return None,
    };
    Some(tracked)
}

/// The event types one provider's native mapper tracks: the built-in ones, plus those its
/// config adds (`[provider.types]`, type → kind).
#[derive(Debug, Clone, Default)]
pub(crate) struct Types {
    added: HashMap<String, TrackedKind>,
}

impl Types {
    pub(crate) fn from_config(types: &BTreeMap<String, String>) -> Result<Types, ConfigIssue> {
        let mut added = HashMap::with_capacity(types.len());
        for (event_type, kind) in types {
            let key = || format!("types.{event_type:?}");
            // Redefining a built-in type would change what stored events mean; only new ones.
            if builtin_type(event_type).is_some() {
                return Err(ConfigIssue::new(
                    key(),
                    "is a built-in type of the native mapper; only other types can be added",
                ));
            }
            let tracked = TrackedKind::from_name(kind).ok_or_else(|| {
                ConfigIssue::new(
                    key(),
                    format!("unknown kind {kind:?} (one of {KIND_NAMES})"),
                )
            })?;
            added.insert(event_type.clone(), tracked);
        }
        Ok(Types { added })
    }

    fn get(&self, event_type: &str) -> Option<TrackedKind> {
        builtin_type(event_type).or_else(|| self.added.get(event_type).copied())
    }
}

/// Maps a verified native body. `received_at` is the arrival time; the event time is the body's
/// `timestamp`, which the fold orders by.
pub(crate) fn map(
    types: &Types,
    provider: &ProviderName,
    verified: &Verified,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Mapped, MapError> {
    let payload: Value = serde_json::from_slice(body).map_err(MapError::NotJson)?;
    let envelope = payload.as_object().ok_or(MapError::NotAnObject)?;
    let event_type = match present(envelope, "type") {
        None => return Err(MapError::MissingEventType),
        Some(Value::String(event_type)) => event_type,
        Some(_) => return Err(MapError::InvalidEventType),
    };
    let event_id = event_id(provider, verified, envelope, body)?;

    let Some(tracked) = types.get(event_type) else {
        // Kept in the audit log only: a video id helps there but is not required, and a bad one
        // is not worth quarantining an event nobody folds.
        let video_id = envelope
            .get("data")
            .and_then(Value::as_object)
            .and_then(|data| video_id(data).ok().flatten());
        return Ok(Mapped::Ignored {
            event_id,
            video_id,
            event_type: event_type.clone(),
        });
    };

    let no_data = Object::new();
    let data = match present(envelope, "data") {
        None => &no_data,
        Some(Value::Object(data)) => data,
        Some(_) => return Err(invalid("/data", "is not an object")),
    };
    let video_id = video_id(data)?.ok_or(MapError::MissingVideoId)?;
    let occurred_at = timestamp(envelope)?;
    let kind = match tracked {
        TrackedKind::Uploaded => EventKind::Uploaded,
        TrackedKind::ProcessingStarted => EventKind::ProcessingStarted,
        TrackedKind::Progress => EventKind::Progress {
            percent: progress(data)?,
        },
        TrackedKind::ProcessingCompleted => EventKind::ProcessingCompleted,
        TrackedKind::Ready => EventKind::Ready,
        TrackedKind::Failed => EventKind::Failed {
            error: failure(data)?,
        },
        TrackedKind::Deleted => EventKind::Deleted,
    };
    Ok(Mapped::Event(VideoEvent {
        event_id,
        video_id,
        provider: provider.clone(),
        kind,
        occurred_at,
        received_at,
        source: Source::Webhook,
        assets: assets(data)?,
        metadata: data.get("metadata").cloned().unwrap_or(Value::Null).into(),
    }))
}

/// The field's value, with JSON `null` read as absent.
fn present<'o>(object: &'o Object, key: &str) -> Option<&'o Value> {
    object.get(key).filter(|value| !value.is_null())
}

fn optional_string(
    object: &Object,
    key: &str,
    pointer: &'static str,
) -> Result<Option<String>, MapError> {
    match present(object, key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(invalid(pointer, "is not a string")),
    }
}

fn event_id(
    provider: &ProviderName,
    verified: &Verified,
    envelope: &Object,
    body: &[u8],
) -> Result<EventId, MapError> {
    // A signed delivery id wins: a body `id` could differ between redeliveries of one message.
    if let Some(delivery_id) = &verified.delivery_id {
        return EventId::parse(delivery_id.as_str()).map_err(|e| MapError::InvalidEventId {
            field: "the delivery id header",
            reason: e.to_string(),
        });
    }
    match present(envelope, "id") {
        None => Ok(stable_event_id(provider, body)),
        Some(Value::String(id)) => {
            EventId::parse(id.as_str()).map_err(|e| MapError::InvalidEventId {
                field: "/id",
                reason: e.to_string(),
            })
        }
        Some(_) => Err(MapError::InvalidEventId {
            field: "/id",
            reason: "is not a string".into(),
        }),
    }
}

/// `sha256:` + hex SHA-256 over the provider name, a 0 byte and the raw body: a redelivery of the
/// same bytes gets the same id, so it dedupes. The 0 byte keeps name and body from running together.
pub(crate) fn stable_event_id(provider: &ProviderName, body: &[u8]) -> EventId {
    let digest = Sha256::new()
        .chain_update(provider.as_str())
        .chain_update([0])
        .chain_update(body)
        .finalize();
    EventId::parse(format!("sha256:{}", hex::encode(digest)))
        .expect("71 printable ASCII characters are a valid event id")
}

fn video_id(data: &Object) -> Result<Option<VideoId>, MapError> {
    for (key, field) in [("videoId", "/data/videoId"), ("video_id", "/data/video_id")] {
        match present(data, key) {
            None => continue,
            Some(Value::String(raw)) => {
                return VideoId::parse(raw.as_str()).map(Some).map_err(|e| {
                    MapError::InvalidVideoId {
                        field,
                        reason: e.to_string(),
                    }
                })
            }
            Some(_) => {
                return Err(MapError::InvalidVideoId {
                    field,
                    reason: "is not a string".into(),
                })
            }
        }
    }
    Ok(None)
}

fn timestamp(envelope: &Object) -> Result<DateTime<Utc>, MapError> {
    match present(envelope, "timestamp") {
        None => Err(MapError::MissingTimestamp),
        Some(Value::String(raw)) => DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| MapError::InvalidTimestamp {
                reason: "is not an RFC 3339 date-time",
            }),
        Some(_) => Err(MapError::InvalidTimestamp {
            reason: "is not a string",
        }),
    }
}

fn progress(data: &Object) -> Result<f64, MapError> {
    let percent = present(data, "progress")
        .ok_or(MapError::InvalidProgress {
            reason: "is missing",
        })?
        .as_f64()
        .ok_or(MapError::InvalidProgress {
            reason: "is not a number",
        })?;
    if !(0.0..=100.0).contains(&percent) {
        return Err(MapError::InvalidProgress {
            reason: "is outside 0..=100",
        });
    }
    Ok(percent)
}

/// `data.error`: `null`, a message, or `{code, message}`.
fn failure(data: &Object) -> Result<Option<FailureReason>, MapError> {
    match present(data, "error") {
        None => Ok(None),
        Some(Value::String(message)) => Ok(Some(FailureReason {
            code: None,
            message: message.clone(),
        })),
        Some(Value::Object(error)) => {
            let code = optional_string(error, "code", "/data/error/code")?;
            let message = optional_string(error, "message", "/data/error/message")?;
            // A bare code still says why; it doubles as the message, which a reason must have.
            let message = message
                .or_else(|| code.clone())
                .ok_or_else(|| invalid("/data/error", "has neither code nor message"))?;
            Ok(Some(FailureReason { code, message }))
        }
        Some(_) => Err(invalid(
            "/data/error",
            "is not null, a string or an object {code, message}",
        )),
    }
}

fn assets(data: &Object) -> Result<Assets, MapError> {
    let assets = match present(data, "assets") {
        None => return Ok(Assets::default()),
        Some(Value::Object(assets)) => assets,
        Some(_) => return Err(invalid("/data/assets", "is not an object")),
    };
    let playback_url = match optional_string(assets, "playbackUrl", "/data/assets/playbackUrl")? {
        Some(url) => Some(url),
        None => optional_string(assets, "playback_url", "/data/assets/playback_url")?,
    };
    Ok(Assets {
        resolutions: resolutions(assets)?,
        poster: optional_string(assets, "poster", "/data/assets/poster")?,
        thumbnail: optional_string(assets, "thumbnail", "/data/assets/thumbnail")?,
        playback_url,
        duration_secs: duration(assets)?,
    })
}

fn resolutions(assets: &Object) -> Result<Vec<String>, MapError> {
    let not_strings = invalid("/data/assets/resolutions", "is not an array of strings");
    match present(assets, "resolutions") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect::<Option<Vec<String>>>()
            .ok_or(not_strings),
        Some(_) => Err(not_strings),
    }
}

fn duration(assets: &Object) -> Result<Option<f64>, MapError> {
    match present(assets, "duration") {
        None => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|secs| *secs >= 0.0)
            .map(Some)
            .ok_or_else(|| {
                invalid(
                    "/data/assets/duration",
                    "is not a non-negative number of seconds",
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::super::test_support::{
        config, fixture, fixture_dir, header_map, provider, vectors, VerifyNow,
    };
    use super::super::{MapError, Mapped, Verified};
    use crate::config::SchemeName;
    use crate::event::{Assets, EventKind, FailureReason, ProviderName, VideoEvent};

    fn received() -> DateTime<Utc> {
        time("2026-11-23T13:00:00Z")
    }

    fn time(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("test time")
            .with_timezone(&Utc)
    }

    fn name(raw: &str) -> ProviderName {
        ProviderName::parse(raw).expect("provider name")
    }

    fn map_with(verified: &Verified, body: &[u8]) -> Result<Mapped, MapError> {
        super::map(
            &super::Types::default(),
            &name("native"),
            verified,
            body,
            received(),
        )
    }

    fn map_body(body: &[u8]) -> Result<Mapped, MapError> {
        map_with(&Verified::default(), body)
    }

    fn event(mapped: Result<Mapped, MapError>) -> VideoEvent {
        match mapped {
            Ok(Mapped::Event(event)) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    fn error_code(mapped: Result<Mapped, MapError>) -> &'static str {
        match mapped {
            Err(error) => error.code(),
            Ok(other) => panic!("expected a MapError, got {other:?}"),
        }
    }

    /// A minimal valid body of `event_type` with `data`.
    fn body(event_type: &str, data: serde_json::Value) -> Vec<u8> {
        json!({"id": "evt_1", "type": event_type, "timestamp": "2026-11-23T12:00:00Z", "data": data})
            .to_string()
            .into_bytes()
    }

    struct Golden {
        file: &'static str,
        kind: EventKind,
        video_id: &'static str,
        event_id: &'static str,
        occurred_at: &'static str,
        assets: Assets,
    }

    fn rendered(resolutions: &[&str], poster: &str, thumbnail: &str) -> Assets {
        Assets {
            resolutions: resolutions.iter().map(|r| r.to_string()).collect(),
            poster: Some(poster.into()),
            thumbnail: Some(thumbnail.into()),
            ..Assets::default()
        }
    }

    fn failed(code: &str, message: &str) -> EventKind {
        EventKind::Failed {
            error: Some(FailureReason {
                code: Some(code.into()),
                message: message.into(),
            }),
        }
    }

    fn standard_golden() -> Vec<Golden> {
        let none = Assets::default;
        vec![
            Golden {
                file: "01-video.uploaded.json",
                kind: EventKind::Uploaded,
                video_id: "vid_8801",
                event_id: "msg_2pY8uQ1vZ0a",
                occurred_at: "2026-11-23T11:00:00.250Z",
                assets: none(),
            },
            Golden {
                file: "02-video.processing.started.json",
                kind: EventKind::ProcessingStarted,
                video_id: "vid_8801",
                event_id: "msg_2pY8uQ1vZ0b",
                occurred_at: "2026-11-23T11:00:01.900Z",
                assets: none(),
            },
            Golden {
                file: "03-video.processing.progress.json",
                kind: EventKind::Progress { percent: 55.0 },
                video_id: "vid_8801",
                event_id: "msg_2pY8uQ1vZ0c",
                occurred_at: "2026-11-23T11:00:07.125Z",
                assets: none(),
            },
            Golden {
                file: "04-video.ready.json",
                kind: EventKind::Ready,
                video_id: "vid_8801",
                event_id: "msg_2pY8uQ1vZ0d",
                occurred_at: "2026-11-23T11:00:20.640Z",
                assets: rendered(
                    &["1080p", "720p", "480p"],
                    "https://cdn.example.test/v/vid_8801/poster.jpg",
                    "https://cdn.example.test/v/vid_8801/thumb.jpg",
                ),
            },
            Golden {
                file: "05-video.failed.json",
                kind: failed("decode_error", "no decodable video stream"),
                video_id: "vid_8802",
                event_id: "msg_2pY8uQ1vZ0e",
                occurred_at: "2026-11-23T11:02:03.000Z",
                assets: none(),
            },
            Golden {
                file: "06-video.deleted-no-body-id.json",
                kind: EventKind::Deleted,
                video_id: "vid_8801",
                // No body id and no delivery id: the stable hash of "standard", 0, the raw body
                // (computed independently with Python's hashlib).
                event_id: "sha256:2d29f2754248d3cb70855c2dd94bd1cab35869a6d025410f1db3b70e12a78b1b",
                occurred_at: "2026-11-25T09:00:00.000Z",
                assets: none(),
            },
        ]
    }

    fn hyperserve_golden() -> Vec<Golden> {
        let none = Assets::default;
        let poster = "https://media.hyperserve.example/vid_9a1/poster.webp";
        let thumbnail = "https://media.hyperserve.example/vid_9a1/thumb_320.webp";
        vec![
            Golden {
                file: "01-video.uploaded.json",
                kind: EventKind::Uploaded,
                video_id: "vid_9a1",
                event_id: "evt_01JD8K3Q0A",
                occurred_at: "2026-11-23T12:00:00.000Z",
                assets: none(),
            },
            Golden {
                file: "02-video.processing.started.json",
                kind: EventKind::ProcessingStarted,
                video_id: "vid_9a1",
                event_id: "evt_01JD8K3Q0B",
                occurred_at: "2026-11-23T12:00:02.310Z",
                assets: none(),
            },
            Golden {
                file: "03-video.processing.completed.json",
                kind: EventKind::ProcessingCompleted,
                video_id: "vid_9a1",
                event_id: "evt_01JD8K3Q0C",
                occurred_at: "2026-11-23T12:01:10.880Z",
                assets: rendered(&["1080p", "720p", "360p"], poster, thumbnail),
            },
            Golden {
                file: "04-video.ready.json",
                kind: EventKind::Ready,
                video_id: "vid_9a1",
                event_id: "evt_01JD8K3Q0D",
                occurred_at: "2026-11-23T12:01:31.002Z",
                assets: rendered(&["2160p", "1080p", "720p", "360p"], poster, thumbnail),
            },
            Golden {
                file: "05-video.failed.json",
                kind: failed("transcode_timeout", "transcoder exceeded 900s"),
                video_id: "vid_9b2",
                event_id: "evt_01JD8K3Q0E",
                occurred_at: "2026-11-23T12:03:00.500Z",
                assets: none(),
            },
            Golden {
                file: "06-video.processing.failed-snake_case-video_id.json",
                kind: failed("unsupported_codec", "prores 4444 xq not supported"),
                video_id: "vid_9c3",
                event_id: "evt_01JD8K3Q0F",
                occurred_at: "2026-11-23T12:04:00.000Z",
                assets: none(),
            },
        ]
    }

    #[test]
    fn every_native_fixture_maps_to_its_golden_event() {
        for (dir, golden) in [
            ("standard", standard_golden()),
            ("hyperserve", hyperserve_golden()),
        ] {
            let mut files: Vec<String> = std::fs::read_dir(fixture_dir().join(dir))
                .expect("fixture directory")
                .map(|entry| {
                    entry
                        .expect("dir entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            files.sort();
            let expected: Vec<&str> = golden.iter().map(|g| g.file).collect();
            assert_eq!(files, expected, "every {dir} fixture has a golden entry");

            for g in golden {
                let body = fixture(&format!("{dir}/{}", g.file));
                let event = event(super::map(
                    &super::Types::default(),
                    &name(dir),
                    &Verified::default(),
                    &body,
                    received(),
                ));
                assert_eq!(event.kind, g.kind, "{dir}/{}", g.file);
                assert_eq!(event.video_id.as_str(), g.video_id, "{dir}/{}", g.file);
                assert_eq!(event.event_id.as_str(), g.event_id, "{dir}/{}", g.file);
                assert_eq!(event.occurred_at, time(g.occurred_at), "{dir}/{}", g.file);
                assert_eq!(event.assets, g.assets, "{dir}/{}", g.file);
                assert_eq!(event.provider.as_str(), dir);
                assert_eq!(event.received_at, received());
            }
        }
    }

    fn types(pairs: &[(&str, &str)]) -> Result<super::Types, super::ConfigIssue> {
        super::Types::from_config(
            &pairs
                .iter()
                .map(|(t, k)| (t.to_string(), k.to_string()))
                .collect(),
        )
    }

    #[test]
    fn a_configured_type_is_tracked_as_its_kind_and_others_stay_ignored() {
        let added = types(&[
            ("video.encoded", "processing_completed"),
            ("video.encoding.progress", "progress"),
        ])
        .expect("valid types");
        let encoded = body("video.encoded", json!({"videoId": "vid_1"}));
        let plain = super::map(
            &super::Types::default(),
            &name("p"),
            &Verified::default(),
            &encoded,
            received(),
        );
        assert!(matches!(plain, Ok(Mapped::Ignored { .. })), "{plain:?}");
        let mapped = event(super::map(
            &added,
            &name("p"),
            &Verified::default(),
            &encoded,
            received(),
        ));
        assert_eq!(mapped.kind, EventKind::ProcessingCompleted);
        assert_eq!(mapped.event_id.as_str(), "evt_1");
        let progress = body(
            "video.encoding.progress",
            json!({"videoId": "vid_1", "progress": 40}),
        );
        let mapped = event(super::map(
            &added,
            &name("p"),
            &Verified::default(),
            &progress,
            received(),
        ));
        assert_eq!(mapped.kind, EventKind::Progress { percent: 40.0 });
        let other = body("video.caption.ready", json!({"videoId": "vid_1"}));
        let other = super::map(&added, &name("p"), &Verified::default(), &other, received());
        assert!(matches!(other, Ok(Mapped::Ignored { .. })), "{other:?}");
    }

    #[test]
    fn the_types_table_refuses_built_in_types_and_unknown_kinds() {
        let built_in = types(&[("video.ready", "failed")]).unwrap_err();
        assert_eq!(built_in.key, "types.\"video.ready\"");
        assert!(built_in.reason.contains("built-in"), "{}", built_in.reason);
        let unknown = types(&[("video.encoded", "encoded")]).unwrap_err();
        assert!(
            unknown.reason.contains("unknown kind"),
            "{}",
            unknown.reason
        );
    }

    #[test]
    fn metadata_is_kept_untouched() {
        let event = event(super::map(
            &super::Types::default(),
            &name("hyperserve"),
            &Verified::default(),
            &fixture("hyperserve/01-video.uploaded.json"),
            received(),
        ));
        assert_eq!(
            event.metadata,
            json!({"projectId": "prj_31", "title": "Launch teaser", "tags": ["marketing", "q4"]})
        );
    }

    #[test]
    fn absent_metadata_is_null() {
        let event = event(map_body(&body(
            "video.uploaded",
            json!({"videoId": "vid_1"}),
        )));
        assert_eq!(event.metadata, serde_json::Value::Null);
    }

    #[test]
    fn snake_case_video_id_is_accepted() {
        let event = event(map_body(&body(
            "video.uploaded",
            json!({"video_id": "vid_snake"}),
        )));
        assert_eq!(event.video_id.as_str(), "vid_snake");
    }

    #[test]
    fn delivery_id_wins_over_body_id() {
        let verified = Verified {
            delivery_id: Some("msg_from_header".into()),
            ..Verified::default()
        };
        let event = event(map_with(
            &verified,
            &body("video.uploaded", json!({"videoId": "vid_1"})),
        ));
        assert_eq!(event.event_id.as_str(), "msg_from_header");
    }

    #[test]
    fn missing_body_id_falls_back_to_the_verified_delivery_id() {
        // The real vector for standard/06 (no body id): verify, then map.
        let vector = vectors("standard")
            .into_iter()
            .find(|v| v["id"] == "msg_2pY8uQ1vZ0f")
            .expect("the vector of standard/06");
        let scheme = provider(config(
            "standard",
            SchemeName::Standard,
            &[vector["secret"].as_str().expect("secret")],
        ));
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .expect("headers")
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().expect("value").to_owned()))
            .collect();
        let body = vector["body"].as_str().expect("body").as_bytes();
        let now = DateTime::from_timestamp(vector["timestamp"].as_i64().expect("ts"), 0)
            .expect("valid timestamp");
        let verified = scheme
            .verify_now(&header_map(&headers), body, now)
            .expect("vector verifies");
        let event = event(scheme.map(&verified, body, received()));
        assert_eq!(event.event_id.as_str(), "msg_2pY8uQ1vZ0f");
        assert_eq!(event.kind, EventKind::Deleted);
    }

    #[test]
    fn missing_body_and_delivery_id_falls_back_to_a_stable_hash() {
        let raw = fixture("standard/06-video.deleted-no-body-id.json");
        let first = event(super::map(
            &super::Types::default(),
            &name("standard"),
            &Verified::default(),
            &raw,
            received(),
        ));
        let again = event(super::map(
            &super::Types::default(),
            &name("standard"),
            &Verified::default(),
            &raw,
            time("2030-01-01T00:00:00Z"),
        ));
        let elsewhere = event(super::map(
            &super::Types::default(),
            &name("other"),
            &Verified::default(),
            &raw,
            received(),
        ));
        assert_eq!(first.event_id, again.event_id);
        assert_ne!(first.event_id, elsewhere.event_id);
        assert!(first.event_id.as_str().starts_with("sha256:"));
        assert_eq!(first.event_id.as_str().len(), "sha256:".len() + 64);
    }

    #[test]
    fn untracked_type_is_ignored() {
        let mapped = map_body(&body(
            "video.thumbnail.generated",
            json!({"videoId": "vid_1"}),
        ));
        match mapped {
            Ok(Mapped::Ignored {
                event_id,
                video_id,
                event_type,
            }) => {
                assert_eq!(event_id.as_str(), "evt_1");
                assert_eq!(
                    video_id.map(|v| v.as_str().to_owned()).as_deref(),
                    Some("vid_1")
                );
                assert_eq!(event_type, "video.thumbnail.generated");
            }
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn untracked_type_needs_no_video_id_nor_timestamp() {
        let raw = br#"{"id": "evt_9", "type": "account.updated", "data": "anything"}"#;
        match map_body(raw) {
            Ok(Mapped::Ignored { video_id, .. }) => assert_eq!(video_id, None),
            other => panic!("expected Ignored, got {other:?}"),
        }
    }

    #[test]
    fn body_that_is_not_json_is_rejected() {
        assert_eq!(error_code(map_body(b"<xml/>")), "not_json");
        assert_eq!(error_code(map_body(b"")), "not_json");
        assert_eq!(error_code(map_body(b"[1, 2]")), "not_an_object");
    }

    #[test]
    fn missing_or_non_string_type_is_rejected() {
        assert_eq!(
            error_code(map_body(br#"{"id": "e"}"#)),
            "missing_event_type"
        );
        assert_eq!(
            error_code(map_body(br#"{"type": 7}"#)),
            "invalid_event_type"
        );
    }

    #[test]
    fn missing_video_id_is_rejected() {
        assert_eq!(
            error_code(map_body(&body("video.ready", json!({"progress": 100})))),
            "missing_video_id"
        );
        let no_data = br#"{"id": "e", "type": "video.ready", "timestamp": "2026-11-23T12:00:00Z"}"#;
        assert_eq!(error_code(map_body(no_data)), "missing_video_id");
    }

    #[test]
    fn invalid_video_id_is_rejected() {
        for data in [
            json!({"videoId": ""}),
            json!({"videoId": 42}),
            json!({"video_id": "a\nb"}),
        ] {
            assert_eq!(
                error_code(map_body(&body("video.ready", data))),
                "invalid_video_id"
            );
        }
    }

    #[test]
    fn invalid_event_id_is_rejected() {
        let raw = br#"{"id": 12, "type": "video.ready", "timestamp": "2026-11-23T12:00:00Z", "data": {"videoId": "v"}}"#;
        assert_eq!(error_code(map_body(raw)), "invalid_event_id");
    }

    #[test]
    fn unreadable_timestamp_is_rejected() {
        for timestamp in [
            json!("yesterday"),
            json!("2026-11-23 12:00"),
            json!(1795438820),
        ] {
            let raw = json!({"id": "e", "type": "video.ready", "timestamp": timestamp, "data": {"videoId": "v"}});
            assert_eq!(
                error_code(map_body(raw.to_string().as_bytes())),
                "invalid_timestamp",
                "{timestamp}"
            );
        }
        let missing = json!({"id": "e", "type": "video.ready", "data": {"videoId": "v"}});
        assert_eq!(
            error_code(map_body(missing.to_string().as_bytes())),
            "missing_timestamp"
        );
    }

    #[test]
    fn timestamp_with_offset_is_converted_to_utc() {
        let raw = json!({"id": "e", "type": "video.ready", "timestamp": "2026-11-23T13:00:00+01:00", "data": {"videoId": "v"}});
        let event = event(map_body(raw.to_string().as_bytes()));
        assert_eq!(event.occurred_at, time("2026-11-23T12:00:00Z"));
    }

    #[test]
    fn progress_must_be_a_number_from_0_to_100() {
        for data in [
            json!({"videoId": "v"}),
            json!({"videoId": "v", "progress": null}),
            json!({"videoId": "v", "progress": "55"}),
            json!({"videoId": "v", "progress": -1}),
            json!({"videoId": "v", "progress": 100.5}),
        ] {
            assert_eq!(
                error_code(map_body(&body("video.processing.progress", data.clone()))),
                "invalid_progress",
                "{data}"
            );
        }
        let event = event(map_body(&body(
            "video.processing.progress",
            json!({"videoId": "v", "progress": 12.5}),
        )));
        assert_eq!(event.kind, EventKind::Progress { percent: 12.5 });
    }

    #[test]
    fn failure_error_may_be_null_a_string_or_an_object() {
        let cases = [
            (json!(null), None),
            (
                json!("disk full"),
                Some(FailureReason {
                    code: None,
                    message: "disk full".into(),
                }),
            ),
            (
                json!({"code": "e1", "message": "broken"}),
                Some(FailureReason {
                    code: Some("e1".into()),
                    message: "broken".into(),
                }),
            ),
            (
                json!({"code": "e2"}),
                Some(FailureReason {
                    code: Some("e2".into()),
                    message: "e2".into(),
                }),
            ),
        ];
        for (error, expected) in cases {
            let event = event(map_body(&body(
                "video.processing.failed",
                json!({"videoId": "v", "error": error}),
            )));
            assert_eq!(event.kind, EventKind::Failed { error: expected });
        }
        for bad in [json!(42), json!({}), json!({"message": 3})] {
            let data = json!({"videoId": "v", "error": bad});
            assert_eq!(
                error_code(map_body(&body("video.failed", data))),
                "invalid_field"
            );
        }
    }

    #[test]
    fn playback_url_and_duration_are_read_in_either_spelling() {
        for key in ["playbackUrl", "playback_url"] {
            let data = json!({"videoId": "v", "assets": {key: "https://cdn.test/v.m3u8", "duration": 61.5}});
            let event = event(map_body(&body("video.ready", data)));
            assert_eq!(
                event.assets.playback_url.as_deref(),
                Some("https://cdn.test/v.m3u8")
            );
            assert_eq!(event.assets.duration_secs, Some(61.5));
        }
    }

    #[test]
    fn mistyped_assets_are_rejected() {
        for assets in [
            json!("none"),
            json!({"resolutions": "1080p"}),
            json!({"resolutions": [1080]}),
            json!({"poster": 1}),
            json!({"duration": "61"}),
            json!({"duration": -1}),
        ] {
            let data = json!({"videoId": "v", "assets": assets});
            assert_eq!(
                error_code(map_body(&body("video.ready", data))),
                "invalid_field",
                "{assets}"
            );
        }
    }

    #[test]
    fn map_error_messages_name_fields_not_values() {
        let error = match map_body(&body("video.ready", json!({"videoId": "secret\u{7}value"}))) {
            Err(error) => error,
            Ok(other) => panic!("expected an error, got {other:?}"),
        };
        let message = error.to_string();
        assert_eq!(message, "field /data/videoId contains a control character");
    }
}
