//! Read endpoints: one status, a page of statuses, one video's history. Reads go to the store's
//! status table and log, never through the actors, so they never queue behind webhooks.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::reject::ApiError;
use crate::app::AppState;
use crate::event::{ProviderName, VideoId};
use crate::lifecycle::{Fold, HistoryEntry, Status};
use crate::projection::VideoStatus;
use crate::store::{EventStore, StatusQuery};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

fn parse_video_id(raw: &str) -> Result<VideoId, ApiError> {
    VideoId::parse(raw)
        .map_err(|e| ApiError::bad_request("invalid_video_id", format!("video id {e}")))
}

pub async fn get_status(raw_id: String, state: AppState) -> Result<warp::reply::Json, ApiError> {
    let video_id = parse_video_id(&raw_id)?;
    match state.store.get_status(&video_id).await? {
        Some(status) => Ok(warp::reply::json(&status)),
        None => Err(video_not_found(&video_id)),
    }
}

fn video_not_found(video_id: &VideoId) -> ApiError {
    ApiError::not_found(
        "video_not_found",
        format!("no event was ever received for video {video_id:?}"),
    )
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    status: Option<String>,
    provider: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct Page {
    videos: Vec<VideoStatus>,
    /// Pass as `cursor` to get the next page; null on the last one.
    next_cursor: Option<String>,
    /// The global log position these statuses reflect: subscribe to `/events` from here.
    position: u64,
}

pub async fn list(params: ListParams, state: AppState) -> Result<warp::reply::Json, ApiError> {
    let status = params
        .status
        .as_deref()
        .map(|raw| {
            Status::parse(raw).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_status",
                    format!("status must be one of uploaded, processing, processed, ready, failed, deleted; got {raw:?}"),
                )
            })
        })
        .transpose()?;
    let provider = params
        .provider
        .map(ProviderName::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_provider", format!("provider {e}")))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let after = params.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = state
        .store
        .list_statuses(StatusQuery {
            status,
            provider,
            after,
            limit,
        })
        .await?;
    Ok(warp::reply::json(&Page {
        videos: page.videos,
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
    events: &'a [HistoryEntry],
}

pub async fn history(raw_id: String, state: AppState) -> Result<warp::reply::Json, ApiError> {
    let video_id = parse_video_id(&raw_id)?;
    let stored = state.store.read_stream(&video_id).await?;
    if stored.is_empty() {
        return Err(video_not_found(&video_id));
    }
    let fold = Fold::from_events(stored.into_iter().map(|s| s.event));
    Ok(warp::reply::json(&History {
        video_id: &video_id,
        events: fold.history(),
    }))
}
