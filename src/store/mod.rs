//! The event log and the status table beside it. One behaviour trait, [`EventStore`]; one file
//! per backend; [`Store`] is the enum the application holds, chosen by the store URL.
//!
//! What every backend promises:
//! - `append` is durable when it returns `Ok` (the HTTP 2xx depends on it);
//! - one stream per video, appended with an expected version ([`StoreError::Conflict`] otherwise);
//! - `(provider, event_id)` is unique across the whole log, enforced by the store itself;
//! - the status row given with an append is written in the same transaction, so the projection
//!   never lags the log;
//! - a global position increases with every appended event, in commit order.

pub mod conformance;
pub mod sqlite;

use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;

use tokio::sync::broadcast;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::event::{EventId, ProviderName, RawDelivery, VideoEvent, VideoId};
use crate::lifecycle::Status;
use crate::projection::VideoStatus;

/// What the caller does next is in the variant: reload and retry, answer 503, or alert.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream moved since the caller read it: reload and decide again.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    Conflict {
        stream: VideoId,
        expected: u64,
        actual: u64,
    },
    /// The store cannot take writes or answer reads now; the provider should retry later.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data could not be read back (a bug or a damaged file): never retried blindly.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// One event to append to a video's stream.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// Number of events the caller believes the stream has.
    pub expected_version: u64,
    /// Shared with the caller, which folds the same event: a retry after a conflict sends it
    /// again without a copy.
    pub event: Arc<VideoEvent>,
    pub raw: RawDelivery,
    /// The video's status after this event, written in the same transaction.
    pub status: Option<VideoStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored: `version` is the stream's new length, `position` the event's global position.
    Appended { position: u64, version: u64 },
    /// `(provider, event_id)` was already in the log; nothing was written. `same_body` tells a
    /// redelivery from a different body reusing the id.
    Duplicate { stream: VideoId, same_body: bool },
}

/// Where a video's actor may start instead of its whole stream (see [`crate::lifecycle::Tip`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub video_id: VideoId,
    /// The number of stream events folded into it.
    pub version: u64,
    /// The fold (code) version that folded it; another one's snapshot is ignored.
    pub fold_version: u32,
    pub status: VideoStatus,
    /// The last of those events in fold order.
    pub last_event: VideoEvent,
}

/// What a video's actor starts from, read at one instant: the video's snapshot if one is kept,
/// and the events of its stream after the snapshot's version (the whole stream without one).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VideoLog {
    pub snapshot: Option<Snapshot>,
    pub events: Vec<StoredEvent>,
}

/// An event as read back from the log.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub position: u64,
    /// 1-based place in its stream.
    pub version: u64,
    pub event: VideoEvent,
}

/// Where a read of the log in stream order resumes: after this event of this stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCursor {
    pub video_id: VideoId,
    pub version: u64,
}

/// An event read back with the raw request it was mapped from (for re-mapping).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDelivery {
    pub stored: StoredEvent,
    pub raw: RawDelivery,
}

/// A status folded from the log by a rebuild, with the global position of the last event it
/// folds (the row's `position`, which decides whether a later append's row wins at the swap).
#[derive(Debug, Clone, PartialEq)]
pub struct RebuiltStatus {
    pub status: VideoStatus,
    pub position: u64,
}

/// A row of the live status table as an online rebuild compares it with its fold: `stored` is
/// `None` when the row cannot be read back as a status (a damaged document), which no fold
/// equals.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveStatus {
    pub video_id: VideoId,
    pub stored: Option<RebuiltStatus>,
}

/// What an online rebuild found different between its fold and the live status table: statuses
/// to write (new or changed) and rows of videos that have no accepted event in the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusCorrections {
    pub rewrite: Vec<RebuiltStatus>,
    pub remove: Vec<VideoId>,
}

impl StatusCorrections {
    pub fn len(&self) -> usize {
        self.rewrite.len() + self.remove.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A rebuild's claim on the shadow status table. Claiming it again (another rebuild, in this
/// process or another) voids the earlier claim: its writes and its swap are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shadow {
    pub generation: u64,
}

/// A verified delivery that is kept but not folded: an untracked type, or an id reused with a
/// different body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    pub provider: ProviderName,
    pub event_id: Option<EventId>,
    pub video_id: Option<VideoId>,
    pub kind: AuditKind,
    pub detail: String,
    pub received_at: DateTime<Utc>,
    #[serde(skip)]
    pub raw: RawDelivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    /// Verified, but of an event type the mapper does not track.
    Ignored,
    /// An event id already in the log, delivered again with a different body.
    Conflict,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Ignored => "ignored",
            AuditKind::Conflict => "conflict",
        }
    }
}

/// An audit record as listed back, with its store id (the order it was recorded in).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub id: u64,
    pub record: AuditRecord,
}

/// A verified request that could not be mapped, kept so it can be replayed after a fix.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    pub provider: ProviderName,
    pub error_code: String,
    pub reason: String,
    pub received_at: DateTime<Utc>,
    pub raw: RawDelivery,
}

/// A quarantined request as listed back, with its store id.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantinedRequest {
    pub id: u64,
    pub record: QuarantineRecord,
}

/// Filters and cursor of `GET /videos`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusQuery {
    pub status: Option<Status>,
    pub provider: Option<ProviderName>,
    /// Only videos whose id sorts after this one.
    pub after: Option<VideoId>,
    pub limit: usize,
}

/// A page of statuses, ordered by video id.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusPage {
    pub videos: Vec<VideoStatus>,
    /// Set when more rows may follow: pass it as `after` for the next page.
    pub next_after: Option<VideoId>,
    /// The global position this page reflects (every event up to it is in the statuses).
    pub position: u64,
}

/// Counters that show whether group commit works.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreStats {
    /// Transactions committed by the writer.
    pub commits: u64,
    /// Events appended (duplicates excluded).
    pub appended: u64,
}

/// The behaviour every backend implements. Futures are `Send` so handlers can hold them.
pub trait EventStore: Send + Sync {
    fn append(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<AppendOutcome, StoreError>> + Send;

    /// Every event of one stream in stream order (empty if the video was never seen).
    fn read_stream(
        &self,
        video_id: &VideoId,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Up to `limit` events with a global position greater than `after`, in position order.
    fn read_all(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// The highest global position committed so far (0 for an empty log).
    fn head_position(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn get_status(
        &self,
        video_id: &VideoId,
    ) -> impl Future<Output = Result<Option<VideoStatus>, StoreError>> + Send;

    fn list_statuses(
        &self,
        query: StatusQuery,
    ) -> impl Future<Output = Result<StatusPage, StoreError>> + Send;

    /// Up to `limit` events at global positions up to `upto`, in stream order (stream id, then
    /// version), after `after` (from the first stream when `None`) and in streams whose id sorts
    /// before `before` (to the last stream when `None`). What a rebuild reads: one video's events
    /// arrive together, so it folds one video at a time, and ranges of streams fold in parallel.
    fn read_streams(
        &self,
        after: Option<StreamCursor>,
        before: Option<VideoId>,
        upto: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// Stream ids that cut the log into about `parts` ranges of similar size, in order (at most
    /// `parts - 1` of them; none for a small or empty log). Only shares out a rebuild's work: any
    /// cut gives the same result, so an estimate will do.
    fn split_streams(
        &self,
        parts: usize,
    ) -> impl Future<Output = Result<Vec<VideoId>, StoreError>> + Send;

    /// Like `read_all`, with each event's raw delivery.
    fn read_deliveries(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredDelivery>, StoreError>> + Send;

    /// Starts an empty shadow status table for a rebuild (dropping what an earlier, unfinished
    /// one left) and claims it.
    fn begin_shadow(&self) -> impl Future<Output = Result<Shadow, StoreError>> + Send;

    /// Adds rebuilt statuses to the shadow table; `Corrupt` if the claim was voided.
    fn write_shadow(
        &self,
        shadow: Shadow,
        statuses: Vec<RebuiltStatus>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Swaps the shadow table in, in one transaction, while appends may go on: the shadow folds
    /// the log up to global position `upto`; every live row written by an event at or before
    /// `upto` is replaced (or gone, if the shadow has no row for its video), and rows written by
    /// later appends are kept, since those already fold their whole stream. Records
    /// `fold_version` as the fold that built the table. The cost does not grow with the table:
    /// only the rows of later appends are copied.
    fn swap_shadow(
        &self,
        shadow: Shadow,
        upto: u64,
        fold_version: u32,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Frees up to `limit` rows of the status table the last swap replaced, in a write of their
    /// own (appends queue behind it only as long as those rows take); answers how many went, 0
    /// once nothing is left. `None` frees the whole table at once, for when nothing else writes.
    /// Until it is gone the next swap is refused (`Unavailable`).
    fn free_replaced_statuses(
        &self,
        limit: Option<usize>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The live status rows whose video ids lie within `from` and `to`, in video id order, with
    /// the position each was folded to: what an online rebuild compares its fold with.
    fn statuses_between(
        &self,
        from: Bound<VideoId>,
        to: Bound<VideoId>,
    ) -> impl Future<Output = Result<Vec<LiveStatus>, StoreError>> + Send;

    /// Applies some of an online rebuild's corrections to the live status table in one
    /// transaction, while appends may go on: the rebuild folded the log up to global position
    /// `upto`, so the row of a video appended to after `upto` is kept (it already folds its whole
    /// stream), and every other correction is written. With the last of a rebuild's corrections
    /// comes `Some(fold_version)`: it is recorded as the fold that built the table, as
    /// [`EventStore::swap_shadow`] does, and every snapshot is dropped, as a swap drops them.
    /// Answers how many rows changed. Its cost grows with the corrections (and the snapshots),
    /// not the status table.
    fn correct_statuses(
        &self,
        corrections: StatusCorrections,
        upto: u64,
        fold_version: Option<u32>,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// The fold (code) version that built the status table; `None` before any rebuild.
    fn fold_version(&self) -> impl Future<Output = Result<Option<u32>, StoreError>> + Send;

    /// How many times a whole status table was swapped in, by any process. A follower that sees
    /// it move without hearing [`Change::Rebuilt`] learns that another process (`video-status
    /// rebuild`) replaced the table under it.
    fn status_table_swaps(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn record_audit(
        &self,
        record: AuditRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Audit records, newest first.
    fn list_audit(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;

    /// Audit records of `kind` with an id greater than `after`, oldest first.
    fn list_audit_after(
        &self,
        kind: AuditKind,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<AuditEntry>, StoreError>> + Send;

    fn quarantine(
        &self,
        record: QuarantineRecord,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Quarantined requests with an id greater than `after`, oldest first.
    fn list_quarantine(
        &self,
        after: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<QuarantinedRequest>, StoreError>> + Send;

    /// Removes a quarantined request once a replay stored it (or recorded it as ignored).
    fn release_quarantined(&self, id: u64) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Keeps `snapshot` as its video's only one (it replaces an older one). Not durable on its own
    /// terms: a lost snapshot only costs a longer activation.
    fn save_snapshot(
        &self,
        snapshot: Snapshot,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The video's snapshot, if one was kept.
    fn load_snapshot(
        &self,
        video_id: &VideoId,
    ) -> impl Future<Output = Result<Option<Snapshot>, StoreError>> + Send;

    /// The video's snapshot and the events after it, in one read (see [`VideoLog`]).
    fn load_video(
        &self,
        video_id: &VideoId,
    ) -> impl Future<Output = Result<VideoLog, StoreError>> + Send;

    /// The events of one stream after version `after`, in stream order.
    fn read_stream_after(
        &self,
        video_id: &VideoId,
        after: u64,
    ) -> impl Future<Output = Result<Vec<StoredEvent>, StoreError>> + Send;

    /// For each of `ids` that is a known alias, the video it names, in the order of `ids`.
    fn resolve_aliases(
        &self,
        ids: Vec<VideoId>,
    ) -> impl Future<Output = Result<Vec<(VideoId, VideoId)>, StoreError>> + Send;

    /// Links each of `aliases` to `video` (the video's own id included, to mark it known), durably.
    /// An alias already linked keeps its video: the first link wins.
    fn link_aliases(
        &self,
        video: VideoId,
        aliases: Vec<VideoId>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Answers `Ok` when the store can take a write now (for `/readyz`).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Bytes this process may still write on the disk the store keeps its files on; `None` for
    /// a store without local files, or when the system cannot tell.
    fn free_disk_bytes(&self) -> Option<u64>;

    fn stats(&self) -> StoreStats;

    /// Follows the log and the status table live, in commit order, from the moment of the call:
    /// every append with the video's status after it (in position order), and every status a
    /// rebuild corrected or replaced. A receiver that falls behind gets `Lagged` and must resync
    /// from the status table or `read_all`.
    fn changes(&self) -> broadcast::Receiver<Change>;
}

/// What live followers hear once it committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Appended(Appended),
    /// A rebuild rewrote this video's status in place. No event moved it, so it has no position,
    /// and it keeps its version: a follower may hold that version with other content, which
    /// this replaces.
    Corrected(Arc<VideoStatus>),
    /// A rebuild changed statuses it does not announce one by one (it swapped in a whole table,
    /// or removed a status the log does not fold to): any status may differ from what was
    /// announced, and followers must re-read what they show.
    Rebuilt,
}

/// One committed append.
#[derive(Debug, Clone, PartialEq)]
pub struct Appended {
    pub position: u64,
    /// The stream's length after this append: the video's SSE id.
    pub version: u64,
    pub video_id: VideoId,
    pub status: Arc<VideoStatus>,
}

/// The store the application holds: one variant per backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
}

/// Why a store URL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("unsupported store URL scheme in {0:?} (expected sqlite://PATH)")]
    UnsupportedScheme(String),
    #[error(
        "no store at {0}: no such file, or an empty one (this command reads an existing log; \
         `serve` or `migrate` creates one)"
    )]
    Missing(String),
    /// Names the URL: it may have come from a config file or an environment variable.
    #[error("{url}: {error}")]
    At {
        url: String,
        #[source]
        error: StoreError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// [`Store::open`] for commands that only make sense on a store that exists (a rebuild, a
    /// verify): a mistyped path is an error, not a new empty database.
    pub async fn open_existing(url: &str) -> Result<Store, OpenError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            // An empty file is no store either: SQLite would write a new schema into it.
            let empty = std::fs::metadata(path).map_or(true, |file| file.len() == 0);
            if empty {
                return Err(OpenError::Missing(path.to_string()));
            }
        }
        Store::open(url).await
    }

    /// Opens (and migrates) the store a URL names: `sqlite://PATH`.
    pub async fn open(url: &str) -> Result<Store, OpenError> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            return sqlite::SqliteStore::open(path)
                .await
                .map(Store::Sqlite)
                .map_err(|error| OpenError::At {
                    url: url.to_string(),
                    error,
                });
        }
        Err(OpenError::UnsupportedScheme(url.to_string()))
    }
}

macro_rules! delegate {
    ($self:ident, $inner:ident => $call:expr) => {
        match $self {
            Store::Sqlite($inner) => $call,
        }
    };
}

impl EventStore for Store {
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        delegate!(self, s => s.append(request).await)
    }
    async fn read_stream(&self, video_id: &VideoId) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.read_stream(video_id).await)
    }
    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.read_all(after, limit).await)
    }
    async fn head_position(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.head_position().await)
    }
    async fn get_status(&self, video_id: &VideoId) -> Result<Option<VideoStatus>, StoreError> {
        delegate!(self, s => s.get_status(video_id).await)
    }
    async fn list_statuses(&self, query: StatusQuery) -> Result<StatusPage, StoreError> {
        delegate!(self, s => s.list_statuses(query).await)
    }
    async fn read_streams(
        &self,
        after: Option<StreamCursor>,
        before: Option<VideoId>,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.read_streams(after, before, upto, limit).await)
    }
    async fn split_streams(&self, parts: usize) -> Result<Vec<VideoId>, StoreError> {
        delegate!(self, s => s.split_streams(parts).await)
    }
    async fn read_deliveries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        delegate!(self, s => s.read_deliveries(after, limit).await)
    }
    async fn begin_shadow(&self) -> Result<Shadow, StoreError> {
        delegate!(self, s => s.begin_shadow().await)
    }
    async fn write_shadow(
        &self,
        shadow: Shadow,
        statuses: Vec<RebuiltStatus>,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.write_shadow(shadow, statuses).await)
    }
    async fn swap_shadow(
        &self,
        shadow: Shadow,
        upto: u64,
        fold_version: u32,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.swap_shadow(shadow, upto, fold_version).await)
    }
    async fn statuses_between(
        &self,
        from: Bound<VideoId>,
        to: Bound<VideoId>,
    ) -> Result<Vec<LiveStatus>, StoreError> {
        delegate!(self, s => s.statuses_between(from, to).await)
    }
    async fn correct_statuses(
        &self,
        corrections: StatusCorrections,
        upto: u64,
        fold_version: Option<u32>,
    ) -> Result<u64, StoreError> {
        delegate!(self, s => s.correct_statuses(corrections, upto, fold_version).await)
    }
    async fn fold_version(&self) -> Result<Option<u32>, StoreError> {
        delegate!(self, s => s.fold_version().await)
    }
    async fn status_table_swaps(&self) -> Result<u64, StoreError> {
        delegate!(self, s => s.status_table_swaps().await)
    }
    async fn free_replaced_statuses(&self, limit: Option<usize>) -> Result<u64, StoreError> {
        delegate!(self, s => s.free_replaced_statuses(limit).await)
    }
    async fn record_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        delegate!(self, s => s.record_audit(record).await)
    }
    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        delegate!(self, s => s.list_audit(limit).await)
    }
    async fn list_audit_after(
        &self,
        kind: AuditKind,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        delegate!(self, s => s.list_audit_after(kind, after, limit).await)
    }
    async fn quarantine(&self, record: QuarantineRecord) -> Result<u64, StoreError> {
        delegate!(self, s => s.quarantine(record).await)
    }
    async fn list_quarantine(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<QuarantinedRequest>, StoreError> {
        delegate!(self, s => s.list_quarantine(after, limit).await)
    }
    async fn release_quarantined(&self, id: u64) -> Result<(), StoreError> {
        delegate!(self, s => s.release_quarantined(id).await)
    }
    async fn resolve_aliases(
        &self,
        ids: Vec<VideoId>,
    ) -> Result<Vec<(VideoId, VideoId)>, StoreError> {
        delegate!(self, s => s.resolve_aliases(ids).await)
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        delegate!(self, s => s.save_snapshot(snapshot).await)
    }
    async fn load_snapshot(&self, video_id: &VideoId) -> Result<Option<Snapshot>, StoreError> {
        delegate!(self, s => s.load_snapshot(video_id).await)
    }
    async fn read_stream_after(
        &self,
        video_id: &VideoId,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        delegate!(self, s => s.read_stream_after(video_id, after).await)
    }
    async fn load_video(&self, video_id: &VideoId) -> Result<VideoLog, StoreError> {
        delegate!(self, s => s.load_video(video_id).await)
    }
    async fn link_aliases(&self, video: VideoId, aliases: Vec<VideoId>) -> Result<(), StoreError> {
        delegate!(self, s => s.link_aliases(video, aliases).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping().await)
    }
    fn free_disk_bytes(&self) -> Option<u64> {
        delegate!(self, s => s.free_disk_bytes())
    }
    fn stats(&self) -> StoreStats {
        delegate!(self, s => s.stats())
    }
    fn changes(&self) -> broadcast::Receiver<Change> {
        delegate!(self, s => s.changes())
    }
}
