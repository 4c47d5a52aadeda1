//! `VideoState`: what the fold knows about one video after its accepted events. Plain data; the
//! rules that move it live in `table.rs`.

use chrono::{DateTime, Utc};

use super::Status;
use crate::event::{Assets, FailureReason, Metadata, ProviderName};

/// The folded state of one video. Every field is derived from the video's events alone, so a
/// rebuild from the log reproduces it exactly.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoState {
    pub status: Status,
    /// Percent of the current attempt: set by `progress`, 100 once processed or ready, `None`
    /// before any percent is known in this attempt.
    pub progress: Option<f64>,
    /// Every asset field any accepted event stated, the newest statement winning.
    pub assets: Assets,
    /// The reason of the last `failed`; cleared by any other accepted event.
    pub error: Option<FailureReason>,
    /// The last non-null metadata an accepted event carried (`Null` if none did).
    pub metadata: Metadata,
    /// Provider of the last accepted event.
    pub provider: ProviderName,
    /// `received_at` of the last event that changed any other field of this state.
    pub updated_at: DateTime<Utc>,
    /// `occurred_at` of that same event.
    pub last_event_at: DateTime<Utc>,
}

impl VideoState {
    /// Whether a reader would see a difference, timestamps aside: this decides whether an
    /// accepted event moves `updated_at` and `last_event_at`.
    pub(crate) fn differs_from(&self, other: &VideoState) -> bool {
        self.status != other.status
            || self.progress != other.progress
            || self.assets != other.assets
            || self.error != other.error
            || self.metadata != other.metadata
            || self.provider != other.provider
    }
}
