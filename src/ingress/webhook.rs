//! `POST /webhooks/{provider}`: raw bytes → verify → map → the video's actor → status code.
//! The 200 is a promise: it is sent only once the event is durably in the log (or known).

use bytes::Buf;
use chrono::{DateTime, Utc};
use futures_util::Stream;
use serde::Serialize;
use tracing::{debug, error, instrument, warn, Span};
use warp::http::HeaderMap;

use super::limits::read_body;
use super::reject::ApiError;
use crate::actor::{IngestError, Ingested};
use crate::app::AppState;
use crate::event::{EventId, RawDelivery, VideoId};
use crate::lifecycle::Outcome;
use crate::providers::health::DeliveryResult;
use crate::providers::{Mapped, Provider};
use crate::store::{AuditKind, AuditRecord, EventStore, QuarantineRecord};

/// The 200 body: what became of the delivery.
#[derive(Debug, Serialize)]
pub struct Receipt {
    pub status: ReceiptStatus,
    pub event_id: EventId,
    pub video_id: Option<VideoId>,
    /// For a stored event: whether the fold accepted it or kept it as a rejected regression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    Accepted,
    Duplicate,
    Ignored,
}

// Debug level, as the spans under it: at the default `info`, formatting them cost about a tenth of
// the server's CPU per webhook (docs/benchmarks.md), so the log lines below name the provider (and
// video, event) themselves. Exported traces still get them (`telemetry::exported_spans`).
#[instrument(level = "debug", skip_all, fields(provider = %provider_name, video_id, event_id, result, otel.status_code))]
pub async fn receive<S, B>(
    provider_name: String,
    headers: HeaderMap,
    body: S,
    state: AppState,
) -> Result<warp::reply::Json, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let started = std::time::Instant::now();
    let result = handle(&provider_name, &headers, body, &state).await;
    let delivery = match &result {
        Ok(receipt) => match (receipt.status, receipt.outcome) {
            (ReceiptStatus::Accepted, Some(Outcome::Rejected)) => DeliveryResult::Rejected,
            (ReceiptStatus::Accepted, _) => DeliveryResult::Accepted,
            (ReceiptStatus::Duplicate, _) => DeliveryResult::Duplicate,
            (ReceiptStatus::Ignored, _) => DeliveryResult::Ignored,
        },
        Err(error) => match error.status().as_u16() {
            401 => DeliveryResult::Unauthorized,
            400 if error.code() != "unreadable_body" => DeliveryResult::Unmappable,
            400..=499 => DeliveryResult::Malformed,
            _ => DeliveryResult::Unavailable,
        },
    };
    let span = Span::current();
    span.record("result", delivery.label());
    if delivery == DeliveryResult::Unavailable {
        // Only a failure of ours marks the trace failed; a provider's bad request is its own.
        span.record("otel.status_code", "ERROR");
    }
    state
        .provider_health
        .record(&provider_name, delivery, Utc::now(), started.elapsed());
    result.map(|receipt| warp::reply::json(&receipt))
}

async fn handle<S, B>(
    provider_name: &str,
    headers: &HeaderMap,
    body: S,
    state: &AppState,
) -> Result<Receipt, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let provider = state
        .providers
        .get(provider_name)
        .ok_or_else(|| ApiError::unknown_provider(provider_name))?;
    let body = read_body(headers, body, state.config.limits.max_body_bytes).await?;
    let received_at = Utc::now();
    let verified = provider
        .verify(headers, &body, received_at)
        .await
        .inspect_err(|error| {
            warn!(
                provider = %provider_name,
                reason = error.code(),
                "webhook signature rejected"
            );
        })?;
    let raw = RawDelivery {
        body,
        headers: verified.headers.clone(),
    };
    let mapped = match provider.map(&verified, &raw.body, received_at) {
        Ok(mapped) => mapped,
        Err(error) => {
            warn!(
                provider = %provider_name,
                reason = error.code(),
                "verified webhook could not be mapped; quarantined"
            );
            let record = QuarantineRecord {
                provider: provider.name().clone(),
                error_code: error.code().to_string(),
                reason: error.to_string(),
                received_at,
                raw,
            };
            state.store.quarantine(record).await?;
            return Err(ApiError::unmappable(&error));
        }
    };
    store_mapped(&provider, mapped, raw, received_at, state).await
}

/// Stores what a mapper made of a verified request: an untracked type in the audit log, an event
/// through its video's actor. Shared by live webhooks and quarantine replays.
pub(super) async fn store_mapped(
    provider: &Provider,
    mapped: Mapped,
    raw: RawDelivery,
    received_at: DateTime<Utc>,
    state: &AppState,
) -> Result<Receipt, ApiError> {
    match mapped {
        Mapped::Ignored {
            event_id,
            video_id,
            event_type,
        } => {
            Span::current().record("event_id", event_id.as_str());
            // A 200 like any other: at `info`, a provider sending many untracked types would
            // fill the log at webhook rate. The audit log and `webhooks_total` keep them.
            debug!(
                provider = %provider.name(),
                %event_id,
                event_type,
                "untracked event type kept in the audit log"
            );
            let record = AuditRecord {
                provider: provider.name().clone(),
                event_id: Some(event_id.clone()),
                video_id: video_id.clone(),
                kind: AuditKind::Ignored,
                detail: format!("untracked event type {event_type:?}"),
                received_at,
                raw,
            };
            state.store.record_audit(record).await?;
            Ok(Receipt {
                status: ReceiptStatus::Ignored,
                event_id,
                video_id,
                outcome: None,
            })
        }
        Mapped::Event(mut event) => {
            if let Some(aliases) = provider.aliases(&event) {
                event.video_id = state.correlator.video_for(event.video_id, aliases).await?;
            }
            let span = Span::current();
            span.record("event_id", event.event_id.as_str());
            span.record("video_id", event.video_id.as_str());
            let (event_id, video_id) = (event.event_id.clone(), event.video_id.clone());
            let ingested = state.videos.ingest(event, raw).await.inspect_err(|error| {
                // Overload answers are the limits working, and counted; anything else is ours.
                if !matches!(error, IngestError::VideoBusy | IngestError::Overloaded) {
                    error!(
                        provider = %provider.name(),
                        %video_id,
                        %event_id,
                        %error,
                        "webhook not stored"
                    );
                }
            })?;
            let (status, outcome, video_id) = match ingested {
                Ingested::Appended { outcome, .. } => {
                    (ReceiptStatus::Accepted, Some(outcome), video_id)
                }
                // The id's stored event may be another video's (a conflicting reuse): name that one.
                Ingested::Duplicate { video_id, .. } => (ReceiptStatus::Duplicate, None, video_id),
            };
            Ok(Receipt {
                status,
                event_id,
                video_id: Some(video_id),
                outcome,
            })
        }
    }
}
