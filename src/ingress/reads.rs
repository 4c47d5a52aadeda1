//! Read endpoints: one status, a page of statuses, one video's history. Reads go to the store's
//! status table and log, never through the actors, so they never queue behind webhooks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use warp::http::HeaderMap;

use super::query::{self, given};
use super::reject::ApiError;
use super::subscriber_access;
use crate::app::AppState;
use crate::auth::{Access, AuthError};
use crate::event::{ProviderName, VideoId};
use crate::lifecycle::{Fold, HistoryEntry, Status};
use crate::projection::stall::StatusView;
use crate::projection::VideoStatus;
use crate::store::{EventStore, StatusQuery};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

pub(super) fn parse_video_id(raw: &str) -> Result<VideoId, ApiError> {
    VideoId::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_video_id", format!("video id {e}")))
}

/// `?token=` for clients that cannot set `Authorization` (a browser link, EventSource).
#[derive(Debug, Deserialize)]
pub struct TokenParam {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct StatusParams {
    token: Option<String>,
    /// RFC 3339: the status as of that event time (what a UI would have shown then).
    at: Option<String>,
}

pub async fn get_status(
    raw_id: String,
    params: StatusParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    let access = subscriber_access(&headers, given(&params.token), &state)?;
    let video_id = parse_video_id(&raw_id)?;
    if let Some(at) = given(&params.at) {
        return status_at(&video_id, at, &access, &state).await;
    }
    let mut status = state.store.get_status(&video_id).await?;
    if status.is_none() {
        let video = state.correlator.resolve(&video_id).await?;
        if video != video_id {
            status = state.store.get_status(&video).await?;
        }
    }
    check_video_access(&access, &video_id, status.as_ref().map(|s| &s.provider))?;
    match status {
        Some(status) => Ok(warp::reply::json(
            &state.stalls.view(&status, chrono::Utc::now()),
        )),
        None => Err(video_not_found(&video_id)),
    }
}

/// Folds the stream up to event time `at`: events that occurred later are left out, whenever
/// they arrived. `version` is then the number of events folded.
async fn status_at(
    video_id: &VideoId,
    at: &str,
    access: &Access,
    state: &AppState,
) -> Result<warp::reply::Json, ApiError> {
    let at = chrono::DateTime::parse_from_rfc3339(at)
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_at",
                "at must be an RFC 3339 time, e.g. 2026-11-23T10:00:00Z",
            )
        })?
        .with_timezone(&chrono::Utc);
    let stored = state.store.read_stream(video_id).await?;
    check_video_access(access, video_id, stored.last().map(|s| &s.event.provider))?;
    if stored.is_empty() {
        return Err(video_not_found(video_id));
    }
    let until = stored
        .into_iter()
        .map(|s| s.event)
        .filter(|event| event.occurred_at <= at);
    match VideoStatus::from_fold(video_id, &Fold::from_events(until)) {
        // Stalled as of `at`: what a UI showed then.
        Some(status) => Ok(warp::reply::json(&state.stalls.view(&status, at))),
        None => Err(ApiError::not_found(
            "no_status_at_time",
            format!(
                "video {video_id} had no event at or before {}",
                at.to_rfc3339()
            ),
        )),
    }
}

/// A token that cannot see the video gets 403 whether or not it exists: no probing for ids.
fn check_video_access(
    access: &Access,
    video_id: &VideoId,
    provider: Option<&ProviderName>,
) -> Result<(), ApiError> {
    let allowed = match provider {
        Some(provider) => access.allows(video_id, provider),
        None => access.allows_video(video_id),
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::from(AuthError::Forbidden))
    }
}

fn video_not_found(video_id: &VideoId) -> ApiError {
    ApiError::not_found(
        "video_not_found",
        format!("no event was ever received for video {video_id}"),
    )
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    provider: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    token: Option<String>,
    /// Only stalled (`true`) or only not stalled (`false`) videos.
    stalled: Option<String>,
}

#[derive(Serialize)]
struct Page<'s> {
    videos: Vec<StatusView<'s>>,
    /// Pass as `cursor` to get the next page; null on the last one.
    next_cursor: Option<String>,
    /// The global log position these statuses reflect: subscribe to `/events` from here.
    position: u64,
}

pub(super) fn parse_provider(raw: &str) -> Result<ProviderName, ApiError> {
    ProviderName::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_provider", format!("provider {e}")))
}

pub(super) fn parse_status(raw: &str) -> Result<Status, ApiError> {
    Status::parse(raw).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_status",
            format!("status must be one of uploaded, processing, processed, ready, failed, deleted; got {raw:?}"),
        )
    })
}

/// A page of statuses. With a subscriber token, only what it may see, and with `stalled`, only
/// those (the flag is judged at read time, after the store's query: a page can then hold fewer
/// than `limit` rows; follow `next_cursor` until it is null).
pub async fn list(
    params: ListParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    let access = subscriber_access(&headers, given(&params.token), &state)?;
    let status = given(&params.status).map(parse_status).transpose()?;
    let provider = given(&params.provider).map(parse_provider).transpose()?;
    let limit = query::limit(&params.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let stalled = query::flag("stalled", &params.stalled)?;
    let after = given(&params.cursor).map(decode_cursor).transpose()?;
    let page = state
        .store
        .list_statuses(StatusQuery {
            status,
            provider,
            after,
            limit,
        })
        .await?;
    let now = chrono::Utc::now();
    let videos = page
        .videos
        .iter()
        .filter(|s| access.allows(&s.video_id, &s.provider))
        .map(|s| state.stalls.view(s, now))
        .filter(|view| stalled.is_none_or(|wanted| view.stalled == wanted))
        .collect();
    Ok(warp::reply::json(&Page {
        videos,
        next_cursor: page.next_after.as_ref().map(encode_cursor),
        position: page.position,
    }))
}

fn encode_cursor(after: &VideoId) -> String {
    URL_SAFE_NO_PAD.encode(after.as_str())
}

fn decode_cursor(cursor: &str) -> Result<VideoId, ApiError> {
    let invalid =
        || ApiError::bad_request("invalid_cursor", "cursor is not one this server issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    VideoId::parse(text).map_err(|_| invalid())
}

#[derive(Serialize)]
struct History<'a> {
    video_id: &'a VideoId,
    events: Vec<HistoryItem<'a>>,
}

/// One event of a history, with the status right after it in the shape `GET /videos/{id}` gives
/// (`version`: the events folded so far; stalled as of the event's time), so that a UI can show
/// each step as it stood. A rejected event leaves the status as it was; `null` only before any
/// event was accepted.
#[derive(Serialize)]
struct HistoryItem<'a> {
    #[serde(flatten)]
    entry: &'a HistoryEntry,
    state_after: Option<StatusView<'a>>,
}

pub async fn history(
    raw_id: String,
    params: TokenParam,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    let access = subscriber_access(&headers, given(&params.token), &state)?;
    let mut video_id = parse_video_id(&raw_id)?;
    let mut stored = state.store.read_stream(&video_id).await?;
    if stored.is_empty() {
        let video = state.correlator.resolve(&video_id).await?;
        if video != video_id {
            stored = state.store.read_stream(&video).await?;
            video_id = video;
        }
    }
    check_video_access(&access, &video_id, stored.last().map(|s| &s.event.provider))?;
    if stored.is_empty() {
        return Err(video_not_found(&video_id));
    }
    let fold = Fold::from_events(stored.into_iter().map(|s| s.event));
    let entries = fold.history();
    let statuses: Vec<Option<VideoStatus>> = fold
        .states_after()
        .into_iter()
        .zip(1..)
        .map(|(after, version)| {
            after.map(|after| VideoStatus::from_state(video_id.clone(), after, version))
        })
        .collect();
    let events = entries
        .iter()
        .zip(&statuses)
        .map(|(entry, status)| HistoryItem {
            entry,
            state_after: status
                .as_ref()
                .map(|status| state.stalls.view(status, entry.occurred_at)),
        })
        .collect();
    Ok(warp::reply::json(&History {
        video_id: &video_id,
        events,
    }))
}
