//! Re-mapping: the current mappers run again over the raw requests the store kept, after a
//! mapper was fixed or extended (`video-status rebuild --remap`). Owns the comparison and the
//! report; appends go through the video actors like any webhook, so dedupe, expected versions and
//! the status row work as they do live.
//!
//! The log is append-only, and re-mapping keeps it so:
//! - an event in the log is never rewritten: one the current mapper maps to the same event is
//!   `unchanged`; one it maps differently (or no longer maps) is reported and stays as stored;
//! - an ignored delivery (an untracked type, in the audit log) that the mapper now understands is
//!   appended as a new event, with the id the mapper gives it (as at arrival: the signed delivery
//!   id, else the body's id, else the hash of the body) and its original arrival time, at the end
//!   of its video's stream (a new version and global position, like a late webhook; the fold
//!   places it by its event time). Dedupe by `(provider, event_id)` stores it once, however often
//!   it was delivered or re-mapped.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::actor::{IngestError, Ingested, VideoManager};
use crate::correlation::Correlator;
use crate::event::{RawDelivery, VideoEvent};
use crate::providers::{Mapped, Provider, Providers};
use crate::store::{AuditKind, EventStore, Store, StoreError};

/// Stored requests read per round trip.
const PAGE: usize = 1_000;
/// Most notes a report keeps; the counts go on.
const MAX_NOTES: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum RemapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("appending a re-mapped delivery: {0}")]
    Ingest(#[from] IngestError),
}

/// What a re-map found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemapReport {
    /// Events of the log run through the current mappers.
    pub events_checked: u64,
    /// Of those, mapped to the very event stored.
    pub events_unchanged: u64,
    /// Of those, mapped differently, or to an untracked type, or not at all; kept as stored.
    pub events_differing: u64,
    /// Ignored deliveries run through the current mappers.
    pub ignored_checked: u64,
    /// Of those, now events, appended to the log.
    pub ignored_appended: u64,
    /// Of those, now events already in the log (an earlier re-map, or a redelivery).
    pub ignored_duplicate: u64,
    /// Of those, still of an untracked type.
    pub ignored_still_ignored: u64,
    /// Of those, not mappable now (kept in the audit log).
    pub ignored_unmappable: u64,
    /// Stored requests of a provider no longer configured (left as they are).
    pub unknown_provider: u64,
    /// One line per request worth a look (differing events, unmappable deliveries), the first
    /// [`MAX_NOTES`].
    pub notes: Vec<String>,
}

impl RemapReport {
    fn note(&mut self, line: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(line);
        }
    }
}

/// Runs the current mappers over every event of the log and every ignored delivery of the audit
/// log; appends what ignored deliveries now map to through `videos`.
pub async fn remap(
    store: &Store,
    providers: &Providers,
    videos: &VideoManager,
) -> Result<RemapReport, RemapError> {
    let mut report = RemapReport::default();
    // The same correlation as live webhooks: a mapper names a provider's id, the log holds the
    // video that id was linked to.
    let correlator = Correlator::new(store.clone());
    check_log(store, providers, &correlator, &mut report).await?;
    append_newly_mapped(store, providers, videos, &correlator, &mut report).await?;
    Ok(report)
}

/// The log's events against what their requests map to now. Reads only.
async fn check_log(
    store: &Store,
    providers: &Providers,
    correlator: &Correlator,
    report: &mut RemapReport,
) -> Result<(), StoreError> {
    let head = store.head_position().await?;
    let mut after = 0;
    while after < head {
        let page = store.read_deliveries(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.stored.position;
        for delivery in page.into_iter().filter(|d| d.stored.position <= head) {
            report.events_checked += 1;
            let stored = &delivery.stored.event;
            let Some(provider) = providers.get(stored.provider.as_str()) else {
                report.unknown_provider += 1;
                continue;
            };
            let at = format!(
                "position {} ({} {} of video {})",
                delivery.stored.position, stored.provider, stored.event_id, stored.video_id
            );
            let mut mapped = map_again(&provider, &delivery.raw, stored.received_at);
            if let Ok(Mapped::Event(now)) = &mut mapped {
                if provider.aliases(now).is_some() {
                    now.video_id = correlator.resolve(&now.video_id).await?;
                }
            }
            match mapped {
                Ok(Mapped::Event(now)) if now == *stored => report.events_unchanged += 1,
                Ok(Mapped::Event(now)) => {
                    report.events_differing += 1;
                    report.note(format!(
                        "{at}: now maps differently ({}); the stored event stays",
                        differing_fields(stored, &now).join(", ")
                    ));
                }
                Ok(Mapped::Ignored { event_type, .. }) => {
                    report.events_differing += 1;
                    report.note(format!(
                        "{at}: type {event_type:?} is no longer tracked; the stored event stays"
                    ));
                }
                Err(error) => {
                    report.events_differing += 1;
                    report.note(format!(
                        "{at}: no longer maps ({}: {error}); the stored event stays",
                        error.code()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Ignored deliveries that the current mappers turn into events go to the log.
async fn append_newly_mapped(
    store: &Store,
    providers: &Providers,
    videos: &VideoManager,
    correlator: &Correlator,
    report: &mut RemapReport,
) -> Result<(), RemapError> {
    let mut after = 0;
    loop {
        let page = store
            .list_audit_after(AuditKind::Ignored, after, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for entry in page {
            report.ignored_checked += 1;
            let record = entry.record;
            let Some(provider) = providers.get(record.provider.as_str()) else {
                report.unknown_provider += 1;
                continue;
            };
            match map_again(&provider, &record.raw, record.received_at) {
                Ok(Mapped::Event(mut event)) => {
                    if let Some(aliases) = provider.aliases(&event) {
                        event.video_id = correlator.video_for(event.video_id, aliases).await?;
                    }
                    match videos.ingest(event, record.raw).await? {
                        Ingested::Appended { .. } => report.ignored_appended += 1,
                        Ingested::Duplicate { .. } => report.ignored_duplicate += 1,
                    }
                }
                Ok(Mapped::Ignored { .. }) => report.ignored_still_ignored += 1,
                Err(error) => {
                    report.ignored_unmappable += 1;
                    report.note(format!(
                        "ignored delivery {} of {}: does not map ({}: {error}); left in the audit log",
                        entry.id,
                        record.provider,
                        error.code()
                    ));
                }
            }
        }
    }
    Ok(())
}

/// What the provider's current mapper makes of a request verified when it arrived.
fn map_again(
    provider: &Provider,
    raw: &RawDelivery,
    received_at: DateTime<Utc>,
) -> Result<Mapped, crate::providers::MapError> {
    let verified = provider.recall(&raw.headers);
    provider.map(&verified, &raw.body, received_at)
}

fn differing_fields(stored: &VideoEvent, now: &VideoEvent) -> Vec<&'static str> {
    [
        ("event_id", stored.event_id != now.event_id),
        ("video_id", stored.video_id != now.video_id),
        ("provider", stored.provider != now.provider),
        ("kind", stored.kind != now.kind),
        ("occurred_at", stored.occurred_at != now.occurred_at),
        ("received_at", stored.received_at != now.received_at),
        ("assets", stored.assets != now.assets),
        ("metadata", stored.metadata != now.metadata),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}
