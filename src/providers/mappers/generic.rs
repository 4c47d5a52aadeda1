//! The generic mapper: a `[provider.mapper]` table of JSON pointers and a type → kind table, so a
//! provider nobody wrote code for is one config entry.
//!
//! Types absent from the table are ignored (kept in the audit log); without an `event_id` pointer
//! (or a signed delivery id) the event id is the stable hash of provider and raw body; without a
//! `timestamp` pointer the event time is the arrival time.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    at, event_id, percent_at, required_text, text, time_at, video_id, TrackedKind, KIND_NAMES,
};
use crate::config::GenericMapperConfig;
use crate::event::{Assets, EventKind, FailureReason, ProviderName, Source, VideoEvent};
use crate::providers::native::stable_event_id;
use crate::providers::{ConfigIssue, MapError, Mapped, Verified};

#[derive(Debug)]
pub(crate) struct GenericMapper {
    event_type: String,
    video_id: String,
    event_id: Option<String>,
    timestamp: Option<String>,
    progress: Option<String>,
    error: Option<String>,
    metadata: Option<String>,
    playback_url: Option<String>,
    thumbnail: Option<String>,
    types: HashMap<String, TrackedKind>,
}

impl GenericMapper {
    /// Validates every pointer and kind, so a typo stops start-up instead of quarantining traffic.
    pub(crate) fn from_config(config: &GenericMapperConfig) -> Result<GenericMapper, ConfigIssue> {
        let pointer = |key: &str, value: &Option<String>| -> Result<Option<String>, ConfigIssue> {
            match value {
                Some(p) if !p.starts_with('/') => Err(ConfigIssue::new(
                    format!("mapper.{key}"),
                    format!("{p:?} is not a JSON pointer (RFC 6901: it starts with '/')"),
                )),
                other => Ok(other.clone()),
            }
        };
        let mut types = HashMap::with_capacity(config.types.len());
        for (provider_type, kind) in &config.types {
            let kind = TrackedKind::from_name(kind).ok_or_else(|| {
                ConfigIssue::new(
                    format!("mapper.types.{provider_type}"),
                    format!("{kind:?} is not a lifecycle kind (one of: {KIND_NAMES})"),
                )
            })?;
            types.insert(provider_type.clone(), kind);
        }
        if types.is_empty() {
            return Err(ConfigIssue::new(
                "mapper.types",
                "maps no event type to a lifecycle kind, so every event would be ignored",
            ));
        }
        Ok(GenericMapper {
            event_type: pointer("event_type", &Some(config.event_type.clone()))?
                .unwrap_or_default(),
            video_id: pointer("video_id", &Some(config.video_id.clone()))?.unwrap_or_default(),
            event_id: pointer("event_id", &config.event_id)?,
            timestamp: pointer("timestamp", &config.timestamp)?,
            progress: pointer("progress", &config.progress)?,
            error: pointer("error", &config.error)?,
            metadata: pointer("metadata", &config.metadata)?,
            playback_url: pointer("playback_url", &config.playback_url)?,
            thumbnail: pointer("thumbnail", &config.thumbnail)?,
            types,
        })
    }

    pub(crate) fn map(
        &self,
        provider: &ProviderName,
        verified: &Verified,
        body: &[u8],
        received_at: DateTime<Utc>,
    ) -> Result<Mapped, MapError> {
        let payload = super::parse_object(body)?;
        let event_type = match at(&payload, &self.event_type) {
            None => return Err(MapError::MissingEventType),
            Some(Value::String(event_type)) => event_type.as_str(),
            Some(_) => return Err(MapError::InvalidEventType),
        };
        let event_id = match (&verified.delivery_id, &self.event_id) {
            (Some(delivery_id), _) => event_id(delivery_id, "the delivery id header")?,
            (None, Some(pointer)) => event_id(required_text(&payload, pointer)?, pointer)?,
            (None, None) => stable_event_id(provider, body),
        };
        let Some(kind) = self.types.get(event_type) else {
            let video_id = text(&payload, &self.video_id)
                .ok()
                .flatten()
                .and_then(|raw| video_id(raw, &self.video_id).ok());
            return Ok(Mapped::Ignored {
                event_id,
                video_id,
                event_type: event_type.to_string(),
            });
        };
        let video_id = video_id(required_text(&payload, &self.video_id)?, &self.video_id)?;
        let occurred_at = match &self.timestamp {
            Some(pointer) => time_at(&payload, pointer)?.ok_or(MapError::MissingTimestamp)?,
            None => received_at,
        };
        let kind = match kind {
            TrackedKind::Uploaded => EventKind::Uploaded,
            TrackedKind::ProcessingStarted => EventKind::ProcessingStarted,
            TrackedKind::Progress => {
                let percent = match &self.progress {
                    Some(pointer) => percent_at(&payload, pointer)?,
                    None => None,
                };
                percent.map_or(EventKind::ProcessingStarted, |percent| {
                    EventKind::Progress { percent }
                })
            }
            TrackedKind::ProcessingCompleted => EventKind::ProcessingCompleted,
            TrackedKind::Ready => EventKind::Ready,
            TrackedKind::Failed => EventKind::Failed {
                error: self.failure(&payload),
            },
            TrackedKind::Deleted => EventKind::Deleted,
        };
        let string_at = |pointer: &Option<String>| -> Result<Option<String>, MapError> {
            match pointer {
                Some(pointer) => Ok(text(&payload, pointer)?.map(str::to_string)),
                None => Ok(None),
            }
        };
        Ok(Mapped::Event(VideoEvent {
            event_id,
            video_id,
            provider: provider.clone(),
            kind,
            occurred_at,
            received_at,
            source: Source::Webhook,
            assets: Assets {
                playback_url: string_at(&self.playback_url)?,
                thumbnail: string_at(&self.thumbnail)?,
                ..Assets::default()
            },
            metadata: self
                .metadata
                .as_deref()
                .and_then(|pointer| at(&payload, pointer))
                .cloned()
                .unwrap_or(Value::Null)
                .into(),
        }))
    }

    /// Whatever sits at the `error` pointer, as the reason: a string, or any JSON as text.
    fn failure(&self, payload: &Value) -> Option<FailureReason> {
        let error = at(payload, self.error.as_deref()?)?;
        let message = match error {
            Value::String(message) => message.clone(),
            other => other.to_string(),
        };
        Some(FailureReason {
            code: None,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::golden::{event, map_with, provider_config, received_at, time};
    use crate::config::{GenericMapperConfig, MapperConfig};
    use crate::event::EventKind;
    use crate::providers::{Mapped, Providers, Verified};

    fn acme() -> GenericMapperConfig {
        GenericMapperConfig {
            event_type: "/event".into(),
            video_id: "/asset/id".into(),
            event_id: Some("/delivery".into()),
            timestamp: Some("/at".into()),
            progress: Some("/asset/percent".into()),
            error: Some("/asset/error".into()),
            metadata: Some("/asset/labels".into()),
            playback_url: Some("/asset/hls".into()),
            thumbnail: None,
            types: BTreeMap::from([
                ("asset.created".into(), "uploaded".into()),
                ("asset.encoding".into(), "progress".into()),
                ("asset.live".into(), "ready".into()),
                ("asset.broken".into(), "failed".into()),
            ]),
        }
    }

    fn map(config: GenericMapperConfig, body: &str) -> Mapped {
        map_with(
            MapperConfig::Generic(Box::new(config)),
            &Verified::default(),
            body.as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn pointers_and_the_type_table_make_an_event() {
        let body = r#"{"event":"asset.encoding","delivery":"d-1","at":1795428000,
            "asset":{"id":"a-9","percent":"40","labels":{"team":"x"}}}"#;
        let event = event(map(acme(), body));
        assert_eq!(event.kind, EventKind::Progress { percent: 40.0 });
        assert_eq!(event.video_id.as_str(), "a-9");
        assert_eq!(event.event_id.as_str(), "d-1");
        assert_eq!(event.occurred_at, time("2026-11-23T10:00:00Z"));
        assert_eq!(event.metadata["team"], "x");

        let live = r#"{"event":"asset.live","delivery":"d-2","at":"2026-11-23T10:01:00Z",
            "asset":{"id":"a-9","hls":"https://cdn/a-9.m3u8"}}"#;
        let event = super::super::golden::event(map(acme(), live));
        assert_eq!(event.kind, EventKind::Ready);
        assert_eq!(
            event.assets.playback_url.as_deref(),
            Some("https://cdn/a-9.m3u8")
        );
    }

    #[test]
    fn unlisted_types_are_ignored_and_a_listed_one_is_an_event_once_added() {
        let body =
            r#"{"event":"asset.archived","delivery":"d-3","at":1795428000,"asset":{"id":"a-9"}}"#;
        assert!(matches!(map(acme(), body), Mapped::Ignored { .. }));
        let mut extended = acme();
        extended
            .types
            .insert("asset.archived".into(), "deleted".into());
        assert_eq!(event(map(extended, body)).kind, EventKind::Deleted);
    }

    #[test]
    fn without_id_and_time_pointers_the_hash_and_arrival_stand_in() {
        let mut config = acme();
        config.event_id = None;
        config.timestamp = None;
        let body = r#"{"event":"asset.broken","asset":{"id":"a-9","error":{"why":"codec"}}}"#;
        let event = event(map(config, body));
        assert!(event.event_id.as_str().starts_with("sha256:"));
        assert_eq!(event.occurred_at, received_at());
        match event.kind {
            EventKind::Failed { error: Some(error) } => {
                assert_eq!(error.message, r#"{"why":"codec"}"#)
            }
            other => panic!("expected failed, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_video_id_names_the_configured_pointer() {
        let body = r#"{"event":"asset.live","delivery":"d-4","at":1795428000,"asset":{}}"#;
        let error = map_with(
            MapperConfig::Generic(Box::new(acme())),
            &Verified::default(),
            body.as_bytes(),
        )
        .unwrap_err();
        assert_eq!(error.code(), "missing_field");
        assert!(error.to_string().contains("/asset/id"), "{error}");
    }

    #[test]
    fn bad_pointers_and_unknown_kinds_stop_start_up_naming_the_key() {
        let mut config = acme();
        config.video_id = "asset.id".into();
        let error =
            Providers::from_config(&[provider_config(MapperConfig::Generic(Box::new(config)))])
                .unwrap_err();
        assert_eq!(error.key, "mapper.video_id");

        let mut config = acme();
        config.types.insert("asset.gone".into(), "vanished".into());
        let error =
            Providers::from_config(&[provider_config(MapperConfig::Generic(Box::new(config)))])
                .unwrap_err();
        assert_eq!(error.key, "mapper.types.asset.gone");
        assert!(error.reason.contains("vanished"));
    }
}
