//! The one internal event format, whatever the provider: `VideoEvent`, plus the raw delivery it
//! came from. Everything after `providers/` speaks these types; nothing here knows HTTP or SQL.

pub mod codec;
mod metadata;

pub use metadata::Metadata;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Longest id (video, event or provider) accepted from the outside, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a raw identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    #[error("contains a control character")]
    ControlCharacter,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    // Ids are ASCII almost always: bytes are checked without decoding characters.
    let ascii_printable = raw.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !ascii_printable && raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses an id received from the outside.
            pub fn parse(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check_id(&raw)?;
                Ok(Self(raw))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A provider's video/asset id (or the app's own id): the key of one stream.
    VideoId
);
id_type!(
    /// A provider's delivery/event id; with the provider name, the dedupe key.
    EventId
);
id_type!(
    /// The configured provider name, the `{provider}` of `POST /webhooks/{provider}`.
    ProviderName
);

/// What happened to the video, normalized over every provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    Uploaded,
    ProcessingStarted,
    Progress { percent: f64 },
    ProcessingCompleted,
    Ready,
    Failed { error: Option<FailureReason> },
    Deleted,
}

impl EventKind {
    /// The machine name used in the history and the log (`progress`, `ready`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Uploaded => "uploaded",
            EventKind::ProcessingStarted => "processing_started",
            EventKind::Progress { .. } => "progress",
            EventKind::ProcessingCompleted => "processing_completed",
            EventKind::Ready => "ready",
            EventKind::Failed { .. } => "failed",
            EventKind::Deleted => "deleted",
        }
    }
}

/// Why processing failed, as the provider said it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub message: String,
}

/// How video-status learned of an event. The fold ignores it: an answer of the provider's API is
/// folded by the same rules as a webhook; the history shows it so a reader can tell them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A webhook the provider sent (or a quarantined one replayed).
    #[default]
    Webhook,
    /// The provider's status API, asked by the reconciliation poller.
    Poll,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Webhook => "webhook",
            Source::Poll => "poll",
        }
    }
}

/// Renditions and URLs as the provider gives them. Empty fields mean "not said by this event".
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Assets {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resolutions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poster: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playback_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_secs: Option<f64>,
}

impl Assets {
    pub fn is_empty(&self) -> bool {
        self == &Assets::default()
    }

    /// Fields this event states replace the known ones; fields it is silent on are kept.
    pub fn merge_from(&mut self, newer: &Assets) {
        self.merge(newer.clone());
    }

    /// [`Assets::merge`] by reference: copies only the fields the newer assets state and that
    /// differ from the known ones; whether anything changed.
    pub fn merge_said(&mut self, newer: &Assets) -> bool {
        let mut changed = false;
        if !newer.resolutions.is_empty() && self.resolutions != newer.resolutions {
            self.resolutions.clone_from(&newer.resolutions);
            changed = true;
        }
        for (known, said) in [
            (&mut self.poster, &newer.poster),
            (&mut self.thumbnail, &newer.thumbnail),
            (&mut self.playback_url, &newer.playback_url),
        ] {
            if said.is_some() && known != said {
                known.clone_from(said);
                changed = true;
            }
        }
        if newer.duration_secs.is_some() && self.duration_secs != newer.duration_secs {
            self.duration_secs = newer.duration_secs;
            changed = true;
        }
        changed
    }

    /// [`Assets::merge_from`], taking the newer assets by value; whether anything changed.
    pub fn merge(&mut self, newer: Assets) -> bool {
        let mut changed = false;
        if !newer.resolutions.is_empty() {
            changed |= self.resolutions != newer.resolutions;
            self.resolutions = newer.resolutions;
        }
        for (known, said) in [
            (&mut self.poster, newer.poster),
            (&mut self.thumbnail, newer.thumbnail),
            (&mut self.playback_url, newer.playback_url),
        ] {
            if said.is_some() {
                changed |= *known != said;
                *known = said;
            }
        }
        if newer.duration_secs.is_some() {
            changed |= self.duration_secs != newer.duration_secs;
            self.duration_secs = newer.duration_secs;
        }
        changed
    }
}

/// One normalized provider event: the unit of the log and of the fold.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoEvent {
    pub event_id: EventId,
    pub video_id: VideoId,
    pub provider: ProviderName,
    pub kind: EventKind,
    /// The provider's event time: the fold orders by it.
    pub occurred_at: DateTime<Utc>,
    /// When video-status received it.
    pub received_at: DateTime<Utc>,
    pub assets: Assets,
    /// The provider's passthrough/meta field, untouched (null when absent).
    pub metadata: Metadata,
    /// A webhook, or a poll of the provider's API.
    pub source: Source,
}

/// The request an event was mapped from, kept beside it for audit and re-mapping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RawDelivery {
    pub body: bytes::Bytes,
    /// The headers the signature scheme read, lowercase names, in the order received.
    pub headers: Vec<(String, String)>,
}

impl RawDelivery {
    /// SHA-256 of the body: tells a redelivery from a different body under the same event id.
    pub fn body_sha256(&self) -> [u8; 32] {
        use sha2::Digest;
        sha2::Sha256::digest(&self.body).into()
    }
}
