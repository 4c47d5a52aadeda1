//! The `stalled` flag: a video that has sat in `uploaded`, `processing` or `processed` longer
//! than its provider's deadline (`stall_after_secs`) with nothing new.
//!
//! The flag is a judgement of the clock, not a fact of the log: it is derived from a stored
//! status and the time of the read, never stored in the status table and never folded. That
//! keeps the fold a pure function of the events (a rebuild, `rebuild --verify` and the
//! live/rebuilt equality hold as before) and needs no write when time alone moves a video into
//! the flag. Any event that changes the status moves its `updated_at` and so clears the flag.
//! A duplicate, a rejected regression or an answer that only confirms what is known does not:
//! the video is no less stuck for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::VideoStatus;
use crate::config::{ProviderConfig, DEFAULT_STALL_AFTER_SECS};
use crate::lifecycle::Status;

/// Each provider's deadline; a cheap handle to share between readers and the sweeper.
#[derive(Debug, Clone)]
pub struct StallPolicy {
    deadlines: Arc<HashMap<String, Duration>>,
}

impl Default for StallPolicy {
    fn default() -> Self {
        StallPolicy::from_config(&[])
    }
}

impl StallPolicy {
    pub fn from_config(providers: &[ProviderConfig]) -> StallPolicy {
        let deadlines = providers
            .iter()
            .map(|p| (p.name.clone(), Duration::from_secs(p.stall_after_secs)))
            .collect();
        StallPolicy {
            deadlines: Arc::new(deadlines),
        }
    }

    /// The deadline of `provider`; a provider no longer configured keeps the default, so its
    /// videos are still flagged.
    pub fn deadline(&self, provider: &str) -> Duration {
        self.deadlines
            .get(provider)
            .copied()
            .unwrap_or(Duration::from_secs(DEFAULT_STALL_AFTER_SECS))
    }

    /// When `status` becomes stalled if nothing new arrives; `None` for a status that never
    /// does (ready, failed, deleted: nothing more is owed by the provider).
    pub fn stalls_at(&self, status: &VideoStatus) -> Option<DateTime<Utc>> {
        if !awaits_provider(status.status) {
            return None;
        }
        let deadline = chrono::Duration::from_std(self.deadline(status.provider.as_str())).ok()?;
        status.updated_at.checked_add_signed(deadline)
    }

    pub fn is_stalled(&self, status: &VideoStatus, now: DateTime<Utc>) -> bool {
        self.stalls_at(status).is_some_and(|at| now >= at)
    }

    /// The document readers get for `status` at `now`.
    pub fn view<'s>(&self, status: &'s VideoStatus, now: DateTime<Utc>) -> StatusView<'s> {
        StatusView {
            status,
            stalled: self.is_stalled(status, now),
        }
    }
}

/// Statuses in which the provider still owes the video a next step.
pub fn awaits_provider(status: Status) -> bool {
    matches!(
        status,
        Status::Uploaded | Status::Processing | Status::Processed
    )
}

/// A status as `GET /videos/{id}`, lists and SSE show it: the stored document and the flag.
#[derive(Debug, Serialize)]
pub struct StatusView<'s> {
    #[serde(flatten)]
    pub status: &'s VideoStatus,
    pub stalled: bool,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::config::SchemeName;
    use crate::event::{Assets, ProviderName, VideoId};

    fn policy() -> StallPolicy {
        let provider = |name: &str, secs| ProviderConfig {
            stall_after_secs: secs,
            ..ProviderConfig::new(name, SchemeName::Standard, Vec::new())
        };
        StallPolicy::from_config(&[provider("quick", 60), provider("slow", 7200)])
    }

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_795_428_000 + secs, 0).unwrap()
    }

    fn status(provider: &str, status: Status, updated_secs: i64) -> VideoStatus {
        VideoStatus {
            video_id: VideoId::parse("vid_42").unwrap(),
            provider: ProviderName::parse(provider).unwrap(),
            status,
            progress: None,
            assets: Assets::default(),
            error: None,
            metadata: crate::event::Metadata::NULL,
            version: 3,
            updated_at: at(updated_secs),
            last_event_at: at(updated_secs - 5),
        }
    }

    #[test]
    fn a_video_awaiting_its_provider_stalls_at_that_providers_deadline() {
        let policy = policy();
        for waiting in [Status::Uploaded, Status::Processing, Status::Processed] {
            let quick = status("quick", waiting, 0);
            assert!(!policy.is_stalled(&quick, at(59)));
            assert!(policy.is_stalled(&quick, at(60)));
            let slow = status("slow", waiting, 0);
            assert!(!policy.is_stalled(&slow, at(7199)));
            assert!(policy.is_stalled(&slow, at(7200)));
        }
    }

    #[test]
    fn settled_videos_never_stall() {
        let policy = policy();
        for settled in [Status::Ready, Status::Failed, Status::Deleted] {
            let video = status("quick", settled, 0);
            assert_eq!(policy.stalls_at(&video), None);
            assert!(!policy.is_stalled(&video, at(1_000_000)));
        }
    }

    #[test]
    fn an_unconfigured_provider_gets_the_default_deadline() {
        let video = status("gone", Status::Processing, 0);
        let default = DEFAULT_STALL_AFTER_SECS as i64;
        assert!(!policy().is_stalled(&video, at(default - 1)));
        assert!(policy().is_stalled(&video, at(default)));
    }

    #[test]
    fn the_view_is_the_stored_document_plus_the_flag() {
        let video = status("quick", Status::Processing, 0);
        let stored = serde_json::to_value(&video).unwrap();
        let mut shown = serde_json::to_value(policy().view(&video, at(61))).unwrap();
        assert_eq!(shown["stalled"], true);
        shown.as_object_mut().unwrap().remove("stalled");
        assert_eq!(shown, stored);
    }
}
