//! One provider's poller: `GET` its status URL for a stalled video, map the answer with the
//! provider's own mapper, and append it as an event of source `poll` through the video's actor,
//! so dedupe and the fold's rules treat it exactly like a webhook (an answer older than what the
//! webhooks said is kept and rejected as a regression, never trusted over them).
//!
//! Bounded: at most `concurrency` requests in flight (a sweep starts no more than there are free
//! permits, so no backlog of waiting tasks builds up), each limited by `timeout_secs`; after a
//! failure a video waits twice as long as before, up to `max_backoff_secs`, with jitter.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::actor::{IngestError, Ingested, VideoManager};
use crate::config::PollConfig;
use crate::correlation::Correlator;
use crate::event::{RawDelivery, Source, VideoId};
use crate::lifecycle::Outcome;
use crate::projection::VideoStatus;
use crate::providers::{Mapped, Provider, Verified};

/// The HTTP client of a poller could not be built (TLS setup).
#[derive(Debug, thiserror::Error)]
#[error("provider {provider}: poll: cannot build the HTTP client: {source}")]
pub struct PollSetupError {
    provider: String,
    #[source]
    source: reqwest::Error,
}

/// The wait before the next poll of a video after `failures` failed polls in a row: the
/// interval, doubled per failure up to `max`, then a point in the upper half of that chosen by
/// `unit` (in `0..=1`, random in production). The jitter spreads out videos that stalled (or
/// failed, when the provider went down) together, so they do not hit the provider in waves.
pub fn next_wait(interval: Duration, max: Duration, failures: u32, unit: f64) -> Duration {
    let factor = 1u32.checked_shl(failures).unwrap_or(u32::MAX);
    let base = interval.saturating_mul(factor).min(max.max(interval));
    base.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
}

/// What a poll appended, or why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    Appended(Outcome),
    Duplicate,
    /// The answer maps to a state the mapper does not track (e.g. Cloudflare's
    /// `pendingupload`): nothing to append, and not kept in the audit log, which would grow
    /// by one row per poll.
    Ignored,
}

impl Polled {
    fn label(self) -> &'static str {
        match self {
            Polled::Appended(Outcome::Accepted) => "accepted",
            Polled::Appended(Outcome::Rejected) => "rejected",
            Polled::Duplicate => "duplicate",
            Polled::Ignored => "ignored",
        }
    }
}

/// Why a poll taught nothing. Every variant backs the video off.
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("the status metadata has no provider id at {0}")]
    NoProviderId(String),
    #[error("no complete answer within the timeout")]
    Timeout,
    #[error("request failed: {0}")]
    Unreachable(String),
    #[error("the provider answered HTTP {0}")]
    Status(u16),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the answer could not be mapped: {0}")]
    Unmappable(String),
    #[error("the answer is about video {0:?}, not the one asked about")]
    OtherVideo(VideoId),
    #[error("the answer could not be appended: {0}")]
    Ingest(#[source] IngestError),
}

impl PollError {
    fn code(&self) -> &'static str {
        match self {
            PollError::NoProviderId(_) => "no_provider_id",
            PollError::Timeout => "timeout",
            PollError::Unreachable(_) => "unreachable",
            PollError::Status(_) => "http_status",
            PollError::TooLarge(_) => "too_large",
            PollError::Unmappable(_) => "unmappable",
            PollError::OtherVideo(_) => "other_video",
            PollError::Ingest(_) => "unavailable",
        }
    }

    /// The error and its causes, without the URL (which may carry a token in its query).
    fn from_reqwest(error: reqwest::Error) -> PollError {
        if error.is_timeout() {
            return PollError::Timeout;
        }
        let error = error.without_url();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        PollError::Unreachable(text)
    }
}

/// When a stalled video is next due, and whether a poll of it is running.
struct Due {
    at: Instant,
    failures: u32,
    in_flight: bool,
}

/// The poller of one provider; cheap to clone into its poll tasks.
#[derive(Clone)]
pub(crate) struct Poller {
    inner: Arc<Inner>,
}

struct Inner {
    provider: Arc<Provider>,
    config: PollConfig,
    client: reqwest::Client,
    permits: Arc<Semaphore>,
    schedule: Mutex<HashMap<VideoId, Due>>,
    videos: VideoManager,
    /// Reads only: a stalled video's ids are linked already, by its webhooks.
    correlator: Correlator,
    max_body_bytes: usize,
}

impl Poller {
    pub(crate) fn new(
        provider: Arc<Provider>,
        config: PollConfig,
        videos: VideoManager,
        correlator: Correlator,
        max_body_bytes: usize,
    ) -> Result<Poller, PollSetupError> {
        let client = crate::http_client::client_builder()
            .timeout(config.timeout())
            .connect_timeout(config.timeout())
            .user_agent(concat!("video-status/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| PollSetupError {
                provider: provider.name().to_string(),
                source,
            })?;
        Ok(Poller {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(config.concurrency)),
                provider,
                config,
                client,
                schedule: Mutex::new(HashMap::new()),
                videos,
                correlator,
                max_body_bytes,
            }),
        })
    }

    pub(crate) fn provider_name(&self) -> &str {
        self.inner.provider.name().as_str()
    }

    /// Starts a poll, in `tasks`, for each of `stalled` (this provider's stalled videos, most
    /// overdue first) that is due, while permits last; forgets videos that are no longer
    /// stalled. Returns the number started.
    pub(crate) fn dispatch(&self, stalled: &[&VideoStatus], tasks: &mut JoinSet<()>) -> usize {
        let now = Instant::now();
        let mut schedule = self.inner.lock();
        let current: HashSet<&VideoId> = stalled.iter().map(|s| &s.video_id).collect();
        schedule.retain(|id, due| due.in_flight || current.contains(id));
        let mut started = 0;
        for status in stalled {
            let due = schedule.entry(status.video_id.clone()).or_insert(Due {
                at: now,
                failures: 0,
                in_flight: false,
            });
            if due.in_flight || due.at > now {
                continue;
            }
            let Ok(permit) = Arc::clone(&self.inner.permits).try_acquire_owned() else {
                break;
            };
            due.in_flight = true;
            let inner = Arc::clone(&self.inner);
            let status = (*status).clone();
            tasks.spawn(async move {
                let _permit = permit;
                inner.poll_and_reschedule(status).await;
            });
            started += 1;
        }
        started
    }
}

impl Inner {
    async fn poll_and_reschedule(&self, status: VideoStatus) {
        let result = self.poll(&status).await;
        let provider = self.provider.name().as_str();
        let label = match &result {
            Ok(polled) => polled.label(),
            Err(error) => error.code(),
        };
        metrics::counter!("provider_polls_total", "provider" => provider.to_string(), "result" => label)
            .increment(1);
        let mut schedule = self.lock();
        let Some(due) = schedule.get_mut(&status.video_id) else {
            return;
        };
        due.in_flight = false;
        match &result {
            Ok(polled) => {
                debug!(provider, video_id = %status.video_id, result = polled.label(), "polled");
                due.failures = 0;
            }
            Err(error) => {
                due.failures = due.failures.saturating_add(1);
                warn!(provider, video_id = %status.video_id, reason = error.code(), %error, failures = due.failures, "poll failed; backing off");
            }
        }
        let wait = next_wait(
            self.config.interval(),
            self.config.max_backoff(),
            due.failures,
            rand::random(),
        );
        due.at = Instant::now() + wait;
    }

    async fn poll(&self, status: &VideoStatus) -> Result<Polled, PollError> {
        let url = self.url_for(status)?;
        let body = self.fetch(&url).await?;
        let body = self.unwrap_body(body)?;
        let received_at = Utc::now();
        // No signature was checked: the answer is trusted because we asked the configured URL,
        // with the configured credentials.
        let mapped = self
            .provider
            .map(&Verified::default(), &body, received_at)
            .map_err(|e| PollError::Unmappable(e.to_string()))?;
        let mut event = match mapped {
            Mapped::Event(event) => event,
            Mapped::Ignored { .. } => return Ok(Polled::Ignored),
        };
        // The mapper names the provider's primary id; the video may be known by another one.
        if self.provider.aliases(&event).is_some() && event.video_id != status.video_id {
            event.video_id = self
                .correlator
                .resolve(&event.video_id)
                .await
                .map_err(|e| PollError::Ingest(IngestError::from_store(e)))?;
        }
        if event.video_id != status.video_id {
            return Err(PollError::OtherVideo(event.video_id));
        }
        event.source = Source::Poll;
        let raw = RawDelivery {
            body,
            headers: Vec::new(),
        };
        match self.videos.ingest(event, raw).await {
            Ok(Ingested::Appended { outcome, .. }) => Ok(Polled::Appended(outcome)),
            Ok(Ingested::Duplicate { .. }) => Ok(Polled::Duplicate),
            Err(error) => Err(PollError::Ingest(error)),
        }
    }

    /// The template with `{id}` replaced by the provider's id of the video, percent-encoded.
    fn url_for(&self, status: &VideoStatus) -> Result<String, PollError> {
        let id = match &self.config.id_pointer {
            None => status.video_id.as_str(),
            Some(pointer) => status
                .metadata
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| PollError::NoProviderId(pointer.clone()))?,
        };
        Ok(self.config.url.replace("{id}", &percent_encode(id)))
    }

    async fn fetch(&self, url: &str) -> Result<Bytes, PollError> {
        let mut request = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = &self.config.bearer_token {
            request = request.bearer_auth(token.expose());
        }
        if let (Some(user), Some(password)) = (&self.config.username, &self.config.password) {
            request = request.basic_auth(user, Some(password.expose()));
        }
        let mut response = request.send().await.map_err(PollError::from_reqwest)?;
        if !response.status().is_success() {
            return Err(PollError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(PollError::from_reqwest)? {
            if body.len() + chunk.len() > self.max_body_bytes {
                return Err(PollError::TooLarge(self.max_body_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.into())
    }

    /// The object at `body_pointer`, re-serialized, for APIs that wrap the video in an envelope.
    fn unwrap_body(&self, body: Bytes) -> Result<Bytes, PollError> {
        let Some(pointer) = &self.config.body_pointer else {
            return Ok(body);
        };
        let json: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| PollError::Unmappable(format!("the answer is not JSON: {e}")))?;
        let inner = json
            .pointer(pointer)
            .ok_or_else(|| PollError::Unmappable(format!("nothing at {pointer}")))?;
        Ok(serde_json::to_vec(inner)
            .expect("a parsed JSON value serializes")
            .into())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<VideoId, Due>> {
        // Only plain fields are updated under this lock: a panic cannot leave them torn.
        self.schedule
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, so an id is always
/// one path segment (or one query value) whatever it contains.
fn percent_encode(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn the_wait_doubles_with_each_failure_up_to_the_maximum() {
        let max = Duration::from_secs(60);
        let upper = |failures| next_wait(SECOND * 5, max, failures, 1.0);
        assert_eq!(upper(0), SECOND * 5);
        assert_eq!(upper(1), SECOND * 10);
        assert_eq!(upper(2), SECOND * 20);
        assert_eq!(upper(3), SECOND * 40);
        assert_eq!(upper(4), max);
        assert_eq!(
            upper(40),
            max,
            "no overflow however long the provider is down"
        );
    }

    #[test]
    fn jitter_picks_a_point_in_the_upper_half() {
        let max = Duration::from_secs(60);
        assert_eq!(next_wait(SECOND * 10, max, 0, 0.0), SECOND * 5);
        assert_eq!(next_wait(SECOND * 10, max, 0, 0.5), SECOND * 15 / 2);
        assert_eq!(next_wait(SECOND * 10, max, 1, 0.0), SECOND * 10);
        for unit in [0.0, 0.3, 0.99, 1.0] {
            let wait = next_wait(SECOND * 10, max, 2, unit);
            assert!(wait >= SECOND * 20 && wait <= SECOND * 40, "{wait:?}");
        }
    }

    #[test]
    fn a_maximum_below_the_interval_does_not_shorten_the_interval() {
        assert_eq!(next_wait(SECOND * 10, SECOND, 3, 1.0), SECOND * 10);
    }

    #[test]
    fn ids_are_percent_encoded_into_one_segment() {
        assert_eq!(percent_encode("vid_42-a.b~c"), "vid_42-a.b~c");
        assert_eq!(percent_encode("a/b?c=d&e"), "a%2Fb%3Fc%3Dd%26e");
        assert_eq!(percent_encode("é 1"), "%C3%A9%201");
    }

    #[test]
    fn polled_results_have_stable_metric_labels() {
        assert_eq!(Polled::Appended(Outcome::Accepted).label(), "accepted");
        assert_eq!(Polled::Appended(Outcome::Rejected).label(), "rejected");
        assert_eq!(Polled::Duplicate.label(), "duplicate");
        assert_eq!(Polled::Ignored.label(), "ignored");
        assert_eq!(PollError::Status(503).code(), "http_status");
        assert_eq!(PollError::Timeout.code(), "timeout");
    }
}
