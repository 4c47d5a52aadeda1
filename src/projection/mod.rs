//! The status document that reads and UIs see. It is derived from the fold alone, so a rebuild
//! from the log reproduces it exactly; the `stalled` flag beside it is derived at read time
//! (`stall.rs`).

pub mod rebuild;
pub mod stall;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::event::{Assets, FailureReason, Metadata, ProviderName, VideoId};
use crate::lifecycle::{Fold, Status, VideoState};

/// `GET /videos/{id}`: the current status of one video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoStatus {
    pub video_id: VideoId,
    pub provider: ProviderName,
    pub status: Status,
    pub progress: Option<f64>,
    pub assets: Assets,
    pub error: Option<FailureReason>,
    pub metadata: Metadata,
    /// Events in the video's stream, accepted and rejected: the SSE id.
    pub version: u64,
    /// `received_at` of the last event that changed the status.
    pub updated_at: DateTime<Utc>,
    /// `occurred_at` of that event.
    pub last_event_at: DateTime<Utc>,
}

impl VideoStatus {
    /// The document for a folded stream; `None` while no event of it was accepted.
    pub fn from_fold(video_id: &VideoId, fold: &Fold) -> Option<VideoStatus> {
        let state = fold.state()?.clone();
        Some(VideoStatus::from_state(
            video_id.clone(),
            state,
            fold.version(),
        ))
    }

    /// The folded state this document shows: the inverse of [`VideoStatus::from_state`], which
    /// copies every field of it. What a snapshot restores.
    pub fn to_state(&self) -> VideoState {
        VideoState {
            status: self.status,
            progress: self.progress,
            assets: self.assets.clone(),
            error: self.error.clone(),
            metadata: self.metadata.clone(),
            provider: self.provider.clone(),
            updated_at: self.updated_at,
            last_event_at: self.last_event_at,
        }
    }

    /// The document for a stream of `version` events that folded to `state`.
    pub fn from_state(video_id: VideoId, state: VideoState, version: u64) -> VideoStatus {
        VideoStatus {
            video_id,
            provider: state.provider,
            status: state.status,
            progress: state.progress,
            assets: state.assets,
            error: state.error,
            metadata: state.metadata,
            version,
            updated_at: state.updated_at,
            last_event_at: state.last_event_at,
        }
    }
}
