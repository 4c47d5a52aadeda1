//! Rebuilding the status table from the log: read the log stream by stream up to its head, fold
//! one video at a time into a shadow table, then swap it in with one store transaction that
//! keeps rows written by appends made meanwhile (those already fold their whole stream). Memory
//! does not grow with the log. Runs online (the server keeps ingesting and serving) or from the
//! CLI; one at a time.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tracing::{error, info};

use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::event::{VideoEvent, VideoId};
use crate::lifecycle::{fold_state, FOLD_VERSION};
use crate::projection::VideoStatus;
use crate::store::{
    EventStore, LiveStatus, RebuiltStatus, StatusCorrections, StatusQuery, Store, StoreError,
    StoredEvent, StreamCursor,
};

/// Events read from the log per round trip, shared out between the ranges folded at once: the
/// decoded events in memory stay the same however many ranges there are.
const READ_BATCH: usize = 6_000;
/// Most statuses per write to the shadow table (and rows per step of freeing the table a swap
/// replaced). An online rebuild shares the store's writer with the webhooks, which run first
/// but wait for the write in progress. Measured beside 1,000 webhooks/s while every row of
/// 100k was rewritten (docs/benchmarks.md): 64 rows per write raised the webhooks' p99 about
/// 2x over idle, 32 rows 1.4-1.5x, 16 rows 1.1x; the rebuild took 9, 15-18 and 28-33 s.
const SHADOW_BATCH: usize = 32;
/// Statuses per shadow write when nothing else writes (`video-status rebuild`): each write is a
/// transaction, and fewer of them cost less.
const SHADOW_BATCH_ALONE: usize = 5_000;
/// Most ranges of streams folded at once: reading and folding take a core each range, and past
/// a few the store's read pool (which webhooks share) becomes the limit.
const MAX_RANGES: usize = 4;
/// Fewest events per range: a small log folds faster in one range than split.
const MIN_EVENTS_PER_RANGE: u64 = 100_000;
/// Most statuses an online rebuild corrects in the live table itself, held in memory until the
/// fold ends. Past it, the rebuild starts over and builds a whole shadow table instead.
const MAX_CORRECTIONS: usize = 2_000;
/// Corrections written per transaction. Appends wait for each, and scattered rows each dirty
/// pages of their own: measured (docs/benchmarks.md), 100 rows in one transaction held the
/// writer 5-12 ms, 1,000 rows 30-60 ms.
const CORRECTIONS_PER_TRANSACTION: usize = 25;

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
    /// Statuses an online rebuild found different and rewrote (or removed) in the live table,
    /// when so few differed that it corrected them in place; `None` when a whole new table was
    /// swapped in.
    pub corrected: Option<u64>,
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
            corrected: None,
        }
    }

    /// A rebuild of the log up to global position `head`, starting now.
    fn starting(head: u64) -> RebuildReport {
        RebuildReport {
            phase: Phase::Folding,
            events_total: head,
            started_at: Some(Utc::now()),
            position: head,
            ..RebuildReport::idle()
        }
    }

    /// Marks the rebuild that started at `started` done, with its rate over the whole run.
    fn finish(&mut self, started: Instant) {
        self.phase = Phase::Done;
        self.finished_at = Some(Utc::now());
        self.events_per_sec = self.events_done as f64 / started.elapsed().as_secs_f64().max(1e-9);
    }

    pub fn is_running(&self) -> bool {
        matches!(
            self.phase,
            Phase::Folding | Phase::CatchingUp | Phase::Swapping
        )
    }
}

/// Why [`Rebuilder::start`] started nothing.
#[derive(Debug, thiserror::Error)]
pub enum NotStarted {
    /// A rebuild was asked for while one runs.
    #[error("a rebuild is already running")]
    AlreadyRunning(RebuildReport),
    /// The log's head could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Starts, reports and (at shutdown) stops online rebuilds; cheap to clone.
#[derive(Clone)]
pub struct Rebuilder {
    store: Store,
    report: Arc<Mutex<RebuildReport>>,
    /// Turns true once, at shutdown: a running rebuild stops at its next step.
    stopping: Arc<watch::Sender<bool>>,
    /// The thread of the last rebuild started, joined by [`Rebuilder::stop`].
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

/// How long [`Rebuilder::stop`] waits for a running rebuild to notice.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The error a rebuild stopped by shutdown reports.
const STOPPED_BY_SHUTDOWN: &str =
    "the server stopped before the rebuild finished; the previous status table stays";

impl Rebuilder {
    pub fn new(store: Store) -> Rebuilder {
        Rebuilder {
            store,
            report: Arc::new(Mutex::new(RebuildReport::idle())),
            stopping: Arc::new(watch::channel(false).0),
            thread: Arc::new(Mutex::new(None)),
        }
    }

    /// Stops a running rebuild and waits for its thread, so that nothing writes to the store
    /// once the server has stopped. What it wrote is disposable: the previous status table
    /// serves, and the next rebuild starts over (a table built by an older fold is rebuilt on
    /// the next start). Rebuilds started afterwards stop at once.
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(thread) = thread else {
            return;
        };
        // Its threads run at nice 19 on one core: other processes busy on that core could slow
        // it down for long, and a shutdown must not hang on that.
        match tokio::time::timeout(
            STOP_WAIT,
            tokio::task::spawn_blocking(move || thread.join()),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => error!("the online rebuild's thread could not be joined"),
            Err(_) => tracing::warn!(
                waited_secs = STOP_WAIT.as_secs(),
                "the online rebuild did not stop in time; stopping without it (each of its \
                 writes is a transaction of its own, and the previous status table serves)"
            ),
        }
    }

    pub fn report(&self) -> RebuildReport {
        self.lock().clone()
    }

    /// Starts a rebuild in the background, unless one runs. The head of the log is read first,
    /// so the report handed back already says how many events the rebuild will fold. Nothing is
    /// claimed until the head is known: a caller dropped while it is read (a client that hangs
    /// up) leaves no rebuild marked as running that never will.
    pub async fn start(&self) -> Result<RebuildReport, NotStarted> {
        let head = self.store.head_position().await?;
        let started = {
            let mut report = self.lock();
            if report.is_running() {
                return Err(NotStarted::AlreadyRunning(report.clone()));
            }
            *report = RebuildReport::starting(head);
            report.clone()
        };
        let this = self.clone();
        let mut stopping = self.stopping.subscribe();
        // A thread of its own, at nice 19 on one core, with a runtime of its own: the threads
        // it starts for reading and folding inherit both, so the rebuild takes the cycles
        // webhooks leave and does not stretch their latency (see `lower_priority`).
        let spawned = std::thread::Builder::new()
            .name("online-rebuild".into())
            .spawn({
                let (this, started) = (this.clone(), started.clone());
                move || {
                    lower_priority();
                    let outcome = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| StoreError::Unavailable(Box::new(e)))
                        .and_then(|runtime| {
                            runtime.block_on(async {
                                // Dropped at shutdown between two steps: every write the
                                // rebuild makes is a transaction of its own, safe to stop after.
                                tokio::select! {
                                    outcome = rebuild_beside_webhooks(
                                        &this.store,
                                        started,
                                        MAX_CORRECTIONS,
                                        |update| *this.lock() = update.clone(),
                                    ) => outcome.map(Some),
                                    _ = stopping.wait_for(|stopping| *stopping) => Ok(None),
                                }
                            })
                        });
                    this.finish(outcome);
                }
            });
        match spawned {
            Ok(thread) => {
                *self
                    .thread
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(thread);
            }
            Err(error) => this.finish(Err(StoreError::Unavailable(Box::new(error)))),
        }
        Ok(started)
    }

    /// Records how the rebuild ended: its final report, or why it did not finish (`None`: the
    /// server stopped it).
    fn finish(&self, outcome: Result<Option<RebuildReport>, StoreError>) {
        let mut report = self.lock();
        let why = match outcome {
            Ok(Some(done)) => {
                *report = done;
                return;
            }
            Ok(None) => {
                info!("{STOPPED_BY_SHUTDOWN}");
                STOPPED_BY_SHUTDOWN.to_string()
            }
            Err(error) => {
                error!(%error, "rebuild failed; the previous status table stays");
                error.to_string()
            }
        };
        report.phase = Phase::Failed;
        report.error = Some(why);
        report.finished_at = Some(Utc::now());
    }

    /// On start: a status table built by another fold version, or by none recorded (a store
    /// written before fold versions were), is rebuilt in the background (the old one serves
    /// until the swap). A new store, with neither events nor statuses, is recorded as built by
    /// this fold at once: there is nothing to fold.
    pub async fn rebuild_if_fold_changed(&self) -> Result<bool, StoreError> {
        match self.store.fold_version().await? {
            Some(FOLD_VERSION) => return Ok(false),
            None if self.store_is_new().await? => {
                self.store
                    .correct_statuses(StatusCorrections::default(), 0, Some(FOLD_VERSION))
                    .await?;
                return Ok(false);
            }
            Some(found) => info!(
                found,
                fold_version = FOLD_VERSION,
                "status table built by another fold version; rebuilding from the log"
            ),
            // A new store, or one written before fold versions were recorded.
            None => info!(
                fold_version = FOLD_VERSION,
                "no fold version recorded for the status table; building it from the log"
            ),
        }
        match self.start().await {
            Ok(_) => Ok(true),
            Err(NotStarted::AlreadyRunning(_)) => Ok(false),
            Err(NotStarted::Store(error)) => Err(error),
        }
    }

    /// No event in the log and no row in the status table.
    async fn store_is_new(&self) -> Result<bool, StoreError> {
        if self.store.head_position().await? > 0 {
            return Ok(false);
        }
        let any_status = self
            .store
            .list_statuses(StatusQuery {
                limit: 1,
                ..StatusQuery::default()
            })
            .await?;
        Ok(any_status.videos.is_empty())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RebuildReport> {
        self.report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Nice value of an online rebuild's threads: the weakest claim on the core under the normal
/// scheduling class.
const ONLINE_NICE: i32 = 19;

/// Puts the calling thread, and the threads it starts, on one core at nice 19: the other cores
/// never see the rebuild, and a webhook thread that wakes on its core is placed ahead of it.
///
/// Not the idle scheduling class (`SCHED_IDLE`), used until 2026-12-06: every connection of the
/// process to one SQLite file shares that file's lock and WAL-index mutexes (the unix VFS's
/// `pLockMutex` and `pShmMutex`), and a rebuild reader preempted inside one held up the writer
/// until its core fell idle. Alternated on 2 cores beside 1,000 webhooks/s, the medians of the
/// webhooks' p99 during / idle read 1.92-2.59 in the idle class and 1.20-1.67 at nice 19, which
/// also folded faster (docs/benchmarks.md). Nice 19 on both cores had read 2.2-2.6. Best effort:
/// a rebuild at normal priority on every core is still correct.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sched_getaffinity and sched_setaffinity read and write only the set they are
        // given, of the size given; `pid = 0` is the calling thread.
        unsafe {
            let size = std::mem::size_of::<libc::cpu_set_t>();
            let mut allowed: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, size, &mut allowed) == 0 && libc::CPU_COUNT(&allowed) > 1
            {
                let last = (0..libc::CPU_SETSIZE as usize)
                    .rev()
                    .find(|&cpu| libc::CPU_ISSET(cpu, &allowed));
                if let Some(cpu) = last {
                    let mut one: libc::cpu_set_t = std::mem::zeroed();
                    libc::CPU_SET(cpu, &mut one);
                    if libc::sched_setaffinity(0, size, &one) != 0 {
                        tracing::warn!("cannot keep the online rebuild on one core");
                    }
                }
            }
        }
        // SAFETY: setpriority only reads its integer arguments; `who = 0` is the calling thread.
        let niced = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, ONLINE_NICE) } == 0;
        if !niced {
            tracing::warn!(
                "cannot lower the online rebuild's CPU priority; it runs at normal priority"
            );
        }
    }
}

/// Folds the whole log up to its head into a shadow table and swaps it in; `progress` hears each
/// phase and each page. Memory holds a page of events or two and the longest stream, whatever
/// the size of the log: statuses go to the shadow table as they are folded.
pub async fn rebuild(
    store: &Store,
    progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport, StoreError> {
    let head = store.head_position().await?;
    let ranges = ranges_for(head);
    rebuild_in_ranges(
        store,
        RebuildReport::starting(head),
        ranges,
        Pace::Full,
        progress,
    )
    .await
}

/// [`rebuild`] while the server ingests, from the report [`Rebuilder::start`] answered with.
/// First it folds the log and compares each status with the live row, keeping only what differs,
/// and corrects those rows ([`write_corrections`]): when the fold rules did not change (or changed
/// few statuses) nothing else is written, so the webhooks' appends share the writer and the disk
/// with nothing. Past `most_corrections` differences ([`MAX_CORRECTIONS`]) it starts over with a
/// whole shadow table, whose writes keep the store's writer and disk busy at most half the time.
async fn rebuild_beside_webhooks(
    store: &Store,
    started: RebuildReport,
    most_corrections: usize,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport, StoreError> {
    if let Some(done) =
        correct_in_place(store, started.clone(), most_corrections, &mut progress).await?
    {
        return Ok(done);
    }
    info!(
        most = most_corrections,
        "more statuses differ from the log than a rebuild corrects in place; building a new table"
    );
    let restarted = RebuildReport {
        started_at: Some(Utc::now()),
        ..started
    };
    // One range: the rebuild has one core (see `lower_priority`).
    rebuild_in_ranges(store, restarted, 1, Pace::Shared, progress).await
}

/// Folds the log up to the position of `report` (a [`RebuildReport::starting`]) in one range,
/// compares every status with the live table and corrects the rows that differ, a few per
/// transaction. `None`, with nothing written, once more than `most` rows differ.
async fn correct_in_place(
    store: &Store,
    mut report: RebuildReport,
    most: usize,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<Option<RebuildReport>, StoreError> {
    let head = report.position;
    let started = Instant::now();
    progress(&report);
    let mut walk = FoldBesideLive::new(store.clone(), head);
    let mut corrections = StatusCorrections::default();
    while let Some((folded, live)) = walk.next().await? {
        report.events_done += walk.take_events_read();
        report.videos += folded.len() as u64;
        compare(folded, live, head, &mut corrections);
        if corrections.len() > most {
            return Ok(None);
        }
        report.events_per_sec = report.events_done as f64 / started.elapsed().as_secs_f64();
        progress(&report);
    }
    // Appends made while folding wrote complete statuses; the correction keeps those rows.
    report.phase = Phase::CatchingUp;
    progress(&report);
    report.phase = Phase::Swapping;
    progress(&report);
    let corrected = write_corrections(store, corrections, head).await?;
    report.corrected = Some(corrected);
    report.finish(started);
    progress(&report);
    info!(
        events = report.events_done,
        videos = report.videos,
        corrected,
        "rebuild done; statuses corrected in place"
    );
    Ok(Some(report))
}

/// Writes the corrections of a rebuild that folded the log up to `head`,
/// [`CORRECTIONS_PER_TRANSACTION`] at a time, each transaction followed by a pause as long as it
/// took (as [`Pace::Shared`] paces shadow writes), so that appends wait for a few rows at most.
/// The last transaction records the fold version: a crash before it leaves the table marked as
/// built by the older fold, and the next start rebuilds it again. Answers how many rows changed.
async fn write_corrections(
    store: &Store,
    corrections: StatusCorrections,
    head: u64,
) -> Result<u64, StoreError> {
    let StatusCorrections { rewrite, remove } = corrections;
    let mut transactions: Vec<StatusCorrections> = in_chunks(rewrite)
        .map(|rewrite| StatusCorrections {
            rewrite,
            remove: Vec::new(),
        })
        .chain(in_chunks(remove).map(|remove| StatusCorrections {
            rewrite: Vec::new(),
            remove,
        }))
        .collect();
    let last = transactions.pop().unwrap_or_default();
    let mut corrected = 0;
    for transaction in transactions {
        let started = Instant::now();
        corrected += store.correct_statuses(transaction, head, None).await?;
        tokio::time::sleep(started.elapsed()).await;
    }
    corrected += store
        .correct_statuses(last, head, Some(FOLD_VERSION))
        .await?;
    Ok(corrected)
}

/// `items` moved into vectors of [`CORRECTIONS_PER_TRANSACTION`] (the last may hold fewer).
fn in_chunks<T>(items: Vec<T>) -> impl Iterator<Item = Vec<T>> {
    let mut items = items.into_iter().peekable();
    std::iter::from_fn(move || {
        items.peek()?;
        Some(items.by_ref().take(CORRECTIONS_PER_TRANSACTION).collect())
    })
}

/// The bound just after what `compared_to` covers.
fn after(compared_to: &Bound<VideoId>) -> Bound<VideoId> {
    match compared_to {
        Bound::Included(id) | Bound::Excluded(id) => Bound::Excluded(id.clone()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// Adds to `corrections` what differs between `folded` (the log up to position `head`) and
/// `live`, both in video id order and covering the same ids: a folded status the live row does
/// not equal (or that has no row) is rewritten, a live row without a folded status is removed.
/// A live row that folds an event past `head` is neither: an append wrote it while the rebuild
/// folded, from the whole stream, and the correction would keep it anyway. Left out here, such
/// rows do not count towards the most a rebuild corrects, however long it runs beside webhooks.
fn compare(
    folded: Vec<RebuiltStatus>,
    live: Vec<LiveStatus>,
    head: u64,
    corrections: &mut StatusCorrections,
) {
    let appended_since = |row: &LiveStatus| row.stored.as_ref().is_some_and(|s| s.position > head);
    let mut live = live.into_iter().peekable();
    for rebuilt in folded {
        while let Some(row) = live.next_if(|row| row.video_id < rebuilt.status.video_id) {
            if !appended_since(&row) {
                corrections.remove.push(row.video_id);
            }
        }
        match live.next_if(|row| row.video_id == rebuilt.status.video_id) {
            Some(row) if row.stored.as_ref() == Some(&rebuilt) || appended_since(&row) => {}
            _ => corrections.rewrite.push(rebuilt),
        }
    }
    corrections.remove.extend(
        live.filter(|row| !appended_since(row))
            .map(|row| row.video_id),
    );
}

/// How fast a rebuild writes its shadow table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// One write after the other: nothing else writes (the CLI).
    Full,
    /// After each write, a pause as long as the write took: the webhooks' appends share the
    /// writer thread and the disk with the shadow rows.
    Shared,
}

impl Pace {
    /// Most statuses per shadow write.
    fn shadow_batch(self) -> usize {
        match self {
            Pace::Full => SHADOW_BATCH_ALONE,
            Pace::Shared => SHADOW_BATCH,
        }
    }

    /// Rows of the replaced status table freed per write; `None`: all at once.
    fn free_batch(self) -> Option<usize> {
        match self {
            Pace::Full => None,
            Pace::Shared => Some(SHADOW_BATCH),
        }
    }
}

/// [`rebuild`] up to the global position of `report` (a [`RebuildReport::starting`]), folding
/// about `ranges` ranges of streams at once.
async fn rebuild_in_ranges(
    store: &Store,
    mut report: RebuildReport,
    ranges: usize,
    pace: Pace,
    mut progress: impl FnMut(&RebuildReport),
) -> Result<RebuildReport, StoreError> {
    let head = report.position;
    let started = Instant::now();
    progress(&report);
    // What an earlier rebuild left to free (it stopped before the end): the swap needs it gone.
    free_replaced(store, pace).await?;
    let shadow = store.begin_shadow().await?;
    let ranges = StreamRange::split(store, ranges).await?;
    let page_size = READ_BATCH / ranges.len();
    // Each range folds on its own tasks; their statuses meet here, in no particular order (the
    // shadow is a table), and one shadow write is in flight while the ranges go on.
    let (folded, mut statuses) = mpsc::channel::<Vec<RebuiltStatus>>(2 * ranges.len());
    let events_done = Arc::new(AtomicU64::new(0));
    let mut folding = JoinSet::new();
    for range in ranges {
        let (store, folded, events_done) = (store.clone(), folded.clone(), events_done.clone());
        folding.spawn(async move {
            let mut refold = Refold::over(store, range, head, page_size);
            while let Some(batch) = refold.next_batch().await? {
                events_done.fetch_add(refold.take_events_read(), Ordering::Relaxed);
                if folded.send(batch).await.is_err() {
                    break; // the rebuild failed and stopped listening
                }
            }
            Ok::<(), StoreError>(())
        });
    }
    drop(folded);
    let mut writing: Option<JoinHandle<Result<(), StoreError>>> = None;
    let most = pace.shadow_batch();
    while let Some(mut batch) = statuses.recv().await {
        // Whatever else the ranges folded meanwhile joins this write, up to its size.
        while batch.len() < most {
            match statuses.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        report.videos += batch.len() as u64;
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(most));
            let chunk = std::mem::replace(&mut batch, rest);
            if let Some(previous) = writing.take() {
                previous.await.map_err(joined)??;
            }
            let store = store.clone();
            writing = Some(tokio::spawn(async move {
                let started = Instant::now();
                store.write_shadow(shadow, chunk).await?;
                if pace == Pace::Shared {
                    tokio::time::sleep(started.elapsed()).await;
                }
                Ok(())
            }));
        }
        report.events_done = events_done.load(Ordering::Relaxed);
        report.events_per_sec = report.events_done as f64 / started.elapsed().as_secs_f64();
        progress(&report);
    }
    while let Some(range) = folding.join_next().await {
        range.map_err(joined)??;
    }
    if let Some(last) = writing.take() {
        last.await.map_err(joined)??;
    }
    report.events_done = events_done.load(Ordering::Relaxed);
    // Appends made while folding already wrote complete statuses in their own transactions;
    // the swap keeps those rows, so catching up is only a matter of not overwriting them.
    report.phase = Phase::CatchingUp;
    progress(&report);
    report.phase = Phase::Swapping;
    progress(&report);
    store.swap_shadow(shadow, head, FOLD_VERSION).await?;
    // Still swapping: the new table serves, the old one's pages are freed.
    free_replaced(store, pace).await?;
    report.finish(started);
    progress(&report);
    info!(
        events = report.events_done,
        videos = report.videos,
        "rebuild done"
    );
    Ok(report)
}

/// Folds every stream of the log into a map, writing nothing. For tests and small logs: it
/// holds every status; `rebuild --verify` walks a [`Refold`] instead.
pub async fn refold_all(store: &Store) -> Result<BTreeMap<VideoId, VideoStatus>, StoreError> {
    let head = store.head_position().await?;
    let mut refold = Refold::new(store.clone(), head);
    let mut statuses = BTreeMap::new();
    while let Some(batch) = refold.next_batch().await? {
        for rebuilt in batch {
            statuses.insert(rebuilt.status.video_id.clone(), rebuilt.status);
        }
    }
    Ok(statuses)
}

/// The log folded up to a global position, a page at a time, beside the live status rows of the
/// same videos: what an online rebuild compares before it corrects, and what `rebuild --verify`
/// reports. Each step hands back a page's folded statuses and the live rows from just after the
/// previous step's last video to this page's last one, both in video id order, so that a live
/// row between two folded videos (a video without a status in the log) comes with the page it
/// falls in. The last step hands back the live rows past every folded video.
pub struct FoldBesideLive {
    store: Store,
    refold: Refold,
    /// The live rows handed back so far are those up to this bound.
    compared_to: Bound<VideoId>,
    finished: bool,
}

impl FoldBesideLive {
    pub fn new(store: Store, head: u64) -> FoldBesideLive {
        FoldBesideLive {
            refold: Refold::new(store.clone(), head),
            store,
            compared_to: Bound::Unbounded,
            finished: false,
        }
    }

    /// Events read since the last call.
    pub fn take_events_read(&mut self) -> u64 {
        self.refold.take_events_read()
    }

    /// The next page's folded statuses and the live rows beside them; `None` once both ended.
    pub async fn next(
        &mut self,
    ) -> Result<Option<(Vec<RebuiltStatus>, Vec<LiveStatus>)>, StoreError> {
        if self.finished {
            return Ok(None);
        }
        let Some(folded) = self.refold.next_batch().await? else {
            self.finished = true;
            let rest = self
                .store
                .statuses_between(after(&self.compared_to), Bound::Unbounded)
                .await?;
            return Ok(Some((Vec::new(), rest)));
        };
        let Some(last) = folded.last().map(|rebuilt| rebuilt.status.video_id.clone()) else {
            // One stream filled the page: no video ended in it.
            return Ok(Some((folded, Vec::new())));
        };
        let live = self
            .store
            .statuses_between(after(&self.compared_to), Bound::Included(last.clone()))
            .await?;
        self.compared_to = Bound::Included(last);
        Ok(Some((folded, live)))
    }
}

/// The log folded stream by stream up to a global position, a page at a time: each
/// [`Refold::next_batch`] hands back the statuses of the next videos in video id order. Holds the
/// page being folded, the next one (read meanwhile, on another thread) and the stream that runs
/// over a page's end; never the whole log.
pub struct Refold {
    store: Store,
    upto: u64,
    before: Option<VideoId>,
    page_size: usize,
    ahead: Option<JoinHandle<Result<Vec<StoredEvent>, StoreError>>>,
    /// The last stream of the page before, which may go on in the next page.
    carry: StreamSoFar,
    events_read: u64,
}

impl Refold {
    /// Starts reading the whole log up to global position `upto`.
    pub fn new(store: Store, upto: u64) -> Refold {
        Refold::over(store, StreamRange::default(), upto, READ_BATCH)
    }

    /// Starts reading the streams of `range`, up to global position `upto`, `page_size` events
    /// per read.
    pub fn over(store: Store, range: StreamRange, upto: u64, page_size: usize) -> Refold {
        let start = range.from.map(|video_id| StreamCursor {
            video_id,
            version: 0,
        });
        let page_size = page_size.max(1);
        let ahead = Some(read_ahead(
            &store,
            start,
            range.before.clone(),
            upto,
            page_size,
        ));
        Refold {
            store,
            upto,
            before: range.before,
            page_size,
            ahead,
            carry: StreamSoFar::default(),
            events_read: 0,
        }
    }

    /// Events read since the last call.
    pub fn take_events_read(&mut self) -> u64 {
        std::mem::take(&mut self.events_read)
    }

    /// The statuses of the videos whose streams ended in the next page (possibly none, when one
    /// stream fills the page); `None` once the log is folded.
    pub async fn next_batch(&mut self) -> Result<Option<Vec<RebuiltStatus>>, StoreError> {
        let Some(ahead) = self.ahead.take() else {
            return Ok(None);
        };
        let page = ahead.await.map_err(joined)??;
        let last_page = page.len() < self.page_size;
        if let (false, Some(last)) = (last_page, page.last()) {
            let cursor = StreamCursor {
                video_id: last.event.video_id.clone(),
                version: last.version,
            };
            let before = self.before.clone();
            let (upto, page_size) = (self.upto, self.page_size);
            self.ahead = Some(read_ahead(
                &self.store,
                Some(cursor),
                before,
                upto,
                page_size,
            ));
        }
        self.events_read += page.len() as u64;
        let carry = std::mem::take(&mut self.carry);
        // Folding is CPU work: off the async workers, so an online rebuild does not stall them.
        let (statuses, carry) =
            tokio::task::spawn_blocking(move || fold_page(carry, page, last_page))
                .await
                .map_err(joined)?;
        self.carry = carry;
        Ok(Some(statuses))
    }
}

fn read_ahead(
    store: &Store,
    after: Option<StreamCursor>,
    before: Option<VideoId>,
    upto: u64,
    page_size: usize,
) -> JoinHandle<Result<Vec<StoredEvent>, StoreError>> {
    let store = store.clone();
    tokio::spawn(async move { store.read_streams(after, before, upto, page_size).await })
}

/// The streams from `from` (the first when `None`) to just before `before` (the last when
/// `None`), by stream id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamRange {
    pub from: Option<VideoId>,
    pub before: Option<VideoId>,
}

impl StreamRange {
    /// The whole log cut into about `parts` ranges of similar size, in order.
    pub async fn split(store: &Store, parts: usize) -> Result<Vec<StreamRange>, StoreError> {
        let cuts = store.split_streams(parts).await?;
        let mut ranges = Vec::with_capacity(cuts.len() + 1);
        let mut from = None;
        for cut in cuts {
            ranges.push(StreamRange {
                from: from.replace(cut.clone()),
                before: Some(cut),
            });
        }
        ranges.push(StreamRange { from, before: None });
        Ok(ranges)
    }
}

/// How many ranges a rebuild of `events` events folds at once: one per core, up to
/// [`MAX_RANGES`], and none smaller than [`MIN_EVENTS_PER_RANGE`].
fn ranges_for(events: u64) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let by_size = usize::try_from(events / MIN_EVENTS_PER_RANGE).unwrap_or(usize::MAX);
    cores.min(MAX_RANGES).min(by_size).max(1)
}

/// One whole stream, in stream order, to its status and the position of its last event; `None`
/// when no event of it was accepted.
pub fn fold_stream(events: Vec<StoredEvent>) -> Option<RebuiltStatus> {
    fold_page(StreamSoFar::default(), events, true).0.pop()
}

/// Folds every stream that ends in `page` (after the `carry` of the page before); the last
/// stream is carried to the next page unless this is the last one.
fn fold_page(
    carry: StreamSoFar,
    page: Vec<StoredEvent>,
    last_page: bool,
) -> (Vec<RebuiltStatus>, StreamSoFar) {
    let mut statuses = Vec::new();
    let mut stream = carry;
    for stored in page {
        if stream
            .events
            .last()
            .is_some_and(|last| last.video_id != stored.event.video_id)
        {
            // Room for as many events as the stream before: streams are alike in length, and
            // growing from empty moved every event of a stream once or twice more.
            let next = StreamSoFar::with_room(stream.events.len());
            statuses.extend(std::mem::replace(&mut stream, next).fold());
        }
        stream.events.push(stored.event);
        stream.position = stored.position;
    }
    if last_page {
        statuses.extend(std::mem::take(&mut stream).fold());
    }
    (statuses, stream)
}

/// One stream's events read so far, in version order, and the position of the last of them.
#[derive(Default)]
struct StreamSoFar {
    events: Vec<VideoEvent>,
    position: u64,
}

impl StreamSoFar {
    fn with_room(events: usize) -> StreamSoFar {
        StreamSoFar {
            events: Vec::with_capacity(events),
            position: 0,
        }
    }

    /// The whole stream to its status and the position of its last event.
    fn fold(self) -> Option<RebuiltStatus> {
        let video_id = self.events.first()?.video_id.clone();
        let (state, version) = fold_state(self.events);
        Some(RebuiltStatus {
            status: VideoStatus::from_state(video_id, state?, version),
            position: self.position,
        })
    }
}

/// Frees the status table the last swap replaced: beside webhooks a few rows per write, paced
/// like the shadow writes; alone, at once (dropping it costs a fraction of deleting its rows).
async fn free_replaced(store: &Store, pace: Pace) -> Result<(), StoreError> {
    loop {
        let started = Instant::now();
        if store.free_replaced_statuses(pace.free_batch()).await? == 0 {
            return Ok(());
        }
        if pace == Pace::Shared {
            tokio::time::sleep(started.elapsed()).await;
        }
    }
}

fn joined(error: tokio::task::JoinError) -> StoreError {
    if error.is_panic() {
        std::panic::resume_unwind(error.into_panic());
    }
    StoreError::Unavailable(Box::new(error))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use crate::store::conformance::{append_request, sample_event};
    use std::future::Future;
    use std::task::Poll;
    use std::time::Duration;

    /// 40 videos of 1 to 4 events each, appended interleaved.
    async fn store_with_a_log() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = Store::open(&url).await.unwrap();
        let kinds = [
            EventKind::Uploaded,
            EventKind::ProcessingStarted,
            EventKind::Progress { percent: 50.0 },
            EventKind::Ready,
        ];
        for (round, kind) in kinds.into_iter().enumerate() {
            for video in 0..40 {
                if round < 1 + video % 4 {
                    let id = format!("vid_{video:02}");
                    let at = 1_000 + round as i64;
                    let event = sample_event(&id, &format!("evt_{id}_{round}"), kind.clone(), at);
                    store
                        .append(append_request(event, round as u64))
                        .await
                        .unwrap();
                }
            }
        }
        (dir, store)
    }

    async fn every_status(store: &Store) -> Vec<VideoStatus> {
        let query = StatusQuery {
            limit: 1000,
            ..StatusQuery::default()
        };
        store.list_statuses(query).await.unwrap().videos
    }

    #[tokio::test]
    async fn a_start_whose_caller_goes_away_leaves_no_rebuild_marked_running() {
        let (_dir, store) = store_with_a_log().await;
        let rebuilder = Rebuilder::new(store.clone());
        // Polled once (the head is being read on the read pool), then dropped, as a handler is
        // when its client hangs up. The read pool's thread may answer within that one poll on
        // another core: that start ran to the end, and the next try drops one in the middle.
        let mut dropped_while_reading = false;
        let mut before = Phase::Idle;
        for _ in 0..50 {
            before = rebuilder.report().phase;
            {
                let mut start = std::pin::pin!(rebuilder.start());
                let first = std::future::poll_fn(|cx| Poll::Ready(start.as_mut().poll(cx))).await;
                dropped_while_reading = first.is_pending();
            }
            if dropped_while_reading {
                break;
            }
            while rebuilder.report().is_running() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        assert!(
            dropped_while_reading,
            "the head read always finished within one poll"
        );
        assert_eq!(rebuilder.report().phase, before);

        let started = rebuilder.start().await.expect("nothing runs");
        let head = store.head_position().await.unwrap();
        assert_eq!((started.events_total, started.position), (head, head));
        while rebuilder.report().is_running() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rebuilder.report().phase, Phase::Done);
    }

    #[tokio::test]
    async fn a_new_store_is_recorded_as_built_by_this_fold_and_one_with_events_is_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("new.db").display());
        let new = Store::open(&url).await.unwrap();
        assert_eq!(new.fold_version().await.unwrap(), None);
        let rebuilder = Rebuilder::new(new.clone());
        assert!(!rebuilder.rebuild_if_fold_changed().await.unwrap());
        assert_eq!(rebuilder.report().phase, Phase::Idle);
        assert_eq!(new.fold_version().await.unwrap(), Some(FOLD_VERSION));

        // A log without a recorded fold version: written before versions were recorded.
        let (_dir, store) = store_with_a_log().await;
        assert_eq!(store.fold_version().await.unwrap(), None);
        let rebuilder = Rebuilder::new(store.clone());
        assert!(rebuilder.rebuild_if_fold_changed().await.unwrap());
        while rebuilder.report().is_running() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(rebuilder.report().phase, Phase::Done);
        assert_eq!(store.fold_version().await.unwrap(), Some(FOLD_VERSION));
    }

    #[tokio::test]
    async fn stopping_waits_for_a_running_rebuild_and_later_ones_stop_at_once() {
        let (_dir, store) = store_with_a_log().await;
        let rebuilder = Rebuilder::new(store.clone());
        rebuilder.start().await.expect("nothing runs");
        rebuilder.stop().await;
        let stopped = rebuilder.report();
        assert!(!stopped.is_running(), "still running: {stopped:?}");
        assert!(stopped.finished_at.is_some());

        rebuilder.start().await.expect("nothing runs");
        rebuilder.stop().await;
        let refused = rebuilder.report();
        assert_eq!(refused.phase, Phase::Failed);
        assert_eq!(refused.error.as_deref(), Some(STOPPED_BY_SHUTDOWN));
    }

    #[tokio::test]
    async fn ranges_folded_at_once_give_the_fold_of_the_whole_log() {
        let (_dir, store) = store_with_a_log().await;
        let head = store.head_position().await.unwrap();
        let expected: Vec<VideoStatus> = refold_all(&store).await.unwrap().into_values().collect();
        assert_eq!(expected.len(), 40);
        for ranges in [1, 3, 7] {
            let cuts = store.split_streams(ranges).await.unwrap();
            assert_eq!(cuts.len(), ranges - 1, "{ranges} ranges");
            let report = rebuild_in_ranges(
                &store,
                RebuildReport::starting(head),
                ranges,
                Pace::Full,
                |_| {},
            )
            .await
            .unwrap();
            assert_eq!(
                report.events_done, head,
                "{ranges} ranges read every event once"
            );
            assert_eq!(report.videos, 40, "{ranges} ranges fold every video once");
            assert_eq!(every_status(&store).await, expected, "{ranges} ranges");
        }
    }

    /// Writes `damaged` over the live rows (a status no fold gives, or a row of a video the log
    /// does not have), as a faulty projection or a hand edit would leave them.
    async fn damage(store: &Store, damaged: &[&str]) {
        let upto = store.head_position().await.unwrap();
        let mut rewrite = Vec::new();
        let folded = refold_all(store).await.unwrap();
        let any = every_status(store).await.remove(0);
        for id in damaged {
            let video_id = VideoId::parse(*id).unwrap();
            let mut status = folded
                .get(&video_id)
                .cloned()
                .unwrap_or_else(|| VideoStatus {
                    video_id,
                    ..any.clone()
                });
            status.progress = Some(99.0);
            rewrite.push(RebuiltStatus {
                status,
                position: 1,
            });
        }
        let corrections = StatusCorrections {
            rewrite,
            remove: Vec::new(),
        };
        store
            .correct_statuses(corrections, upto, Some(FOLD_VERSION))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_online_rebuild_corrects_the_few_rows_that_differ_in_place() {
        let (_dir, store) = store_with_a_log().await;
        let expected: Vec<VideoStatus> = refold_all(&store).await.unwrap().into_values().collect();
        rebuild(&store, |_| {}).await.unwrap();
        assert_eq!(every_status(&store).await, expected);

        let head = store.head_position().await.unwrap();
        let nothing = correct_in_place(&store, RebuildReport::starting(head), 10, |_| {})
            .await
            .unwrap()
            .expect("nothing differs");
        assert_eq!(nothing.corrected, Some(0));
        assert_eq!((nothing.events_done, nothing.videos), (head, 40));

        // A wrong row, and rows of videos without events, before, between and after the others.
        damage(&store, &["aaa_first", "vid_07", "vid_07x", "vid_99"]).await;
        assert_ne!(every_status(&store).await, expected);
        let done = correct_in_place(&store, RebuildReport::starting(head), 10, |_| {})
            .await
            .unwrap()
            .expect("four rows differ, ten may");
        assert_eq!(done.phase, Phase::Done);
        assert_eq!(done.corrected, Some(4));
        assert_eq!(every_status(&store).await, expected);
    }

    #[tokio::test]
    async fn corrections_past_one_transaction_all_land_and_the_last_records_the_fold_version() {
        let (_dir, store) = store_with_a_log().await;
        let expected: Vec<VideoStatus> = refold_all(&store).await.unwrap().into_values().collect();
        rebuild(&store, |_| {}).await.unwrap();
        let every_id: Vec<String> = expected
            .iter()
            .map(|status| status.video_id.as_str().to_owned())
            .collect();
        damage(
            &store,
            &every_id.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        let head = store.head_position().await.unwrap();
        // As a table built by the fold before this one would be marked.
        store
            .correct_statuses(StatusCorrections::default(), head, Some(FOLD_VERSION - 1))
            .await
            .unwrap();

        let done = correct_in_place(&store, RebuildReport::starting(head), 100, |_| {})
            .await
            .unwrap()
            .expect("40 rows differ, 100 may");
        // More than one transaction of corrections.
        const { assert!(40 > CORRECTIONS_PER_TRANSACTION) };
        assert_eq!(done.corrected, Some(40));
        assert_eq!(every_status(&store).await, expected);
        assert_eq!(store.fold_version().await.unwrap(), Some(FOLD_VERSION));
    }

    #[tokio::test]
    async fn an_online_rebuild_with_more_differences_than_it_corrects_builds_a_new_table() {
        let (_dir, store) = store_with_a_log().await;
        let expected: Vec<VideoStatus> = refold_all(&store).await.unwrap().into_values().collect();
        rebuild(&store, |_| {}).await.unwrap();
        damage(&store, &["vid_01", "vid_02", "vid_03"]).await;
        let damaged = every_status(&store).await;
        let head = store.head_position().await.unwrap();
        let gave_up = correct_in_place(&store, RebuildReport::starting(head), 2, |_| {})
            .await
            .unwrap();
        assert_eq!(gave_up, None);
        assert_eq!(every_status(&store).await, damaged, "nothing was written");

        let done = rebuild_beside_webhooks(&store, RebuildReport::starting(head), 2, |_| {})
            .await
            .unwrap();
        assert_eq!(done.phase, Phase::Done);
        assert_eq!(done.corrected, None, "a whole table was swapped in");
        assert_eq!(every_status(&store).await, expected);
    }

    #[test]
    fn comparing_keeps_what_differs_and_the_rows_the_fold_has_no_video_for() {
        let status = |id: &str, version: u64| RebuiltStatus {
            status: crate::store::conformance::sample_status(
                id,
                "mux",
                crate::lifecycle::Status::Uploaded,
                version,
            ),
            position: version,
        };
        let live = |id: &str, stored: Option<RebuiltStatus>| LiveStatus {
            video_id: VideoId::parse(id).unwrap(),
            stored,
        };
        let folded = vec![
            status("a", 1),
            status("c", 2),
            status("d", 1),
            status("f", 1),
            status("h", 2),
        ];
        // Rows `h` and `i` fold events past the head (5): appends wrote them meanwhile.
        let rows = vec![
            live("a", Some(status("a", 1))),
            live("b", Some(status("b", 1))),
            live("c", Some(status("c", 1))),
            live("d", None),
            live("e", Some(status("e", 1))),
            live("g", Some(status("g", 1))),
            live("h", Some(status("h", 6))),
            live("i", Some(status("i", 7))),
        ];
        let mut corrections = StatusCorrections::default();
        compare(folded, rows, 5, &mut corrections);
        let rewritten: Vec<&str> = corrections
            .rewrite
            .iter()
            .map(|rebuilt| rebuilt.status.video_id.as_str())
            .collect();
        assert_eq!(rewritten, ["c", "d", "f"]);
        let removed: Vec<&str> = corrections.remove.iter().map(VideoId::as_str).collect();
        assert_eq!(removed, ["b", "e", "g"]);
    }

    #[tokio::test]
    async fn the_ranges_cover_the_log_in_order_without_overlap() {
        let (_dir, store) = store_with_a_log().await;
        let ranges = StreamRange::split(&store, 4).await.unwrap();
        assert_eq!(ranges.len(), 4);
        assert_eq!(ranges[0].from, None);
        assert_eq!(ranges[3].before, None);
        for pair in ranges.windows(2) {
            assert!(pair[0].before.is_some());
            assert_eq!(pair[0].before, pair[1].from);
        }
        let whole = StreamRange::split(&store, 1).await.unwrap();
        assert_eq!(whole, vec![StreamRange::default()]);
    }
}
