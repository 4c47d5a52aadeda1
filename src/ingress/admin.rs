//! `/admin/*`: operator endpoints behind the admin bearer token; absent (404) when no token is
//! configured.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use warp::http::{header, HeaderMap};
use warp::Reply;

use super::query;
use super::reject::ApiError;
use crate::app::AppState;
use crate::event::{EventId, ProviderName, RawDelivery, VideoId};
use crate::projection::rebuild::NotStarted;
use crate::store::{AuditKind, EventStore};

/// Checks `Authorization: Bearer <admin_token>` in constant time.
pub fn authorize(headers: &HeaderMap, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = &state.config.auth.admin_token else {
        return Err(ApiError::not_found("not_found", "no such endpoint"));
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing_admin_token",
                "send Authorization: Bearer <admin token>",
            )
        })?;
    if bool::from(presented.as_bytes().ct_eq(token.expose().as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "invalid_admin_token",
            "the admin token does not match",
        ))
    }
}

/// An admin list's `limit`: 100 when not given; as `GET /videos`, one outside 1..=1000 is a 400
/// that says so, not a page of another size.
fn admin_limit(value: &Option<String>) -> Result<usize, ApiError> {
    query::limit(value, 100, 1000)
}

#[derive(Debug, Deserialize)]
pub struct PageParams {
    after: Option<String>,
    limit: Option<String>,
}

#[derive(Serialize)]
struct RawView {
    headers: Vec<(String, String)>,
    /// The body as text when it is UTF-8, else null (see `body_base64`).
    body: Option<String>,
    body_base64: String,
}

impl From<&RawDelivery> for RawView {
    fn from(raw: &RawDelivery) -> RawView {
        RawView {
            headers: raw.headers.clone(),
            body: std::str::from_utf8(&raw.body).ok().map(str::to_owned),
            body_base64: STANDARD.encode(&raw.body),
        }
    }
}

#[derive(Serialize)]
struct QuarantineView {
    id: u64,
    provider: ProviderName,
    error: String,
    reason: String,
    received_at: DateTime<Utc>,
    request: RawView,
}

#[derive(Serialize)]
struct QuarantinePage {
    requests: Vec<QuarantineView>,
    /// Pass as `after` for the next page; null on the last one.
    next_after: Option<u64>,
}

pub async fn quarantine(
    params: PageParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    authorize(&headers, &state)?;
    let limit = admin_limit(&params.limit)?;
    let after = query::number("after", &params.after)?.unwrap_or(0);
    let rows = state.store.list_quarantine(after, limit).await?;
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    let requests = rows
        .iter()
        .map(|row| QuarantineView {
            id: row.id,
            provider: row.record.provider.clone(),
            error: row.record.error_code.clone(),
            reason: row.record.reason.clone(),
            received_at: row.record.received_at,
            request: RawView::from(&row.record.raw),
        })
        .collect();
    Ok(warp::reply::json(&QuarantinePage {
        requests,
        next_after,
    }))
}

#[derive(Serialize)]
struct AuditView {
    kind: AuditKind,
    provider: ProviderName,
    event_id: Option<EventId>,
    video_id: Option<VideoId>,
    detail: String,
    received_at: DateTime<Utc>,
    request: RawView,
}

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    limit: Option<String>,
}

/// Ignored deliveries and event ids reused with a different body, newest first.
pub async fn audit(
    params: AuditParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    authorize(&headers, &state)?;
    let records = state.store.list_audit(admin_limit(&params.limit)?).await?;
    let records: Vec<AuditView> = records
        .iter()
        .map(|r| AuditView {
            kind: r.kind,
            provider: r.provider.clone(),
            event_id: r.event_id.clone(),
            video_id: r.video_id.clone(),
            detail: r.detail.clone(),
            received_at: r.received_at,
            request: RawView::from(&r.raw),
        })
        .collect();
    Ok(warp::reply::json(
        &serde_json::json!({ "records": records }),
    ))
}

/// `POST /admin/rebuild`: starts an online rebuild (202), or 409 while one runs.
pub async fn start_rebuild(
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Response, ApiError> {
    authorize(&headers, &state)?;
    match state.rebuilder.start().await {
        Ok(report) => Ok(warp::reply::with_status(
            warp::reply::json(&report),
            warp::http::StatusCode::ACCEPTED,
        )
        .into_response()),
        Err(NotStarted::AlreadyRunning(running)) => Err(ApiError::new(
            warp::http::StatusCode::CONFLICT,
            "rebuild_running",
            format!(
                "a rebuild is already running ({} of {} events folded)",
                running.events_done, running.events_total
            ),
        )),
        Err(NotStarted::Store(error)) => Err(error.into()),
    }
}

/// `GET /admin/rebuild`: the current or last rebuild.
pub async fn rebuild_report(
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    authorize(&headers, &state)?;
    Ok(warp::reply::json(&state.rebuilder.report()))
}

#[derive(Debug, Deserialize)]
pub struct ReplayParams {
    /// Replay only this quarantined request.
    id: Option<String>,
}

#[derive(Serialize)]
struct ReplayResult {
    id: u64,
    /// `accepted` | `duplicate` | `ignored` (stored; released from the quarantine),
    /// `unmappable` | `unknown_provider` | `not_stored` (kept in the quarantine).
    outcome: &'static str,
    error: Option<String>,
    event_id: Option<EventId>,
    video_id: Option<VideoId>,
}

/// Quarantined requests replayed per call.
const REPLAY_BATCH: usize = 1000;

/// `POST /admin/quarantine/replay[?id=N]`: runs the current mappers over quarantined requests
/// (after a mapper was fixed or extended). A request that now maps is stored like a live webhook,
/// with its original arrival time, and leaves the quarantine; one that still does not stays.
/// Redelivered ids are deduplicated as usual, so replaying twice stores nothing twice.
pub async fn replay_quarantine(
    params: ReplayParams,
    headers: HeaderMap,
    state: AppState,
) -> Result<warp::reply::Json, ApiError> {
    authorize(&headers, &state)?;
    let only = query::number("id", &params.id)?;
    let after = only.map_or(0, |id| id.saturating_sub(1));
    let mut rows = state.store.list_quarantine(after, REPLAY_BATCH).await?;
    if let Some(id) = only {
        rows.retain(|row| row.id == id);
        if rows.is_empty() {
            return Err(ApiError::not_found(
                "not_quarantined",
                format!("no quarantined request has id {id}"),
            ));
        }
    }
    let mut results = Vec::with_capacity(rows.len());
    for row in rows {
        results.push(replay_one(row, &state).await?);
    }
    let released = results
        .iter()
        .filter(|r| matches!(r.outcome, "accepted" | "duplicate" | "ignored"))
        .count();
    Ok(warp::reply::json(&serde_json::json!({
        "replayed": results.len(),
        "released": released,
        "results": results,
    })))
}

async fn replay_one(
    row: crate::store::QuarantinedRequest,
    state: &AppState,
) -> Result<ReplayResult, ApiError> {
    let kept = |outcome, error: String| ReplayResult {
        id: row.id,
        outcome,
        error: Some(error),
        event_id: None,
        video_id: None,
    };
    let Some(provider) = state.providers.get(row.record.provider.as_str()) else {
        return Ok(kept(
            "unknown_provider",
            format!("provider {} is no longer configured", row.record.provider),
        ));
    };
    let verified = provider.recall(&row.record.raw.headers);
    let mapped = match provider.map(&verified, &row.record.raw.body, row.record.received_at) {
        Ok(mapped) => mapped,
        Err(error) => return Ok(kept("unmappable", format!("{}: {error}", error.code()))),
    };
    let stored = super::webhook::store_mapped(
        &provider,
        mapped,
        row.record.raw.clone(),
        row.record.received_at,
        state,
    )
    .await;
    match stored {
        Ok(receipt) => {
            state.store.release_quarantined(row.id).await?;
            Ok(ReplayResult {
                id: row.id,
                outcome: match receipt.status {
                    super::ReceiptStatus::Accepted => "accepted",
                    super::ReceiptStatus::Duplicate => "duplicate",
                    super::ReceiptStatus::Ignored => "ignored",
                },
                error: None,
                event_id: Some(receipt.event_id),
                video_id: receipt.video_id,
            })
        }
        Err(error) => Ok(kept("not_stored", format!("{}: retry later", error.code()))),
    }
}
