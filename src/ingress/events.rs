//! Server-sent events: `GET /videos/{id}/events` (one video, latest wins) and `GET /events`
//! (every change, replayable by global position). Streams end with a `shutdown` event when the
//! server stops, so a graceful shutdown never waits on an open stream.
//!
//! Streams yield frames already encoded (`crate::sse::frame`): a change's frame is shared by
//! every subscriber it goes to; only replays, resets and the shutdown event are encoded here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{broadcast, watch};
use warp::http::{HeaderMap, HeaderValue};
use warp::reply::Response;
use warp::Reply;

use super::query::given;
use super::reads::parse_video_id;
use super::reject::ApiError;
use super::subscriber_access;
use crate::app::AppState;
use crate::auth::Access;
use crate::event::{ProviderName, VideoId};
use crate::lifecycle::Status;
use crate::projection::stall::StallPolicy;
use crate::projection::VideoStatus;
use crate::sse::{
    frame, same_status, FrameBody, GlobalEvent, Published, ResetCause, VideoSubscription,
};
use crate::store::EventStore;

/// Events read from the log per round trip while replaying.
const REPLAY_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct VideoStreamParams {
    /// For clients that cannot set `Last-Event-ID` (a version of this video).
    last_event_id: Option<String>,
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GlobalStreamParams {
    status: Option<String>,
    provider: Option<String>,
    /// For clients that cannot set `Last-Event-ID` (a global position).
    last_event_id: Option<String>,
    token: Option<String>,
}

/// `Last-Event-ID` from the header, else from the query.
fn resume_from(headers: &HeaderMap, query: Option<&str>) -> Result<Option<u64>, ApiError> {
    let raw = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .or(query);
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| {
            ApiError::bad_request(
                "invalid_last_event_id",
                "Last-Event-ID must be an id this server sent (a non-negative integer)",
            )
        }),
    }
}

fn reset_event(reason: &str, position: Option<u64>) -> Bytes {
    let data = json!({ "reason": reason, "position": position }).to_string();
    frame::encode("reset", &data, None)
}

fn shutdown_event() -> Bytes {
    frame::encode(
        "shutdown",
        r#"{"reason":"server shutting down; reconnect"}"#,
        None,
    )
}

/// The response for a stream of frames: a `retry:` hint first, then the frames, with keep-alive
/// comments while it is quiet.
fn sse_response<S>(frames: S, state: &AppState) -> Response
where
    S: Stream<Item = Bytes> + Send + Sync + 'static,
{
    let body = FrameBody::new(
        frame::retry(state.config.sse.retry_ms),
        Box::pin(frames),
        Duration::from_secs(state.config.sse.keep_alive_secs),
    );
    let mut response = warp::reply::stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    // Proxies (nginx) must not buffer the stream, nor caches keep it.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response
}

pub async fn video_stream(
    raw_id: String,
    params: VideoStreamParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, ApiError> {
    let access = subscriber_access(&headers, given(&params.token), &state)?;
    let video_id = state.correlator.resolve(&parse_video_id(&raw_id)?).await?;
    if !access.may_watch(&video_id) {
        return Err(ApiError::from(crate::auth::AuthError::Forbidden));
    }
    let resume = resume_from(&headers, given(&params.last_event_id))?;
    // Subscribe before reading the current status: a change committed in between is in both,
    // and versions make the overlap harmless.
    let subscription = state.hub.subscribe_video(&video_id);
    let current = state
        .store
        .get_status(&video_id)
        .await?
        .map(|status| Arc::new(Published::new(Arc::new(status), None)));
    if let (Access::Token(_), Some(published)) = (&access, &current) {
        if !access.allows(&video_id, &published.status.provider) {
            return Err(ApiError::from(crate::auth::AuthError::Forbidden));
        }
    }
    let stream = VideoStream {
        subscription,
        pending: current,
        sent: resume,
        sent_status: None,
        // A resuming client may have missed a stalled flag at the version it has: a status
        // that is stalled now is sent again rather than risk that.
        sent_stalled: false,
        stalls: state.stalls.clone(),
        access,
        closing: state.hub.closing(),
        done: false,
    };
    let frames = stream::unfold(stream, |stream| stream.next());
    Ok(sse_response(frames, &state))
}

/// One video's stream: the newest status newer than what the client has, then each change.
struct VideoStream {
    subscription: VideoSubscription,
    /// The status read at connect, not sent yet.
    pending: Option<Arc<Published>>,
    /// The version the client has (Last-Event-ID, then what was sent).
    sent: Option<u64>,
    /// What was sent at that version (unknown for a Last-Event-ID): a rebuild may correct it
    /// without a new version.
    sent_status: Option<Arc<VideoStatus>>,
    /// Whether what was sent showed the video stalled.
    sent_stalled: bool,
    stalls: StallPolicy,
    access: Access,
    closing: watch::Receiver<bool>,
    done: bool,
}

impl VideoStream {
    /// A newer version, or the same version whose stalled flag or content (a rebuild corrected
    /// it) the client has not seen. The flag is judged now: time alone can set it.
    fn news(&self, published: Option<Arc<Published>>) -> Option<(Arc<Published>, bool)> {
        let published = published?;
        let status = &published.status;
        let stalled = self.stalls.is_stalled(status, Utc::now());
        let is_new = match self.sent {
            None => true,
            Some(sent) => {
                status.version > sent
                    || (status.version == sent
                        && (stalled != self.sent_stalled
                            || self
                                .sent_status
                                .as_ref()
                                .is_some_and(|sent_status| !same_status(sent_status, status))))
            }
        };
        is_new.then_some((published, stalled))
    }

    async fn next(mut self) -> Option<(Bytes, VideoStream)> {
        if self.done {
            return None;
        }
        loop {
            if *self.closing.borrow() {
                self.done = true;
                return Some((shutdown_event(), self));
            }
            let pending = self.pending.take();
            let candidate = match self.news(pending) {
                Some(news) => Some(news),
                None => {
                    let newest = self.subscription.newest();
                    self.news(newest)
                }
            };
            if let Some((published, stalled)) = candidate {
                let status = &published.status;
                self.sent = Some(status.version);
                self.sent_status = Some(Arc::clone(status));
                self.sent_stalled = stalled;
                if self.access.allows(&status.video_id, &status.provider) {
                    return Some((published.video_frame(stalled), self));
                }
                continue;
            }
            tokio::select! {
                alive = self.subscription.changed() => if !alive { return None },
                _ = self.closing.changed() => {}
            }
        }
    }
}

pub async fn global_stream(
    params: GlobalStreamParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<Response, ApiError> {
    let access = subscriber_access(&headers, given(&params.token), &state)?;
    let filter = ChangeFilter {
        status: given(&params.status)
            .map(super::reads::parse_status)
            .transpose()?,
        provider: given(&params.provider)
            .map(super::reads::parse_provider)
            .transpose()?,
        access,
    };
    let resume = resume_from(&headers, given(&params.last_event_id))?;
    // Subscribe before reading the log: whatever commits meanwhile is in the live feed, and
    // positions drop the overlap at the seam.
    let live = state.hub.subscribe_all();
    let (replay, cursor) = match resume {
        Some(after) => replay_since(after, &filter, &state).await?,
        None => (Vec::new(), None),
    };
    let stream = GlobalStream {
        queued: replay.into(),
        live,
        cursor,
        filter,
        stalls: state.stalls.clone(),
        closing: state.hub.closing(),
        done: false,
    };
    let frames = stream::unfold(stream, |stream| stream.next());
    Ok(sse_response(frames, &state))
}

/// What a global subscriber asked to see, and may see.
struct ChangeFilter {
    status: Option<Status>,
    provider: Option<ProviderName>,
    access: Access,
}

impl ChangeFilter {
    fn admits(&self, status: &VideoStatus) -> bool {
        self.status.is_none_or(|s| s == status.status)
            && self.provider.as_ref().is_none_or(|p| p == &status.provider)
            && self.access.allows(&status.video_id, &status.provider)
    }
}

/// What changed after `after`: the current status of each video touched since, in the order of
/// its last change (latest wins, as on a video's own stream). Past the horizon: a reset.
async fn replay_since(
    after: u64,
    filter: &ChangeFilter,
    state: &AppState,
) -> Result<(Vec<Bytes>, Option<u64>), ApiError> {
    let head = state.store.head_position().await?;
    if head.saturating_sub(after) > state.config.sse.replay_horizon as u64 {
        return Ok((
            vec![reset_event("beyond_replay_horizon", Some(head))],
            Some(head),
        ));
    }
    let mut last_change: HashMap<VideoId, u64> = HashMap::new();
    let mut cursor = after;
    while cursor < head {
        let batch = state.store.read_all(cursor, REPLAY_BATCH).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.position;
        for stored in batch {
            last_change.insert(stored.event.video_id, stored.position);
        }
    }
    let mut touched: Vec<(u64, VideoId)> = last_change.into_iter().map(|(v, p)| (p, v)).collect();
    touched.sort();
    let mut events = Vec::with_capacity(touched.len());
    for (position, video_id) in touched {
        if let Some(status) = state.store.get_status(&video_id).await? {
            if filter.admits(&status) {
                let stalled = state.stalls.is_stalled(&status, Utc::now());
                events.push(frame::status(Some(position), &status, stalled));
            }
        }
    }
    Ok((events, Some(cursor.max(after))))
}

/// The global stream: replayed events first, then live changes after the cursor.
struct GlobalStream {
    queued: std::collections::VecDeque<Bytes>,
    live: broadcast::Receiver<GlobalEvent>,
    /// Highest position already covered: live changes at or below it were replayed.
    cursor: Option<u64>,
    filter: ChangeFilter,
    stalls: StallPolicy,
    closing: watch::Receiver<bool>,
    done: bool,
}

impl GlobalStream {
    async fn next(mut self) -> Option<(Bytes, GlobalStream)> {
        if let Some(event) = self.queued.pop_front() {
            return Some((event, self));
        }
        if self.done {
            return None;
        }
        loop {
            if *self.closing.borrow() {
                self.done = true;
                return Some((shutdown_event(), self));
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.closing.changed() => continue,
            };
            match received {
                Ok(GlobalEvent::Change {
                    position,
                    published,
                }) => {
                    if self.cursor.is_some_and(|c| position <= c) {
                        continue;
                    }
                    self.cursor = Some(position);
                    if self.filter.admits(&published.status) {
                        let stalled = self.stalls.is_stalled(&published.status, Utc::now());
                        return Some((published.global_frame(stalled), self));
                    }
                }
                Ok(GlobalEvent::Stalled(stalled)) => {
                    if self.filter.admits(&stalled.status) {
                        return Some((stalled.global_frame(true), self));
                    }
                }
                Ok(GlobalEvent::Corrected(corrected)) => {
                    if self.filter.admits(&corrected.status) {
                        let stalled = self.stalls.is_stalled(&corrected.status, Utc::now());
                        return Some((corrected.global_frame(stalled), self));
                    }
                }
                Ok(GlobalEvent::Reset(cause)) => {
                    let reason = match cause {
                        ResetCause::HubLagged => "server_resync",
                        ResetCause::Rebuilt => "projection_rebuilt",
                    };
                    return Some((reset_event(reason, None), self));
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    metrics::counter!("sse_global_resets_total").increment(1);
                    tracing::debug!(missed, "global subscriber fell behind; sent reset");
                    return Some((reset_event("subscriber_lagged", None), self));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
