//! Rebuilding the status table from the log: fold every stream up to the log's head into a
//! shadow table, then swap it in with one store transaction that keeps rows written by appends
//! made meanwhile (those already fold their whole stream). Runs online (the server keeps
//! ingesting and serving) or from the CLI; one at a time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info};

use crate::event::{VideoEvent, VideoId};
use crate::lifecycle::{Fold, FOLD_VERSION};
use crate::projection::VideoStatus;
use crate::store::{EventStore, Store, StoreError};

/// Events read from the log per round trip.
const READ_BATCH: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Idle,
    Folding,
    CatchingUp,
    Swapping,
    Done,
    Failed,
}

/// `GET /admin/rebuild`: where the current (or last) rebuild is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RebuildReport {
    pub phase: Phase,
    pub events_done: u64,
    pub events_total: u64,
    pub events_per_sec: f64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Videos whose rebuilt status was swapped in.
    pub videos: u64,
    /// The global position the rebuild folded up to.
    pub position: u64,
    pub fold_version: u32,
}

impl RebuildReport {
    fn idle() -> RebuildReport {
        RebuildReport {
            phase: Phase::Idle,
            events_done: 0,
            events_total: 0,
            events_per_sec: 0.0,
            started_at: None,
            finished_at: None,
            error: None,
            videos: 0,
            position: 0,
            fold_version: FOLD_VERSION,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.phase,
            Phase::Folding | Phase::CatchingUp | Phase::Swapping
        )
    }
}

/// A rebuild was asked for while one runs.
#[derive(Debug, thiserror::Error)]
#[error("a rebuild is already running")]
pub struct AlreadyRunning(pub RebuildReport);

/// Starts and reports online rebuilds; cheap to clone.
#[derive(Clone)]
pub struct Rebuilder {
    store: Store,
    report: Arc<Mutex<RebuildReport>>,
}

impl Rebuilder {
    pub fn new(store: Store) -> Rebuilder {
        Rebuilder {
            store,
            report: Arc::new(Mutex::new(RebuildReport::idle())),
        }
    }

    pub fn report(&self) -> RebuildReport {
        self.lock().clone()
    }

    /// Starts a rebuild in the background, unless one runs.
    pub fn start(&self) -> Result<RebuildReport, AlreadyRunning> {
        let started = {
            let mut report = self.lock();
            if report.is_running() {
                return Err(AlreadyRunning(report.clone()));
            }
            *report = RebuildReport {
                phase: Phase::Folding,
                started_at: Some(Utc::now()),
                ..RebuildReport::idle()
            };
            report.clone()
        };
        let this = self.clone();
        tokio::spawn(async move {
            let progress = |update: &RebuildReport| *this.lock() = update.clone();
            let outcome = rebuild(&this.store, progress).await;
            let mut report = this.lock();
            match outcome {
                Ok(done) => *report = done,
                Err(error) => {
                    error!(%error, "rebuild failed; the previous status table stays");
                    report.phase = Phase::Failed;
                    report.error = Some(error.to_string());
                    report.finished_at = Some(Utc::now());
                }
            }
        });
        Ok(started)
    }

    /// On start: a status table built by another fold version is rebuilt in the background
    /// (the old one serves until the swap).
    pub async fn rebuild_if_fold_changed(&self) -> Result<bool, StoreError> {
        if self.store.fold_version().await? == Some(FOLD_VERSION) {
            return Ok(false);
        }
        info!(
            fold_version = FOLD_VERSION,
            "status table built by another fold version; rebuilding from the log"
        );
        Ok(self.start().is_ok())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RebuildReport> {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Folds the whole log up to its head and swaps the result in; `progress` hears each phase and
/// each batch. Holds one list of events per video in memory while folding.
pub async fn rebuild(
    store: &Store,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport, StoreError> {
    let started = Instant::now();
    let head = store.head_position().await?;
    let mut report = RebuildReport {
        phase: Phase::Folding,
        events_total: head,
        started_at: Some(Utc::now()),
        position: head,
        ..RebuildReport::idle()
    };
    progress(&report);
    let statuses: Vec<VideoStatus> = fold_log(store, head, |events_done| {
        report.events_done = events_done;
        report.events_per_sec = events_done as f64 / started.elapsed().as_secs_f64();
        progress(&report);
    })
    .await?
    .into_values()
    .collect();
    // Appends made while folding already wrote complete statuses in their own transactions;
    // the swap keeps those rows, so catching up is only a matter of not overwriting them.
    report.phase = Phase::CatchingUp;
    progress(&report);
    report.phase = Phase::Swapping;
    report.videos = statuses.len() as u64;
    progress(&report);
    store.replace_statuses(statuses, head, FOLD_VERSION).await?;
    report.phase = Phase::Done;
    report.finished_at = Some(Utc::now());
    report.events_per_sec = report.events_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    progress(&report);
    info!(
        events = report.events_done,
        videos = report.videos,
        "rebuild done"
    );
    Ok(report)
}

/// Folds every stream of the log without writing anything (`rebuild --verify`).
pub async fn refold_all(store: &Store) -> Result<BTreeMap<VideoId, VideoStatus>, StoreError> {
    let head = store.head_position().await?;
    fold_log(store, head, |_| {}).await
}

/// Folds every event up to global position `upto`, stream by stream; `on_batch` hears how many
/// events were read so far. Holds one list of events per video in memory.
async fn fold_log(
    store: &Store,
    upto: u64,
    mut on_batch: impl FnMut(u64),
) -> Result<BTreeMap<VideoId, VideoStatus>, StoreError> {
    let mut streams: BTreeMap<VideoId, Vec<VideoEvent>> = BTreeMap::new();
    let (mut after, mut events_done) = (0, 0);
    while after < upto {
        let batch = store.read_all(after, READ_BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = last.position;
        for stored in batch.into_iter().filter(|s| s.position <= upto) {
            events_done += 1;
            streams
                .entry(stored.event.video_id.clone())
                .or_default()
                .push(stored.event);
        }
        on_batch(events_done);
    }
    Ok(streams
        .into_iter()
        .filter_map(|(video_id, events)| {
            VideoStatus::from_fold(&video_id, &Fold::from_events(events)).map(|s| (video_id, s))
        })
        .collect())
}
