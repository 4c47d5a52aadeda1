//! Mappers for the payloads of named providers (Mux, Cloudflare Stream, fal, api.video) and the
//! generic JSON-pointer mapper, one file each, beside [`super::native`]. Each turns a verified body
//! into a [`Mapped`](super::Mapped) and leaves nothing provider-shaped behind: ids, times and kinds
//! leave typed. What they share, reading JSON by pointer with errors that name the pointer, is here.

pub mod api_video;
pub mod cloudflare_stream;
pub mod fal;
pub mod generic;
pub mod mux;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::MapError;
use crate::event::{EventId, VideoId};

/// A lifecycle kind before the event's data fills it in, as configs name it ([`EventKind::name`]):
/// what a type table (`[provider.types]`, the generic mapper's `types`) maps a provider's type to.
///
/// [`EventKind::name`]: crate::event::EventKind::name
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TrackedKind {
    Uploaded,
    ProcessingStarted,
    Progress,
    ProcessingCompleted,
    Ready,
    Failed,
    Deleted,
}

/// Every name [`TrackedKind::from_name`] takes, for error messages.
pub(crate) const KIND_NAMES: &str =
    "uploaded, processing_started, progress, processing_completed, ready, failed, deleted";

impl TrackedKind {
    pub(crate) fn from_name(name: &str) -> Option<TrackedKind> {
        let kind = match name {
            "uploaded" => TrackedKind::Uploaded,
            "processing_started" => TrackedKind::ProcessingStarted,
            "progress" => TrackedKind::Progress,
            "processing_completed" => TrackedKind::ProcessingCompleted,
            "ready" => TrackedKind::Ready,
            "failed" => TrackedKind::Failed,
            "deleted" => TrackedKind::Deleted,
            _ => return None,
        };
        Some(kind)
    }
}

/// The body as a JSON object, or why it is not one.
pub(crate) fn parse_object(body: &[u8]) -> Result<Value, MapError> {
    let payload: Value = serde_json::from_slice(body).map_err(MapError::NotJson)?;
    if !payload.is_object() {
        return Err(MapError::NotAnObject);
    }
    Ok(payload)
}

/// The value at `pointer`, with JSON `null` read as absent.
pub(crate) fn at<'v>(payload: &'v Value, pointer: &str) -> Option<&'v Value> {
    payload.pointer(pointer).filter(|value| !value.is_null())
}

/// A string at `pointer`; an empty string counts as absent (providers send `""` for "none").
pub(crate) fn text<'v>(payload: &'v Value, pointer: &str) -> Result<Option<&'v str>, MapError> {
    match at(payload, pointer) {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(pointer, "is not a string")),
    }
}

/// The first of `pointers` holding a non-empty string.
pub(crate) fn first_text<'v>(
    payload: &'v Value,
    pointers: &[&str],
) -> Result<Option<&'v str>, MapError> {
    for pointer in pointers {
        if let Some(found) = text(payload, pointer)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

pub(crate) fn required_text<'v>(payload: &'v Value, pointer: &str) -> Result<&'v str, MapError> {
    text(payload, pointer)?.ok_or_else(|| MapError::MissingField {
        pointer: pointer.to_string(),
    })
}

pub(crate) fn video_id(raw: &str, pointer: &str) -> Result<VideoId, MapError> {
    VideoId::parse(raw).map_err(|e| MapError::InvalidField {
        pointer: pointer.to_string(),
        reason: format!("is not a valid video id: {e}"),
    })
}

pub(crate) fn event_id(raw: &str, pointer: &str) -> Result<EventId, MapError> {
    EventId::parse(raw).map_err(|e| MapError::InvalidEventId {
        field: "the event id",
        reason: format!("at {pointer}: {e}"),
    })
}

/// An event time as providers spell it: an RFC 3339 string, or Unix time as a number or a
/// numeric string (seconds, or milliseconds when it is too large to be seconds).
pub(crate) fn time_at(payload: &Value, pointer: &str) -> Result<Option<DateTime<Utc>>, MapError> {
    let seconds = match at(payload, pointer) {
        None => return Ok(None),
        Some(Value::String(raw)) => match DateTime::parse_from_rfc3339(raw) {
            Ok(time) => return Ok(Some(time.with_timezone(&Utc))),
            Err(_) => raw.trim().parse::<f64>().map_err(|_| {
                invalid(pointer, "is neither an RFC 3339 date-time nor a Unix time")
            })?,
        },
        Some(Value::Number(number)) => number
            .as_f64()
            .ok_or_else(|| invalid(pointer, "is not a Unix time"))?,
        Some(_) => return Err(invalid(pointer, "is not a date-time")),
    };
    unix_time(seconds)
        .map(Some)
        .ok_or_else(|| invalid(pointer, "is not a Unix time in range"))
}

/// Seconds since the epoch; a value past year 5138 in seconds is read as milliseconds.
pub(crate) fn unix_time(value: f64) -> Option<DateTime<Utc>> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let millis = if value >= 1e11 { value } else { value * 1000.0 };
    Utc.timestamp_millis_opt(millis.round() as i64).single()
}

/// A percentage as a number or a numeric string (Cloudflare sends `"62.000000"`), in 0..=100.
pub(crate) fn percent_at(payload: &Value, pointer: &str) -> Result<Option<f64>, MapError> {
    let percent = match at(payload, pointer) {
        None => return Ok(None),
        Some(Value::String(raw)) if raw.trim().is_empty() => return Ok(None),
        Some(Value::String(raw)) => raw
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid(pointer, "is not a number"))?,
        Some(Value::Number(number)) => number
            .as_f64()
            .ok_or_else(|| invalid(pointer, "is not a number"))?,
        Some(_) => return Err(invalid(pointer, "is not a number")),
    };
    if !(0.0..=100.0).contains(&percent) {
        return Err(invalid(pointer, "is outside 0..=100"));
    }
    Ok(Some(percent))
}

pub(crate) fn invalid(pointer: &str, reason: &str) -> MapError {
    MapError::InvalidField {
        pointer: pointer.to_string(),
        reason: reason.to_string(),
    }
}

/// Reads one fixture body and maps it with a freshly built provider: the golden tests' helper.
#[cfg(test)]
pub(crate) mod golden {
    use chrono::{DateTime, TimeZone, Utc};

    use crate::config::{MapperConfig, ProviderConfig, SchemeName};
    use crate::event::VideoEvent;
    use crate::providers::test_support::{config, fixture, provider};
    use crate::providers::{MapError, Mapped, Verified};

    pub(crate) fn received_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
    }

    pub(crate) fn provider_config(mapper: MapperConfig) -> ProviderConfig {
        let mut entry = config("acme", SchemeName::HmacSha256, &["a-secret-of-sixteen+"]);
        entry.mapper = Some(mapper);
        entry
    }

    pub(crate) fn map_with(
        mapper: MapperConfig,
        verified: &Verified,
        body: &[u8],
    ) -> Result<Mapped, MapError> {
        provider(provider_config(mapper)).map(verified, body, received_at())
    }

    pub(crate) fn map_fixture(mapper: &str, file: &str) -> Result<Mapped, MapError> {
        map_with(
            MapperConfig::Builtin(mapper.into()),
            &Verified::default(),
            &fixture(file),
        )
    }

    pub(crate) fn event(mapped: Mapped) -> VideoEvent {
        match mapped {
            Mapped::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    pub(crate) fn time(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("a valid date-time in the test")
            .with_timezone(&Utc)
    }
}
