//! The `fal` mapper: fal.ai queue webhooks (terminal notifications only) → `ready` or `failed`.
//!
//! The request id is both the video (the job the app submitted; `gateway_request_id` changes on
//! fal's own retries and is kept in metadata) and the event id, so a redelivery dedupes. fal puts
//! no time in the body: the event time is the signed `X-Fal-Webhook-Timestamp`, else arrival.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::{at, event_id, first_text, required_text, unix_time, video_id};
use crate::event::{Assets, EventKind, FailureReason, ProviderName, Source, VideoEvent};
use crate::providers::{MapError, Mapped, Verified};

const TIMESTAMP_HEADER: &str = "x-fal-webhook-timestamp";

pub(crate) fn map(
    provider: &ProviderName,
    verified: &Verified,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Mapped, MapError> {
    let payload = super::parse_object(body)?;
    let request_id = required_text(&payload, "/request_id")?;
    let event_id = event_id(request_id, "/request_id")?;
    let video_id = video_id(request_id, "/request_id")?;
    let status = first_text(&payload, &["/status"])?.ok_or(MapError::MissingField {
        pointer: "/status".into(),
    })?;
    let output_url = first_text(&payload, &["/payload/video/url"])?;
    let payload_error = first_text(&payload, &["/payload_error"])?;
    let kind = match status {
        // `OK` whose payload could not be delivered is no playable result.
        "OK" if at(&payload, "/payload").is_none() && payload_error.is_some() => {
            EventKind::Failed {
                error: Some(FailureReason {
                    code: Some("payload_error".into()),
                    message: payload_error.unwrap_or_default().to_string(),
                }),
            }
        }
        "OK" => EventKind::Ready,
        "ERROR" => EventKind::Failed {
            error: Some(failure(&payload)?),
        },
        other => {
            return Ok(Mapped::Ignored {
                event_id,
                video_id: Some(video_id),
                event_type: format!("status={other}"),
            })
        }
    };
    let mut metadata = Map::new();
    if let Some(gateway) = first_text(&payload, &["/gateway_request_id"])? {
        metadata.insert("fal_gateway_request_id".into(), json!(gateway));
    }
    Ok(Mapped::Event(VideoEvent {
        event_id,
        video_id,
        provider: provider.clone(),
        kind,
        occurred_at: event_time(verified).unwrap_or(received_at),
        received_at,
        source: Source::Webhook,
        assets: Assets {
            playback_url: output_url.map(str::to_string),
            ..Assets::default()
        },
        metadata: Value::Object(metadata).into(),
    }))
}

/// The signed timestamp: from the scheme, or read back from the kept headers (a replay).
fn event_time(verified: &Verified) -> Option<DateTime<Utc>> {
    verified.signed_at.or_else(|| {
        verified
            .headers
            .iter()
            .find(|(name, _)| name == TIMESTAMP_HEADER)
            .and_then(|(_, value)| value.trim().parse::<f64>().ok())
            .and_then(unix_time)
    })
}

/// `/error` (fal's summary) and the validation detail messages of `/payload/detail`.
fn failure(payload: &Value) -> Result<FailureReason, MapError> {
    let summary = first_text(payload, &["/error"])?;
    let details: Vec<&str> = match at(payload, "/payload/detail") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item["msg"].as_str())
            .collect(),
        Some(Value::String(detail)) => vec![detail.as_str()],
        _ => Vec::new(),
    };
    let message = match (summary, details.is_empty()) {
        (Some(summary), true) => summary.to_string(),
        (Some(summary), false) => format!("{summary}: {}", details.join("; ")),
        (None, false) => details.join("; "),
        (None, true) => "fal reported an error without a message".to_string(),
    };
    Ok(FailureReason {
        code: None,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::super::golden::{event, map_fixture, map_with, received_at, time};
    use crate::config::MapperConfig;
    use crate::event::EventKind;
    use crate::providers::test_support::fixture;
    use crate::providers::Verified;

    #[test]
    fn ok_is_ready_with_the_output_video() {
        let event = event(map_fixture("fal", "fal/01-ok-video.json").unwrap());
        assert_eq!(event.kind, EventKind::Ready);
        assert_eq!(
            event.video_id.as_str(),
            "6d1f0b3e-58a2-4c9e-b7d4-2e90a1c3f5b7"
        );
        assert_eq!(
            event.event_id.as_str(),
            "6d1f0b3e-58a2-4c9e-b7d4-2e90a1c3f5b7"
        );
        assert_eq!(
            event.assets.playback_url.as_deref(),
            Some("https://v3.fal.media/files/penguin/Xk29_output.mp4")
        );
        // No signed time given: arrival.
        assert_eq!(event.occurred_at, received_at());
    }

    #[test]
    fn a_retried_job_is_named_by_its_request_id_not_the_gateway_id() {
        let event = event(map_fixture("fal", "fal/02-ok-retried-gateway-id.json").unwrap());
        assert_eq!(
            event.video_id.as_str(),
            "0c8e4a61-93d7-4f25-a1b0-6e2d9c7f3a48"
        );
        assert_eq!(
            event.metadata["fal_gateway_request_id"],
            "f4b2d8e6-1a3c-4e5f-9b7d-0c2e4a6b8d1f"
        );
    }

    #[test]
    fn error_and_payload_error_are_failures_with_their_messages() {
        match event(map_fixture("fal", "fal/03-error-validation.json").unwrap()).kind {
            EventKind::Failed { error: Some(error) } => {
                assert_eq!(error.message, "Invalid status code: 422: field required")
            }
            other => panic!("expected failed, got {other:?}"),
        }
        match event(map_fixture("fal", "fal/04-ok-payload-error.json").unwrap()).kind {
            EventKind::Failed { error: Some(error) } => {
                assert_eq!(error.code.as_deref(), Some("payload_error"));
                assert!(error.message.starts_with("Response payload is not JSON"));
            }
            other => panic!("expected failed, got {other:?}"),
        }
    }

    #[test]
    fn the_signed_timestamp_is_the_event_time_also_when_read_back_from_headers() {
        let signed = Verified {
            signed_at: Some(time("2026-11-23T11:00:00Z")),
            ..Verified::default()
        };
        let body = fixture("fal/01-ok-video.json");
        let mapper = || MapperConfig::Builtin("fal".into());
        let live = event(map_with(mapper(), &signed, &body).unwrap());
        assert_eq!(live.occurred_at, time("2026-11-23T11:00:00Z"));
        let recalled = Verified {
            headers: vec![("x-fal-webhook-timestamp".into(), "1795431600".into())],
            ..Verified::default()
        };
        let replayed = event(map_with(mapper(), &recalled, &body).unwrap());
        assert_eq!(replayed.occurred_at, time("2026-11-23T11:00:00Z"));
    }

    #[test]
    fn a_body_without_request_id_is_refused_naming_the_field() {
        let error = map_with(
            MapperConfig::Builtin("fal".into()),
            &Verified::default(),
            br#"{"status":"OK","payload":{}}"#,
        )
        .unwrap_err();
        assert_eq!(error.code(), "missing_field");
        assert!(error.to_string().contains("/request_id"));
    }
}
