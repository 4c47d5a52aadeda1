//! The embedded SQLite backend (`sqlite://PATH`): the event log, the status table, the audit log
//! and the quarantine in one WAL-mode database file.
//!
//! Writes go through one dedicated writer thread that owns the only connection that writes rows
//! and commits whatever is queued in one transaction (group commit: one fsync for many webhooks);
//! a request that fails before writing fails alone, one that fails after fails its batch. Reads run on a
//! small pool of read-only connections beside it, which WAL allows, and a checkpoint thread
//! copies the WAL into the database file beside the writer (`checkpointer`). Nothing here decides what an
//! event means: the bytes come from `event::codec`, the status documents from the caller.

use std::collections::VecDeque;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::ToSql;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};

use super::{
    AppendOutcome, AppendRequest, Appended, AuditEntry, AuditKind, AuditRecord, Change, EventStore,
    LiveStatus, QuarantineRecord, QuarantinedRequest, RebuiltStatus, Shadow, Snapshot,
    StatusCorrections, StatusPage, StatusQuery, StoreError, StoreStats, StoredDelivery,
    StoredEvent, StreamCursor, VideoLog,
};
use crate::event::codec::{decode_event, decode_raw, encode_event, encode_raw, EventDecoder};
use crate::event::{EventId, ProviderName, VideoId};
use crate::projection::VideoStatus;
use checkpointer::Checkpointer;

mod checkpointer;

/// Schema migrations, applied in order by [`SqliteStore::open`] and recorded in
/// `schema_migrations`. Append only: a shipped migration never changes.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "0002_store_meta",
        sql: include_str!("../../migrations/sqlite/0002_store_meta.sql"),
    },
    Migration {
        version: 3,
        name: "0003_events_by_stream",
        sql: include_str!("../../migrations/sqlite/0003_events_by_stream.sql"),
    },
    Migration {
        version: 4,
        name: "0004_video_aliases",
        sql: include_str!("../../migrations/sqlite/0004_video_aliases.sql"),
    },
    Migration {
        version: 5,
        name: "0005_snapshots",
        sql: include_str!("../../migrations/sqlite/0005_snapshots.sql"),
    },
    Migration {
        version: 6,
        name: "0006_clustered_log",
        sql: include_str!("../../migrations/sqlite/0006_clustered_log.sql"),
    },
];

const CREATE_MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY NOT NULL, name TEXT NOT NULL, applied_at TEXT NOT NULL) STRICT";
const SELECT_SCHEMA_VERSION: &str = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations";
const INSERT_MIGRATION: &str =
    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)";

const BEGIN_BATCH: &str = "BEGIN IMMEDIATE";
const COMMIT_BATCH: &str = "COMMIT";
const ROLLBACK_BATCH: &str = "ROLLBACK";
const BEGIN_REQUEST: &str = "SAVEPOINT request";
const END_REQUEST: &str = "RELEASE request";
const UNDO_REQUEST: &str = "ROLLBACK TO request; RELEASE request";

const SELECT_STREAM_VERSION: &str =
    "SELECT COALESCE(MAX(stream_version), 0) FROM events WHERE stream_id = ?1";
const SELECT_BY_EVENT_ID: &str =
    "SELECT stream_id, body_sha256 FROM events WHERE provider = ?1 AND event_id = ?2";
/// Any unique key already taken (the dedupe key, the stream slot) inserts nothing, without an
/// error: the writer then looks up which one it was, and nothing needs undoing.
const INSERT_EVENT: &str = "INSERT INTO events (stream_id, stream_version, position, provider,
    event_id, kind, occurred_at, received_at, body_sha256, payload)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING";
const INSERT_RAW: &str = "INSERT INTO raw_deliveries (position, raw) VALUES (?1, ?2)";
/// The usual status change keeps the video's status and provider: updating only the other
/// columns leaves the two filter indexes untouched (SQLite updates an index whenever a column
/// of it is assigned, even to the same value).
const UPDATE_STATUS_DOC: &str = "UPDATE status SET version = ?4, position = ?5, doc = ?6
    WHERE video_id = ?1 AND provider = ?2 AND status = ?3";
const UPSERT_STATUS: &str =
    "INSERT INTO status (video_id, provider, status, version, position, doc)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)
    ON CONFLICT (video_id) DO UPDATE SET provider = excluded.provider, status = excluded.status,
    version = excluded.version, position = excluded.position, doc = excluded.doc";
/// The shadow table a rebuild fills, then renames over `status`. Same columns as `status`
/// (0001_init; a unit test holds them equal): a migration that changes one changes both. Its
/// indexes carry the rebuild's generation, because index names are global and they keep their
/// names when the table is renamed.
fn create_shadow(generation: u64) -> String {
    format!(
        "DROP TABLE IF EXISTS status_rebuild;
        CREATE TABLE status_rebuild (
            video_id TEXT    PRIMARY KEY NOT NULL,
            provider TEXT    NOT NULL,
            status   TEXT    NOT NULL,
            version  INTEGER NOT NULL,
            position INTEGER NOT NULL,
            doc      TEXT    NOT NULL
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX status_by_status_{generation} ON status_rebuild (status, video_id);
        CREATE INDEX status_by_provider_{generation} ON status_rebuild (provider, video_id);"
    )
}
const INSERT_SHADOW_STATUS: &str =
    "INSERT INTO status_rebuild (video_id, provider, status, version, position, doc)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Rows written by appends after the rebuild's position `?1` already fold their whole stream:
/// they win over the rebuilt ones. Everything else of the live table goes with it. Every append
/// writes its video's row, so the videos appended to after `?1` are those rows; the log's
/// position index finds them without a scan.
const KEEP_LATER_STATUSES: &str =
    "INSERT OR REPLACE INTO status_rebuild (video_id, provider, status, version, position, doc)
    SELECT video_id, provider, status, version, position, doc FROM status
    WHERE video_id IN (SELECT stream_id FROM events WHERE position > ?1)";
// The old table is renamed, not dropped: dropping frees every page of it inside the swap, a
// fifth of a second for 100k rows during which no append commits. `FREE_REPLACED_STATUSES`
// empties it afterwards in small steps; the swap refuses to run while one is left (see
// `swap_shadow`).
const SWAP_STATUS_TABLES: &str = "ALTER TABLE status RENAME TO status_replaced;
    ALTER TABLE status_rebuild RENAME TO status";
/// `statuses_between` adds the bounds it was given to this, then `ORDER BY video_id`.
const SELECT_LIVE_STATUSES: &str = "SELECT video_id, position, doc FROM status WHERE 1";
/// Whether the stream `?1` has an event after position `?2`: one walk of its key prefix.
const SELECT_APPENDED_AFTER: &str =
    "SELECT 1 FROM events WHERE stream_id = ?1 AND position > ?2 LIMIT 1";
const DELETE_STATUS: &str = "DELETE FROM status WHERE video_id = ?1";
/// See [`mark_rebuilt`].
const DELETE_SNAPSHOTS: &str = "DELETE FROM snapshots";
const SELECT_REPLACED_TABLE: &str =
    "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'status_replaced'";
/// Deletes up to `?1` rows of the replaced status table (with their index entries).
const FREE_REPLACED_STATUSES: &str = "DELETE FROM status_replaced WHERE video_id IN
    (SELECT video_id FROM status_replaced LIMIT ?1)";
/// Once empty, the table and its indexes are dropped at the cost of a few pages.
const DROP_REPLACED_TABLE: &str = "DROP TABLE status_replaced";
const UPSERT_SNAPSHOT: &str = "INSERT INTO snapshots (video_id, version, fold_version, status,
    last_event) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (video_id) DO UPDATE SET
    version = excluded.version, fold_version = excluded.fold_version, status = excluded.status,
    last_event = excluded.last_event";
const SELECT_SNAPSHOT: &str =
    "SELECT version, fold_version, status, last_event FROM snapshots WHERE video_id = ?1";
const SELECT_STREAM_AFTER: &str =
    "SELECT position, stream_version, payload FROM events WHERE stream_id = ?1
    AND stream_version > ?2 ORDER BY stream_version";
const SHADOW_GENERATION_KEY: &str = "shadow_generation";
const UPSERT_META: &str = "INSERT INTO store_meta (key, value) VALUES (?1, ?2)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value";
const SELECT_META: &str = "SELECT value FROM store_meta WHERE key = ?1";
const FOLD_VERSION_KEY: &str = "fold_version";
const SWAPS_KEY: &str = "status_table_swaps";
/// When `/readyz` last saw a write commit (see [`probe_write`]).
const READY_PROBE_KEY: &str = "ready_probe_at";
const INSERT_AUDIT: &str = "INSERT INTO audit_log (provider, event_id, video_id, kind, detail,
    received_at, raw) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const INSERT_QUARANTINE: &str = "INSERT INTO quarantine (provider, error_code, reason,
    received_at, raw) VALUES (?1, ?2, ?3, ?4, ?5)";

const SELECT_STREAM: &str =
    "SELECT position, stream_version, payload FROM events WHERE stream_id = ?1
    ORDER BY stream_version";
const SELECT_ALL: &str = "SELECT position, stream_version, payload FROM events
    WHERE position > ?1 ORDER BY position LIMIT ?2";
/// Walks the log's own order (it is clustered by stream), never its position index: `+position`
/// keeps the planner from ranging over positions and sorting what it found. `''` sorts before
/// every stream id.
const SELECT_STREAMS: &str = "SELECT position, stream_version, payload FROM events
    WHERE (stream_id, stream_version) > (?1, ?2) AND +position <= ?3
    ORDER BY stream_id, stream_version LIMIT ?4";
/// [`SELECT_STREAMS`] with an upper bound. A statement of its own, not `?5 IS NULL OR ...`:
/// only a plain bound ends the index range scan there rather than filtering to the end.
const SELECT_STREAMS_BEFORE: &str = "SELECT position, stream_version, payload FROM events
    WHERE (stream_id, stream_version) > (?1, ?2) AND +position <= ?3 AND stream_id < ?5
    ORDER BY stream_id, stream_version LIMIT ?4";
/// The stream of the first event at or after a position: one lookup in the narrow position index.
const SELECT_STREAM_AT: &str =
    "SELECT stream_id FROM events WHERE position >= ?1 ORDER BY position LIMIT 1";
/// Events sampled per range when cutting the log into ranges of streams.
const SAMPLES_PER_RANGE: usize = 64;
const SELECT_DELIVERIES: &str = "SELECT events.position, stream_version, payload, raw
    FROM events JOIN raw_deliveries ON raw_deliveries.position = events.position
    WHERE events.position > ?1 ORDER BY events.position LIMIT ?2";
const SELECT_HEAD: &str = "SELECT COALESCE(MAX(position), 0) FROM events";
const SELECT_STATUS: &str = "SELECT doc FROM status WHERE video_id = ?1";
const SELECT_ALIAS: &str = "SELECT video_id FROM video_aliases WHERE alias = ?1";
const INSERT_ALIAS: &str =
    "INSERT INTO video_aliases (alias, video_id) VALUES (?1, ?2) ON CONFLICT (alias) DO NOTHING";
/// `list_statuses` adds the filters it was given to this, then [`STATUS_PAGE_ORDER`].
const SELECT_STATUS_PAGE: &str = "SELECT doc FROM status";
const STATUS_PAGE_BY_STATUS: &str = "status = :status";
const STATUS_PAGE_BY_PROVIDER: &str = "provider = :provider";
const STATUS_PAGE_AFTER: &str = "video_id > :after";
const STATUS_PAGE_ORDER: &str = " ORDER BY video_id LIMIT :limit";
const SELECT_AUDIT: &str = "SELECT id, provider, event_id, video_id, kind, detail, received_at,
    raw FROM audit_log ORDER BY id DESC LIMIT ?1";
const SELECT_AUDIT_AFTER: &str = "SELECT id, provider, event_id, video_id, kind, detail,
    received_at, raw FROM audit_log WHERE kind = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
const DELETE_QUARANTINED: &str = "DELETE FROM quarantine WHERE id = ?1";
const SELECT_QUARANTINE: &str = "SELECT id, provider, error_code, reason, received_at, raw
    FROM quarantine WHERE id > ?1 ORDER BY id LIMIT ?2";

/// Most requests committed in one transaction: bounds the time a batch holds its callers.
const MAX_BATCH: usize = 512;
/// Changes kept for followers of the live feed; one that falls further behind resyncs.
const CHANGE_FEED_CAPACITY: usize = 4096;
/// Longest a batch waits for company before its commit (see [`linger`]).
const LINGER: Duration = Duration::from_millis(1);
/// A batch this large commits at once.
const LINGER_TARGET: usize = 16;
const LINGER_POLL: Duration = Duration::from_micros(100);
/// Lingering pays only when requests arrive fast enough that [`LINGER`] gathers about this many
/// more for the same fsync. Slower than that, every request of the batch would wait the whole
/// `LINGER` for nobody, and the next batch, grown meanwhile, would linger again.
const LINGER_WORTH: f64 = 4.0;
/// Requests waiting for the writer; beyond it, callers wait to enqueue (backpressure).
const QUEUE_CAPACITY: usize = 4 * MAX_BATCH;
/// Read-only connections (and concurrent blocking reads).
const READERS: usize = 4;
/// Most events a bulk read allocates room for before reading them.
const MAX_PREALLOCATED_EVENTS: usize = 10_000;
/// How long a statement waits for a lock held by another process before answering busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest page `list_statuses` returns.
const MAX_STATUS_PAGE: usize = 1000;

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// The SQLite event store. A cheap handle: clones share one writer thread and one read pool;
/// the writer thread finishes its batch and stops when the last handle drops.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    // Field order matters: `jobs` drops first, which ends the writer's loop, and then
    // `_writer` joins the thread (held only for that); the checkpointer stops after it.
    jobs: mpsc::Sender<Job>,
    _writer: WriterThread,
    _checkpointer: Checkpointer,
    /// Point reads (a status, a stream, a snapshot): what webhooks and GETs wait for.
    readers: Arc<ReadPool>,
    /// Reads that walk the log (a rebuild, a replay, a remap), on connections of their own, so a
    /// rebuild never holds a connection a webhook waits for.
    bulk_readers: Arc<ReadPool>,
    counters: Arc<Counters>,
    changes: broadcast::Sender<Change>,
    /// The directory of the database file, where its WAL grows too.
    directory: PathBuf,
}

impl SqliteStore {
    /// Opens the database at `path` (creating it and its parent directories), applies pending
    /// migrations and starts the writer thread. Also what `video-status migrate` runs.
    pub async fn open(path: &str) -> Result<SqliteStore, StoreError> {
        let path = PathBuf::from(path);
        tokio::task::spawn_blocking(move || SqliteStore::open_blocking(path))
            .await
            .map_err(|join| StoreError::Unavailable(Box::new(join)))?
    }

    fn open_blocking(path: PathBuf) -> Result<SqliteStore, StoreError> {
        // Each connection to ":memory:" (or "") is its own empty database: the readers would
        // never see what the writer wrote, and nothing would survive a restart.
        if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
            return Err(StoreError::Unavailable(
                "sqlite:// needs a file path; an in-memory database is not durable".into(),
            ));
        }
        // SQLite's page caches live on the C heap; see the function for why this matters.
        crate::allocator::keep_freed_c_heap_mapped();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        }
        let mut conn = open_writer(&path)?;
        migrate(&mut conn)?;
        let checkpointer = Checkpointer::start(&path)?;

        // A reader now, so a database readers cannot open fails here rather than on first read.
        let readers = Arc::new(ReadPool::new(path.clone()));
        readers.checkin(readers.checkout()?);
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let bulk_readers = Arc::new(ReadPool::new(path));

        let counters = Arc::new(Counters::default());
        let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
        let (jobs, queue) = mpsc::channel(QUEUE_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn({
                let counters = Arc::clone(&counters);
                let changes = changes.clone();
                move || run_writer(conn, queue, &counters, &changes)
            })
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                jobs,
                _writer: WriterThread(Some(thread)),
                _checkpointer: checkpointer,
                readers,
                bulk_readers,
                counters,
                changes,
                directory,
            }),
        })
    }

    /// Hands a request to the writer thread and waits until its batch committed.
    async fn write<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(job(reply))
            .await
            .map_err(|_| writer_stopped())?;
        // A dropped reply means the writer thread died before answering: not acknowledged.
        answer.await.map_err(|_| writer_stopped())?
    }

    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.readers.run(work).await
    }

    /// [`SqliteStore::read`] for a read that walks the log.
    async fn read_bulk<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.inner.bulk_readers.run(work).await
    }
}

impl EventStore for SqliteStore {
    // No fields: its caller's span (the manager's `ingest`) names the video and the event.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        self.write(|reply| Job::Append(Box::new(request), reply))
            .await
    }

    async fn read_stream(&self, video_id: &VideoId) -> Result<Vec<StoredEvent>, StoreError> {
        let stream = video_id.as_str().to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_STREAM)?;
            let rows = statement.query(params![stream])?;
            stored_events(rows)
        })
        .await
    }

    async fn read_all(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        self.read_bulk(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_ALL)?;
            let rows = statement.query(params![saturating_i64(after), saturating_i64(limit)])?;
            stored_events_up_to(rows, limit)
        })
        .await
    }

    async fn read_streams(
        &self,
        after: Option<StreamCursor>,
        before: Option<VideoId>,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let (stream, version) = after.map_or((String::new(), 0), |cursor| {
            (cursor.video_id.as_str().to_owned(), cursor.version)
        });
        self.read_bulk(move |conn| {
            let (stream, version) = (stream, saturating_i64(version));
            let wanted = limit;
            let (upto, limit) = (saturating_i64(upto), saturating_i64(limit));
            match before {
                None => {
                    let mut statement = conn.prepare_cached(SELECT_STREAMS)?;
                    let rows = statement.query(params![stream, version, upto, limit])?;
                    stored_events_up_to(rows, wanted)
                }
                Some(before) => {
                    let mut statement = conn.prepare_cached(SELECT_STREAMS_BEFORE)?;
                    let bound = params![stream, version, upto, limit, before.as_str()];
                    let rows = statement.query(bound)?;
                    stored_events_up_to(rows, wanted)
                }
            }
        })
        .await
    }

    async fn split_streams(&self, parts: usize) -> Result<Vec<VideoId>, StoreError> {
        self.read_bulk(move |conn| {
            let head = head_position(conn)?;
            let mut cuts: Vec<VideoId> = Vec::new();
            if parts < 2 || head < parts as u64 {
                return Ok(cuts);
            }
            // Every position is one event: the streams of evenly spaced positions, sorted, put
            // about as many of the log's events between two of their quantiles as between any
            // other two. A lookup per sample, whatever the size of the log.
            // A small log is read whole: every position once.
            let samples =
                (parts * SAMPLES_PER_RANGE).min(usize::try_from(head).unwrap_or(usize::MAX));
            let mut sampled: Vec<String> = Vec::with_capacity(samples);
            let mut statement = conn.prepare_cached(SELECT_STREAM_AT)?;
            for sample in 0..samples as u64 {
                let at = 1 + head * sample / samples as u64;
                let id: Option<String> = statement
                    .query_row([saturating_i64(at)], |row| row.get(0))
                    .optional()?;
                sampled.extend(id);
            }
            sampled.sort_unstable();
            let first = sampled.first().cloned();
            for part in 1..parts {
                let id = &sampled[sampled.len() * part / parts];
                // A long stream may hold several cuts (one range takes it whole), and a cut at
                // the first stream would leave the first range empty.
                if Some(id) != first.as_ref()
                    && cuts.last().is_none_or(|last| last.as_str() < id.as_str())
                {
                    cuts.push(parse_id(VideoId::parse, id.clone(), "stream_id")?);
                }
            }
            Ok(cuts)
        })
        .await
    }

    async fn read_deliveries(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredDelivery>, StoreError> {
        self.read_bulk(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_DELIVERIES)?;
            let mut rows =
                statement.query(params![saturating_i64(after), saturating_i64(limit)])?;
            let mut deliveries = Vec::new();
            let mut decoder = EventDecoder::default();
            while let Some(row) = rows.next()? {
                let stored = stored_event(row, &mut decoder)?;
                let raw = decode_raw(blob(row, 3, "raw")?).map_err(|e| {
                    corrupt(&format!("raw delivery at position {}", stored.position), e)
                })?;
                deliveries.push(StoredDelivery { stored, raw });
            }
            Ok(deliveries)
        })
        .await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.read(|conn| head_position(conn)).await
    }

    async fn get_status(&self, video_id: &VideoId) -> Result<Option<VideoStatus>, StoreError> {
        let video_id = video_id.as_str().to_owned();
        self.read(move |conn| {
            let doc: Option<String> = conn
                .prepare_cached(SELECT_STATUS)?
                .query_row(params![video_id], |row| row.get(0))
                .optional()?;
            doc.as_deref().map(status_from_doc).transpose()
        })
        .await
    }

    async fn list_statuses(&self, query: StatusQuery) -> Result<StatusPage, StoreError> {
        let limit = query.limit.clamp(1, MAX_STATUS_PAGE);
        self.read(move |conn| {
            let status = query.status.map(|s| s.as_str());
            let provider = query.provider.as_ref().map(ProviderName::as_str);
            let after = query.after.as_ref().map(VideoId::as_str);
            let limit_param = saturating_i64(limit);
            let mut conditions = Vec::new();
            let mut bound: Vec<(&str, &dyn ToSql)> = vec![(":limit", &limit_param)];
            for (condition, name, value) in [
                (STATUS_PAGE_BY_STATUS, ":status", &status),
                (STATUS_PAGE_BY_PROVIDER, ":provider", &provider),
                (STATUS_PAGE_AFTER, ":after", &after),
            ] {
                if let Some(value) = value {
                    conditions.push(condition);
                    bound.push((name, value));
                }
            }
            let mut sql = String::from(SELECT_STATUS_PAGE);
            if !conditions.is_empty() {
                sql.push_str(" WHERE ");
                sql.push_str(&conditions.join(" AND "));
            }
            sql.push_str(STATUS_PAGE_ORDER);

            // One read transaction: the page and the position it reflects are one snapshot.
            let snapshot = conn.transaction()?;
            let position = head_position(&snapshot)?;
            let docs = {
                let mut statement = snapshot.prepare_cached(&sql)?;
                let docs = statement.query_map(bound.as_slice(), |row| row.get::<_, String>(0))?;
                docs.collect::<Result<Vec<_>, _>>()?
            };
            snapshot.commit()?;

            let videos = docs
                .iter()
                .map(|doc| status_from_doc(doc))
                .collect::<Result<Vec<_>, _>>()?;
            let next_after = match videos.last() {
                Some(last) if videos.len() == limit => Some(last.video_id.clone()),
                _ => None,
            };
            Ok(StatusPage {
                videos,
                next_after,
                position,
            })
        })
        .await
    }

    async fn begin_shadow(&self) -> Result<Shadow, StoreError> {
        let generation = self.write(Job::BeginShadow).await?;
        Ok(Shadow { generation })
    }

    async fn write_shadow(
        &self,
        shadow: Shadow,
        statuses: Vec<RebuiltStatus>,
    ) -> Result<(), StoreError> {
        // Serialized here, on the rebuild's own (idle-class) thread: the writer, which appends
        // wait for, only inserts.
        let rows = statuses
            .iter()
            .map(|rebuilt| StatusRow::new(&rebuilt.status, rebuilt.position))
            .collect::<Result<Vec<_>, _>>()?;
        self.write(|reply| Job::WriteShadow(shadow, rows, reply))
            .await
    }

    async fn swap_shadow(
        &self,
        shadow: Shadow,
        upto: u64,
        fold_version: u32,
    ) -> Result<(), StoreError> {
        self.write(|reply| Job::SwapShadow(shadow, upto, fold_version, reply))
            .await
    }

    async fn free_replaced_statuses(&self, limit: Option<usize>) -> Result<u64, StoreError> {
        self.write(|reply| Job::FreeReplaced(limit.map(|n| n.max(1)), reply))
            .await
    }

    async fn statuses_between(
        &self,
        from: Bound<VideoId>,
        to: Bound<VideoId>,
    ) -> Result<Vec<LiveStatus>, StoreError> {
        self.read_bulk(move |conn| {
            let mut sql = String::from(SELECT_LIVE_STATUSES);
            let mut bounds: Vec<String> = Vec::with_capacity(2);
            for (bound, inclusive, exclusive) in [(from, ">=", ">"), (to, "<=", "<")] {
                let (operator, id) = match bound {
                    Bound::Included(id) => (inclusive, id),
                    Bound::Excluded(id) => (exclusive, id),
                    Bound::Unbounded => continue,
                };
                bounds.push(id.as_str().to_owned());
                sql.push_str(&format!(" AND video_id {operator} ?{}", bounds.len()));
            }
            sql.push_str(" ORDER BY video_id");
            let mut statement = conn.prepare_cached(&sql)?;
            let mut rows = statement.query(rusqlite::params_from_iter(bounds.iter()))?;
            let mut live = Vec::new();
            while let Some(row) = rows.next()? {
                let video_id = parse_id(VideoId::parse, row.get(0)?, "status.video_id")?;
                let position: i64 = row.get(1)?;
                let doc: String = row.get(2)?;
                // A damaged row is a difference to correct, not a reason to stop the rebuild.
                let stored = match (status_from_doc(&doc), u64::try_from(position)) {
                    (Ok(status), Ok(position)) => Some(RebuiltStatus { status, position }),
                    _ => None,
                };
                live.push(LiveStatus { video_id, stored });
            }
            Ok(live)
        })
        .await
    }

    async fn correct_statuses(
        &self,
        corrections: StatusCorrections,
        upto: u64,
        fold_version: Option<u32>,
    ) -> Result<u64, StoreError> {
        // Serialized here, on the rebuild's own thread, as for the shadow writes.
        let rewrite = corrections
            .rewrite
            .into_iter()
            .map(|rebuilt| {
                let row = StatusRow::new(&rebuilt.status, rebuilt.position)?;
                Ok((row, Arc::new(rebuilt.status)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let remove = corrections
            .remove
            .iter()
            .map(|video_id| video_id.as_str().to_owned())
            .collect();
        self.write(|reply| Job::CorrectStatuses(rewrite, remove, upto, fold_version, reply))
            .await
    }

    async fn fold_version(&self) -> Result<Option<u32>, StoreError> {
        self.read(|conn| {
            let value: Option<String> = conn
                .prepare_cached(SELECT_META)?
                .query_row(params![FOLD_VERSION_KEY], |row| row.get(0))
                .optional()?;
            value
                .map(|v| {
                    v.parse()
                        .map_err(|_| StoreError::Corrupt(format!("fold_version {v:?}")))
                })
                .transpose()
        })
        .await
    }

    async fn status_table_swaps(&self) -> Result<u64, StoreError> {
        self.read(|conn| Ok(meta_u64(conn, SWAPS_KEY)?.unwrap_or(0)))
            .await
    }

    async fn record_audit(&self, record: AuditRecord) -> Result<(), StoreError> {
        self.write(|reply| Job::RecordAudit(Box::new(record), reply))
            .await
    }

    async fn list_audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_AUDIT)?;
            let rows = statement.query(params![saturating_i64(limit)])?;
            Ok(audit_entries(rows)?.into_iter().map(|e| e.record).collect())
        })
        .await
    }

    async fn list_audit_after(
        &self,
        kind: AuditKind,
        after: u64,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_AUDIT_AFTER)?;
            let rows = statement.query(params![
                kind.as_str(),
                saturating_i64(after),
                saturating_i64(limit)
            ])?;
            audit_entries(rows)
        })
        .await
    }

    async fn release_quarantined(&self, id: u64) -> Result<(), StoreError> {
        self.write(|reply| Job::ReleaseQuarantined(id, reply)).await
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.write(|reply| Job::SaveSnapshot(Box::new(snapshot), reply))
            .await
    }

    async fn load_snapshot(&self, video_id: &VideoId) -> Result<Option<Snapshot>, StoreError> {
        let video_id = video_id.clone();
        self.read(move |conn| load_snapshot(conn, &video_id)).await
    }

    async fn load_video(&self, video_id: &VideoId) -> Result<VideoLog, StoreError> {
        let video_id = video_id.clone();
        self.read(move |conn| {
            // One read transaction: the events are those after the snapshot it found.
            let snapshot = conn.transaction()?;
            let kept = load_snapshot(&snapshot, &video_id)?;
            let after = kept.as_ref().map_or(0, |kept| kept.version);
            let events = {
                let mut statement = snapshot.prepare_cached(SELECT_STREAM_AFTER)?;
                let rows = statement.query(params![video_id.as_str(), saturating_i64(after)])?;
                stored_events(rows)?
            };
            snapshot.commit()?;
            Ok(VideoLog {
                snapshot: kept,
                events,
            })
        })
        .await
    }

    async fn read_stream_after(
        &self,
        video_id: &VideoId,
        after: u64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let stream = video_id.as_str().to_owned();
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_STREAM_AFTER)?;
            let rows = statement.query(params![stream, saturating_i64(after)])?;
            stored_events(rows)
        })
        .await
    }

    async fn resolve_aliases(
        &self,
        ids: Vec<VideoId>,
    ) -> Result<Vec<(VideoId, VideoId)>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_ALIAS)?;
            let mut found = Vec::new();
            for id in ids {
                let video: Option<String> = statement
                    .query_row(params![id.as_str()], |row| row.get(0))
                    .optional()?;
                if let Some(video) = video {
                    found.push((
                        id,
                        parse_id(VideoId::parse, video, "video_aliases.video_id")?,
                    ));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn link_aliases(&self, video: VideoId, aliases: Vec<VideoId>) -> Result<(), StoreError> {
        self.write(|reply| Job::LinkAliases(video, aliases, reply))
            .await
    }

    async fn quarantine(&self, record: QuarantineRecord) -> Result<u64, StoreError> {
        self.write(|reply| Job::Quarantine(Box::new(record), reply))
            .await
    }

    async fn list_quarantine(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<QuarantinedRequest>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(SELECT_QUARANTINE)?;
            let mut rows =
                statement.query(params![saturating_i64(after), saturating_i64(limit)])?;
            let mut requests = Vec::new();
            while let Some(row) = rows.next()? {
                requests.push(QuarantinedRequest {
                    id: stored_u64(row.get(0)?, "quarantine id")?,
                    record: QuarantineRecord {
                        provider: parse_id(
                            ProviderName::parse,
                            row.get(1)?,
                            "quarantine provider",
                        )?,
                        error_code: row.get(2)?,
                        reason: row.get(3)?,
                        received_at: instant_from_text(&row.get::<_, String>(4)?)?,
                        raw: decode_raw(&row.get::<_, Vec<u8>>(5)?)
                            .map_err(|e| corrupt("quarantined raw delivery", e))?,
                    },
                });
            }
            Ok(requests)
        })
        .await
    }

    /// Rides the write path: answers once the writer has taken the write lock and committed.
    async fn ping(&self) -> Result<(), StoreError> {
        self.write(Job::Ping).await
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.inner.changes.subscribe()
    }

    fn free_disk_bytes(&self) -> Option<u64> {
        available_bytes(&self.inner.directory)
    }

    fn stats(&self) -> StoreStats {
        StoreStats {
            commits: self.inner.counters.commits.load(Ordering::Relaxed),
            appended: self.inner.counters.appended.load(Ordering::Relaxed),
        }
    }
}

/// Bytes an unprivileged writer may still use on the filesystem holding `directory` (what `df`
/// shows as available).
#[cfg(unix)]
fn available_bytes(directory: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(directory.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` a buffer of the type statvfs fills;
    // it is read only when the call succeeded.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    #[allow(clippy::unnecessary_cast)] // the fields' widths differ between platforms
    Some((stats.f_bavail as u64).saturating_mul(stats.f_frsize as u64))
}

#[cfg(not(unix))]
fn available_bytes(_directory: &Path) -> Option<u64> {
    None
}

// ---------------------------------------------------------------------------------------------
// Opening and migrating

/// The writer's connection: WAL, and `synchronous=FULL` so a commit is on disk (WAL fsynced)
/// before the caller hears `Ok`. NORMAL would lose acknowledged events on power loss.
fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(
            format!("{} cannot use WAL (journal_mode is {mode})", path.display()).into(),
        ));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        checkpointer::WRITER_BACKSTOP_PAGES,
    )?;
    Ok(conn)
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Applies the migrations the database has not seen, in one transaction. Idempotent, and
/// `IMMEDIATE` so two processes opening the same file at once migrate one after the other.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(CREATE_MIGRATIONS_TABLE)?;
    let applied: i64 = tx.query_row(SELECT_SCHEMA_VERSION, [], |row| row.get(0))?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if applied > known {
        return Err(StoreError::Corrupt(format!(
            "database schema is at version {applied}, newer than this build knows ({known})"
        )));
    }
    let now = text_from_instant(Utc::now());
    for migration in MIGRATIONS.iter().filter(|m| m.version > applied) {
        tx.execute_batch(migration.sql)?;
        tx.execute(
            INSERT_MIGRATION,
            params![migration.version, migration.name, now],
        )?;
    }
    tx.commit()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The writer thread: group commit

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A request for the writer thread.
enum Job {
    Append(Box<AppendRequest>, Reply<AppendOutcome>),
    BeginShadow(Reply<u64>),
    WriteShadow(Shadow, Vec<StatusRow>, Reply<()>),
    SwapShadow(Shadow, u64, u32, Reply<()>),
    FreeReplaced(Option<usize>, Reply<u64>),
    /// Each row to rewrite with the status it holds, to announce once committed.
    CorrectStatuses(
        Vec<(StatusRow, Arc<VideoStatus>)>,
        Vec<String>,
        u64,
        Option<u32>,
        Reply<u64>,
    ),
    RecordAudit(Box<AuditRecord>, Reply<()>),
    Quarantine(Box<QuarantineRecord>, Reply<u64>),
    ReleaseQuarantined(u64, Reply<()>),
    LinkAliases(VideoId, Vec<VideoId>, Reply<()>),
    SaveSnapshot(Box<Snapshot>, Reply<()>),
    /// `/readyz`: answered `Ok` once a small write committed (see [`probe_write`]).
    Ping(Reply<()>),
}

impl Job {
    /// A rebuild's background write: committed without an fsync (see [`commit_without_fsync`]),
    /// and only when no other job waits (see [`run_writer`]).
    fn is_background(&self) -> bool {
        matches!(self, Job::WriteShadow(..) | Job::FreeReplaced(..))
    }
}

const SYNCHRONOUS_OFF: &str = "PRAGMA synchronous = OFF";
const SYNCHRONOUS_FULL: &str = "PRAGMA synchronous = FULL";

/// A request that ran in the batch, waiting for the batch's COMMIT before its caller hears.
enum Pending {
    Append(
        Reply<AppendOutcome>,
        Result<AppendOutcome, StoreError>,
        Option<Arc<VideoStatus>>,
    ),
    Unit(Reply<()>, Result<(), StoreError>),
    Id(Reply<u64>, Result<u64, StoreError>),
    /// A rebuild's write of the status table, with what followers must hear of it.
    Rebuilt(Reply<u64>, Result<Rebuilt, StoreError>),
    /// A rebuild's swap of a whole new status table.
    Swapped(Reply<()>, Result<(), StoreError>),
}

/// What a rebuild's corrections changed in the live status table.
struct Rebuilt {
    /// Statuses rewritten in place, each announced as [`Change::Corrected`].
    corrected: Vec<Arc<VideoStatus>>,
    /// Rows removed: they have no status to announce, so any makes one [`Change::Rebuilt`].
    removed: u64,
}

impl Rebuilt {
    /// Rows written or removed: the caller's answer.
    fn rows(&self) -> u64 {
        self.corrected.len() as u64 + self.removed
    }
}

#[derive(Default)]
struct Counters {
    commits: AtomicU64,
    appended: AtomicU64,
}

/// Joins the writer thread on drop, so the database is closed when the last handle is gone.
struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            // A panic in the writer already answered its callers with `Unavailable`.
            let _ = thread.join();
        }
    }
}

/// Takes everything queued (up to [`MAX_BATCH`]) and commits it at once: while one batch is
/// being fsynced, the next one queues up. A rebuild's background writes (its shadow rows, the
/// rows of the table it replaced) wait aside and run one at a time only when nothing else is
/// queued, so a webhook never waits for more than the one running. Ends when every sender is
/// gone.
fn run_writer(
    conn: Connection,
    mut queue: mpsc::Receiver<Job>,
    counters: &Counters,
    changes: &broadcast::Sender<Change>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut background: VecDeque<Job> = VecDeque::new();
    // When the batch before was taken: what queued since arrived at the rate the linger judges.
    let mut last_take = Instant::now();
    loop {
        if background.is_empty() {
            if queue.blocking_recv_many(&mut batch, MAX_BATCH) == 0 {
                return;
            }
        } else {
            while batch.len() < MAX_BATCH {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    // Every sender is gone: what is queued aside still gets written.
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
        }
        set_aside_background(&mut batch, &mut background);
        if !batch.is_empty() {
            let now = Instant::now();
            if worth_lingering(batch.len(), now - last_take) {
                linger(&mut queue, &mut batch);
            }
            last_take = now;
            // A background job that lingering picked up goes aside too.
            set_aside_background(&mut batch, &mut background);
            commit_batch(&conn, batch.drain(..), counters, changes);
        } else if let Some(job) = background.pop_front() {
            commit_without_fsync(&conn, std::iter::once(job), counters, changes);
        }
    }
}

/// Moves the background jobs of `batch` to the end of `background`, keeping the order of both.
fn set_aside_background(batch: &mut Vec<Job>, background: &mut VecDeque<Job>) {
    if batch.iter().any(Job::is_background) {
        let (aside, urgent): (Vec<Job>, Vec<Job>) = batch.drain(..).partition(Job::is_background);
        background.extend(aside);
        batch.extend(urgent);
    }
}

/// Commits `jobs` without waiting for the disk. Only for rows nothing acknowledged depends on
/// until a later, fsynced commit: a rebuild's shadow rows, which count only once the swap commits
/// (with `synchronous = FULL`, whose fsync of the WAL makes every frame before it durable too).
/// A crash before that loses a shadow that the next rebuild drops anyway.
fn commit_without_fsync(
    conn: &Connection,
    jobs: impl Iterator<Item = Job>,
    counters: &Counters,
    changes: &broadcast::Sender<Change>,
) {
    let deferred = conn.execute_batch(SYNCHRONOUS_OFF).is_ok();
    commit_batch(conn, jobs, counters, changes);
    if deferred {
        if let Err(error) = conn.execute_batch(SYNCHRONOUS_FULL) {
            // Going on would acknowledge appends without an fsync. Stopping the writer answers
            // every caller `Unavailable` (503) instead, and a restart reopens with FULL.
            panic!("cannot restore synchronous = FULL on the writer: {error}");
        }
    }
}

/// Whether `arrived` requests, queued over `since_last_take`, come fast enough for [`linger`] to
/// gather [`LINGER_WORTH`] more. A lone request never waits, so a quiet server answers at fsync
/// latency; a moderate rate (a thousand webhooks a second whose commits queue behind something
/// slower, such as a rebuild's writes) does not make each of them wait a whole `LINGER` either.
fn worth_lingering(arrived: usize, since_last_take: Duration) -> bool {
    let per_linger = arrived as f64 * LINGER.as_secs_f64() / since_last_take.as_secs_f64();
    arrived > 1 && per_linger >= LINGER_WORTH
}

/// Under heavy concurrent load, waits up to [`LINGER`] for the batch to reach [`LINGER_TARGET`]
/// requests, so that one fsync acknowledges many webhooks.
fn linger(queue: &mut mpsc::Receiver<Job>, batch: &mut Vec<Job>) {
    let deadline = Instant::now() + LINGER;
    while batch.len() < LINGER_TARGET {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(mpsc::error::TryRecvError::Disconnected) => return,
            Err(mpsc::error::TryRecvError::Empty) => {
                if Instant::now() >= deadline {
                    return;
                }
                std::thread::sleep(LINGER_POLL);
            }
        }
    }
}

fn commit_batch(
    conn: &Connection,
    jobs: impl Iterator<Item = Job>,
    counters: &Counters,
    changes: &broadcast::Sender<Change>,
) {
    // A failed ROLLBACK of an earlier batch would otherwise fail every batch after it.
    if !conn.is_autocommit() {
        let _ = conn.execute_batch(ROLLBACK_BATCH);
    }
    let mut batch = Batch {
        conn,
        aborted: conn.execute_batch(BEGIN_BATCH).err().map(|e| e.to_string()),
        writes: 0,
    };
    let done: Vec<Pending> = jobs.map(|job| job.run(&mut batch)).collect();

    let failure = match batch.aborted {
        Some(why) => Some(why),
        None => conn
            .execute_batch(COMMIT_BATCH)
            .err()
            .map(|e| e.to_string()),
    };
    match failure {
        None => {
            // Counted before anyone hears back, so a caller's `stats()` includes its own write.
            let appended = done.iter().filter(|p| p.appended()).count() as u64;
            if batch.writes > 0 {
                counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            counters.appended.fetch_add(appended, Ordering::Relaxed);
            // Announced in commit order, which is position order; `send` never waits for a
            // follower (a slow one lags and resyncs), so the write path does not either.
            for pending in &done {
                pending.announce(changes);
            }
            done.into_iter().for_each(Pending::send);
        }
        Some(why) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch(ROLLBACK_BATCH);
            }
            // Nothing of the batch is durable, whatever each request's own answer was.
            done.into_iter().for_each(|p| p.fail(&why));
        }
    }
}

/// One open batch transaction.
struct Batch<'c> {
    conn: &'c Connection,
    /// Set when the whole transaction is lost: every request of the batch will be `Unavailable`.
    aborted: Option<String>,
    /// Requests that may have written.
    writes: usize,
}

impl Batch<'_> {
    /// Runs one request straight in the batch's transaction. A request that fails before it
    /// changed a row fails alone. One that fails after (a disk error halfway, a bug) cannot be
    /// undone on its own, so it fails the whole batch: nobody hears `Ok` for a write that is not
    /// there, and every caller retries. Requests check everything that may refuse them before
    /// their first write, so only the failures that would lose the transaction anyway cost the
    /// batch. No savepoint per request: its statement journal copied every page a request
    /// touched, which was a sixth of the writer's time.
    fn run<T>(
        &mut self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = &self.aborted {
            return Err(batch_failed(why));
        }
        self.writes += 1;
        let changes_before = self.conn.total_changes();
        let result = work(self.conn);
        if let Err(error) = &result {
            if self.conn.total_changes() != changes_before {
                self.aborted = Some(format!("a request failed after writing: {error}"));
            }
        }
        self.check_transaction();
        result
    }

    /// [`Batch::run`] for the requests that change the schema (a rebuild's shadow table and its
    /// swap), which `total_changes` does not see: each runs in a savepoint, so a failed one
    /// rolls back only itself.
    fn run_isolated<T>(
        &mut self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(why) = &self.aborted {
            return Err(batch_failed(why));
        }
        self.writes += 1;
        if let Err(e) = self.conn.execute_batch(BEGIN_REQUEST) {
            self.aborted = Some(e.to_string());
            return Err(e.into());
        }
        let result = work(self.conn);
        let end = if result.is_ok() {
            self.conn.execute_batch(END_REQUEST)
        } else {
            self.conn.execute_batch(UNDO_REQUEST)
        };
        if let Err(e) = end {
            self.aborted = Some(e.to_string());
        }
        self.check_transaction();
        result
    }

    /// SQLite rolls the whole transaction back by itself on some errors (FULL, IOERR, NOMEM,
    /// ...); what the batch did before is gone, so nobody may hear `Ok`.
    fn check_transaction(&mut self) {
        if self.aborted.is_none() && self.conn.is_autocommit() {
            self.aborted = Some("sqlite rolled the transaction back".into());
        }
    }
}

impl Job {
    fn run(self, batch: &mut Batch<'_>) -> Pending {
        match self {
            Job::Append(request, reply) => {
                let result = batch.run(|conn| append(conn, &request));
                Pending::Append(reply, result, request.status.map(Arc::new))
            }
            Job::BeginShadow(reply) => Pending::Id(reply, batch.run_isolated(begin_shadow)),
            Job::WriteShadow(shadow, statuses, reply) => Pending::Unit(
                reply,
                batch.run(|conn| write_shadow(conn, shadow, &statuses)),
            ),
            Job::SwapShadow(shadow, upto, fold_version, reply) => Pending::Swapped(
                reply,
                batch.run_isolated(|conn| swap_shadow(conn, shadow, upto, fold_version)),
            ),
            Job::FreeReplaced(limit, reply) => {
                Pending::Id(reply, batch.run_isolated(|conn| free_replaced(conn, limit)))
            }
            Job::CorrectStatuses(rewrite, remove, upto, fold_version, reply) => Pending::Rebuilt(
                reply,
                batch.run_isolated(|conn| {
                    correct_statuses(conn, &rewrite, &remove, upto, fold_version)
                }),
            ),
            Job::RecordAudit(record, reply) => {
                Pending::Unit(reply, batch.run(|conn| record_audit(conn, &record)))
            }
            Job::ReleaseQuarantined(id, reply) => Pending::Unit(
                reply,
                batch.run(|conn| {
                    conn.prepare_cached(DELETE_QUARANTINED)?
                        .execute(params![saturating_i64(id)])?;
                    Ok(())
                }),
            ),
            Job::Quarantine(record, reply) => {
                Pending::Id(reply, batch.run(|conn| quarantine(conn, &record)))
            }
            Job::SaveSnapshot(snapshot, reply) => Pending::Unit(
                reply,
                batch.run(|conn| {
                    let status = serde_json::to_string(&snapshot.status)
                        .map_err(|e| corrupt("snapshot status", e))?;
                    conn.prepare_cached(UPSERT_SNAPSHOT)?.execute(params![
                        snapshot.video_id.as_str(),
                        saturating_i64(snapshot.version),
                        i64::from(snapshot.fold_version),
                        status,
                        encode_event(&snapshot.last_event),
                    ])?;
                    Ok(())
                }),
            ),
            Job::LinkAliases(video, aliases, reply) => Pending::Unit(
                reply,
                batch.run(|conn| {
                    let mut insert = conn.prepare_cached(INSERT_ALIAS)?;
                    for alias in std::iter::once(&video).chain(&aliases) {
                        insert.execute(params![alias.as_str(), video.as_str()])?;
                    }
                    Ok(())
                }),
            ),
            // Answered with the batch: Ok only once its write committed.
            Job::Ping(reply) => Pending::Unit(reply, batch.run(probe_write)),
        }
    }
}

impl Pending {
    fn appended(&self) -> bool {
        matches!(
            self,
            Pending::Append(_, Ok(AppendOutcome::Appended { .. }), _)
        )
    }

    /// Tells followers what this request changed, once its batch committed.
    fn announce(&self, changes: &broadcast::Sender<Change>) {
        // `send` fails only when nobody follows, which is no error.
        match self {
            Pending::Append(_, Ok(AppendOutcome::Appended { position, version }), Some(status)) => {
                let _ = changes.send(Change::Appended(Appended {
                    position: *position,
                    version: *version,
                    video_id: status.video_id.clone(),
                    status: Arc::clone(status),
                }));
            }
            Pending::Rebuilt(_, Ok(rebuilt)) => {
                for status in &rebuilt.corrected {
                    let _ = changes.send(Change::Corrected(Arc::clone(status)));
                }
                if rebuilt.removed > 0 {
                    let _ = changes.send(Change::Rebuilt);
                }
            }
            Pending::Swapped(_, Ok(())) => {
                let _ = changes.send(Change::Rebuilt);
            }
            _ => {}
        }
    }

    /// Delivers the answer. A caller that gave up meanwhile misses it; its write stands.
    fn send(self) {
        match self {
            Pending::Append(reply, result, _) => drop(reply.send(result)),
            Pending::Unit(reply, result) => drop(reply.send(result)),
            Pending::Id(reply, result) => drop(reply.send(result)),
            Pending::Rebuilt(reply, result) => drop(reply.send(result.map(|r| r.rows()))),
            Pending::Swapped(reply, result) => drop(reply.send(result)),
        }
    }

    fn fail(self, why: &str) {
        match self {
            Pending::Append(reply, _, _) => drop(reply.send(Err(batch_failed(why)))),
            Pending::Unit(reply, _) => drop(reply.send(Err(batch_failed(why)))),
            Pending::Id(reply, _) => drop(reply.send(Err(batch_failed(why)))),
            Pending::Rebuilt(reply, _) => drop(reply.send(Err(batch_failed(why)))),
            Pending::Swapped(reply, _) => drop(reply.send(Err(batch_failed(why)))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writes, each run in the batch's transaction on the writer's connection (see `Batch::run`)

fn append(conn: &Connection, request: &AppendRequest) -> Result<AppendOutcome, StoreError> {
    let event = &request.event;
    // Whatever may refuse the request comes before its first write (see `Batch::run`).
    if let Some(status) = &request.status {
        if status.video_id != event.video_id {
            return Err(StoreError::Corrupt(format!(
                "status of video {} given with an event of video {}",
                status.video_id, event.video_id
            )));
        }
    }
    let body_sha256 = request.raw.body_sha256();
    let current = stream_version(conn, &event.video_id)?;
    if current != request.expected_version {
        // A redelivery answers Duplicate even when the caller's version is stale: it is
        // already in the log, and that is what the provider needs to hear.
        return match find_duplicate(conn, request, &body_sha256)? {
            Some(duplicate) => Ok(duplicate),
            None => Err(StoreError::Conflict {
                stream: event.video_id.clone(),
                expected: request.expected_version,
                actual: current,
            }),
        };
    }
    let version = current + 1;
    // The write lock is held from the batch's BEGIN IMMEDIATE: positions follow commit order,
    // without gaps.
    let position = head_position(conn)? + 1;
    let status = request
        .status
        .as_ref()
        .map(|status| StatusRow::new(status, position))
        .transpose()?;

    let inserted = conn.prepare_cached(INSERT_EVENT)?.execute(params![
        event.video_id.as_str(),
        saturating_i64(version),
        saturating_i64(position),
        event.provider.as_str(),
        event.event_id.as_str(),
        event.kind.name(),
        event.occurred_at.timestamp_micros(),
        event.received_at.timestamp_micros(),
        &body_sha256[..],
        encode_event(event),
    ])?;
    // The unique keys decide; the lookup afterwards only tells which one was taken.
    if inserted == 0 {
        return match find_duplicate(conn, request, &body_sha256)? {
            Some(duplicate) => Ok(duplicate),
            None => Err(StoreError::Conflict {
                stream: event.video_id.clone(),
                expected: request.expected_version,
                actual: stream_version(conn, &event.video_id)?,
            }),
        };
    }
    conn.prepare_cached(INSERT_RAW)?
        .execute(params![saturating_i64(position), encode_raw(&request.raw)])?;
    if let Some(status) = status {
        status.write_live(conn)?;
    }
    Ok(AppendOutcome::Appended { position, version })
}

fn stream_version(conn: &Connection, stream: &VideoId) -> Result<u64, StoreError> {
    let version: i64 = conn
        .prepare_cached(SELECT_STREAM_VERSION)?
        .query_row(params![stream.as_str()], |row| row.get(0))?;
    stored_u64(version, "stream version")
}

/// The answer for an event whose `(provider, event_id)` is already in the log, if it is.
fn find_duplicate(
    conn: &Connection,
    request: &AppendRequest,
    body_sha256: &[u8; 32],
) -> Result<Option<AppendOutcome>, StoreError> {
    let stored: Option<(String, Vec<u8>)> = conn
        .prepare_cached(SELECT_BY_EVENT_ID)?
        .query_row(
            params![
                request.event.provider.as_str(),
                request.event.event_id.as_str()
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    stored
        .map(|(stream, stored_sha256)| {
            Ok(AppendOutcome::Duplicate {
                stream: parse_id(VideoId::parse, stream, "stream_id")?,
                same_body: stored_sha256 == body_sha256[..],
            })
        })
        .transpose()
}

/// A row of the status table (or its shadow), serialized and ready to insert.
struct StatusRow {
    video_id: String,
    provider: String,
    status: &'static str,
    version: i64,
    position: i64,
    doc: String,
}

impl StatusRow {
    fn new(status: &VideoStatus, position: u64) -> Result<StatusRow, StoreError> {
        Ok(StatusRow {
            doc: serde_json::to_string(status)
                .map_err(|e| corrupt(&format!("status of {}", status.video_id), e))?,
            video_id: status.video_id.as_str().to_owned(),
            provider: status.provider.as_str().to_owned(),
            status: status.status.as_str(),
            version: saturating_i64(status.version),
            position: saturating_i64(position),
        })
    }

    /// Writes the row into the live table: the narrow update when the video keeps its status and
    /// provider, else the whole row.
    fn write_live(&self, conn: &Connection) -> Result<(), StoreError> {
        let updated = conn.prepare_cached(UPDATE_STATUS_DOC)?.execute(params![
            self.video_id,
            self.provider,
            self.status,
            self.version,
            self.position,
            self.doc,
        ])?;
        if updated == 0 {
            self.insert(conn, UPSERT_STATUS)?;
        }
        Ok(())
    }

    fn insert(&self, conn: &Connection, sql: &str) -> Result<(), StoreError> {
        conn.prepare_cached(sql)?.execute(params![
            self.video_id,
            self.provider,
            self.status,
            self.version,
            self.position,
            self.doc,
        ])?;
        Ok(())
    }
}

fn begin_shadow(conn: &Connection) -> Result<u64, StoreError> {
    let generation = count_up(conn, SHADOW_GENERATION_KEY)?;
    conn.execute_batch(&create_shadow(generation))?;
    Ok(generation)
}

/// Refuses a shadow another rebuild has claimed since (its writes would mix with ours).
fn check_claim(conn: &Connection, shadow: Shadow) -> Result<(), StoreError> {
    let current = meta_u64(conn, SHADOW_GENERATION_KEY)?;
    if current != Some(shadow.generation) {
        return Err(StoreError::Corrupt(format!(
            "the shadow status table of rebuild {} was claimed by another rebuild ({current:?})",
            shadow.generation
        )));
    }
    Ok(())
}

fn write_shadow(conn: &Connection, shadow: Shadow, rows: &[StatusRow]) -> Result<(), StoreError> {
    check_claim(conn, shadow)?;
    for row in rows {
        row.insert(conn, INSERT_SHADOW_STATUS)?;
    }
    Ok(())
}

fn swap_shadow(
    conn: &Connection,
    shadow: Shadow,
    upto: u64,
    fold_version: u32,
) -> Result<(), StoreError> {
    check_claim(conn, shadow)?;
    let replaced: i64 = conn
        .prepare_cached(SELECT_REPLACED_TABLE)?
        .query_row([], |row| row.get(0))?;
    if replaced > 0 {
        return Err(StoreError::Unavailable(
            "the status table an earlier rebuild replaced is still being freed".into(),
        ));
    }
    conn.prepare_cached(KEEP_LATER_STATUSES)?
        .execute(params![saturating_i64(upto)])?;
    conn.execute_batch(SWAP_STATUS_TABLES)?;
    count_up(conn, SWAPS_KEY)?;
    mark_rebuilt(conn, fold_version)
}

/// What ends every rebuild, swapped or corrected in place, in its last transaction: the status
/// table is recorded as built by `fold_version`, and no snapshot is left (a rebuild never starts
/// from them, actors write new ones, and one folded by an older fold would only be read to be
/// thrown away).
fn mark_rebuilt(conn: &Connection, fold_version: u32) -> Result<(), StoreError> {
    conn.execute(DELETE_SNAPSHOTS, [])?;
    conn.prepare_cached(UPSERT_META)?
        .execute(params![FOLD_VERSION_KEY, fold_version.to_string()])?;
    Ok(())
}

fn correct_statuses(
    conn: &Connection,
    rewrite: &[(StatusRow, Arc<VideoStatus>)],
    remove: &[String],
    upto: u64,
    fold_version: Option<u32>,
) -> Result<Rebuilt, StoreError> {
    let upto = saturating_i64(upto);
    let mut appended_after = conn.prepare_cached(SELECT_APPENDED_AFTER)?;
    let mut corrected = Vec::with_capacity(rewrite.len());
    for (row, status) in rewrite {
        if !appended_after.exists(params![row.video_id, upto])? {
            row.insert(conn, UPSERT_STATUS)?;
            corrected.push(Arc::clone(status));
        }
    }
    let mut delete_status = conn.prepare_cached(DELETE_STATUS)?;
    let mut removed = 0;
    for video_id in remove {
        if !appended_after.exists(params![video_id, upto])? {
            removed += delete_status.execute(params![video_id])? as u64;
        }
    }
    if let Some(fold_version) = fold_version {
        mark_rebuilt(conn, fold_version)?;
    }
    Ok(Rebuilt { corrected, removed })
}

/// Frees up to `limit` rows of the table the last swap replaced (all of it, at once, for
/// `None`); the table itself once it is empty. Answers how many rows went (0: nothing is left,
/// or there was no such table).
fn free_replaced(conn: &Connection, limit: Option<usize>) -> Result<u64, StoreError> {
    let replaced: i64 = conn
        .prepare_cached(SELECT_REPLACED_TABLE)?
        .query_row([], |row| row.get(0))?;
    if replaced == 0 {
        return Ok(0);
    }
    let Some(limit) = limit else {
        let rows: i64 =
            conn.query_row("SELECT COUNT(*) FROM status_replaced", [], |row| row.get(0))?;
        conn.execute_batch(DROP_REPLACED_TABLE)?;
        // At least one, so that the caller's loop asks once more and hears 0.
        return Ok(stored_u64(rows, "replaced rows")?.max(1));
    };
    let freed = conn
        .prepare(FREE_REPLACED_STATUSES)?
        .execute(params![saturating_i64(limit)])?;
    if freed == 0 {
        conn.execute_batch(DROP_REPLACED_TABLE)?;
    }
    Ok(freed as u64)
}

/// What `/readyz` asks of the store: one row rewritten, committed with the batch it joins. A
/// transaction that writes nothing commits even on a full disk, where every append fails with
/// 503: the probe has to need the disk as an append does.
fn probe_write(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached(UPSERT_META)?
        .execute(params![READY_PROBE_KEY, text_from_instant(Utc::now())])?;
    Ok(())
}

/// Adds one to the counter `key` of `store_meta` (0 when absent) and answers its new value.
fn count_up(conn: &Connection, key: &str) -> Result<u64, StoreError> {
    let value = meta_u64(conn, key)?.unwrap_or(0) + 1;
    conn.prepare_cached(UPSERT_META)?
        .execute(params![key, value.to_string()])?;
    Ok(value)
}

fn meta_u64(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    let value: Option<String> = conn
        .prepare_cached(SELECT_META)?
        .query_row(params![key], |row| row.get(0))
        .optional()?;
    value
        .map(|v| {
            v.parse()
                .map_err(|_| StoreError::Corrupt(format!("store_meta {key} = {v:?}")))
        })
        .transpose()
}

fn record_audit(conn: &Connection, record: &AuditRecord) -> Result<(), StoreError> {
    conn.prepare_cached(INSERT_AUDIT)?.execute(params![
        record.provider.as_str(),
        record.event_id.as_ref().map(EventId::as_str),
        record.video_id.as_ref().map(VideoId::as_str),
        record.kind.as_str(),
        record.detail,
        text_from_instant(record.received_at),
        encode_raw(&record.raw),
    ])?;
    Ok(())
}

fn quarantine(conn: &Connection, record: &QuarantineRecord) -> Result<u64, StoreError> {
    conn.prepare_cached(INSERT_QUARANTINE)?.execute(params![
        record.provider.as_str(),
        record.error_code,
        record.reason,
        text_from_instant(record.received_at),
        encode_raw(&record.raw),
    ])?;
    stored_u64(conn.last_insert_rowid(), "quarantine id")
}

// ---------------------------------------------------------------------------------------------
// The read pool

/// Read-only connections used on blocking threads. At most [`READERS`] reads run at once, so
/// at most that many connections exist.
struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

impl ReadPool {
    fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::with_capacity(READERS)),
            permits: Arc::new(Semaphore::new(READERS)),
        }
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // The permit moves into the blocking task: a caller that gives up does not free a slot
        // while its read still runs.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        let pool = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.checkout()?;
            let result = work(&mut conn);
            pool.checkin(conn);
            result
        });
        match read.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(join) => Err(StoreError::Unavailable(Box::new(join))),
        }
    }

    fn checkout(&self) -> Result<Connection, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => open_reader(&self.path),
        }
    }

    fn checkin(&self, conn: Connection) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
    }
}

fn load_snapshot(conn: &Connection, video_id: &VideoId) -> Result<Option<Snapshot>, StoreError> {
    let row: Option<(i64, i64, String, Vec<u8>)> = conn
        .prepare_cached(SELECT_SNAPSHOT)?
        .query_row(params![video_id.as_str()], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()?;
    row.map(|(version, fold_version, status, last_event)| {
        Ok(Snapshot {
            version: stored_u64(version, "snapshot version")?,
            fold_version: u32::try_from(fold_version)
                .map_err(|e| corrupt("snapshot fold version", e))?,
            status: status_from_doc(&status)?,
            last_event: decode_event(&last_event)
                .map_err(|e| corrupt(&format!("snapshot of {video_id}"), e))?,
            video_id: video_id.clone(),
        })
    })
    .transpose()
}

fn head_position(conn: &Connection) -> Result<u64, StoreError> {
    let head: i64 = conn
        .prepare_cached(SELECT_HEAD)?
        .query_row([], |row| row.get(0))?;
    stored_u64(head, "position")
}

fn stored_events(rows: rusqlite::Rows<'_>) -> Result<Vec<StoredEvent>, StoreError> {
    stored_events_up_to(rows, 0)
}

/// [`stored_events`] of a read that asked for at most `limit` rows: a page of a bulk read is
/// allocated once, not grown (and copied) by doubling.
fn stored_events_up_to(
    mut rows: rusqlite::Rows<'_>,
    limit: usize,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut events = Vec::with_capacity(limit.min(MAX_PREALLOCATED_EVENTS));
    let mut decoder = EventDecoder::default();
    while let Some(row) = rows.next()? {
        events.push(stored_event(row, &mut decoder)?);
    }
    Ok(events)
}

/// `position, stream_version, payload`, decoded straight from SQLite's buffer (no copy of the
/// payload: rebuilds read every event).
fn stored_event(
    row: &rusqlite::Row<'_>,
    decoder: &mut EventDecoder,
) -> Result<StoredEvent, StoreError> {
    let position = stored_u64(row.get(0)?, "position")?;
    Ok(StoredEvent {
        position,
        version: stored_u64(row.get(1)?, "stream_version")?,
        event: decoder
            .decode(blob(row, 2, "payload")?)
            .map_err(|e| corrupt(&format!("event at position {position}"), e))?,
    })
}

fn blob<'r>(row: &'r rusqlite::Row<'_>, index: usize, what: &str) -> Result<&'r [u8], StoreError> {
    row.get_ref(index)?.as_blob().map_err(|e| corrupt(what, e))
}

/// `id, provider, event_id, video_id, kind, detail, received_at, raw` of `audit_log`.
fn audit_entries(mut rows: rusqlite::Rows<'_>) -> Result<Vec<AuditEntry>, StoreError> {
    let mut entries = Vec::new();
    while let Some(row) = rows.next()? {
        entries.push(AuditEntry {
            id: stored_u64(row.get(0)?, "audit id")?,
            record: AuditRecord {
                provider: parse_id(ProviderName::parse, row.get(1)?, "audit provider")?,
                event_id: row
                    .get::<_, Option<String>>(2)?
                    .map(|raw| parse_id(EventId::parse, raw, "audit event_id"))
                    .transpose()?,
                video_id: row
                    .get::<_, Option<String>>(3)?
                    .map(|raw| parse_id(VideoId::parse, raw, "audit video_id"))
                    .transpose()?,
                kind: audit_kind(&row.get::<_, String>(4)?)?,
                detail: row.get(5)?,
                received_at: instant_from_text(&row.get::<_, String>(6)?)?,
                raw: decode_raw(blob(row, 7, "audit raw delivery")?)
                    .map_err(|e| corrupt("audit raw delivery", e))?,
            },
        });
    }
    Ok(entries)
}

fn status_from_doc(doc: &str) -> Result<VideoStatus, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt("status document", e))
}

// ---------------------------------------------------------------------------------------------
// Conversions

fn text_from_instant(at: DateTime<Utc>) -> String {
    // Nanoseconds, so a record reads back equal to what was written.
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn instant_from_text(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|e| corrupt("received_at", e))
}

fn audit_kind(text: &str) -> Result<AuditKind, StoreError> {
    [AuditKind::Ignored, AuditKind::Conflict]
        .into_iter()
        .find(|kind| kind.as_str() == text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown audit kind {text:?}")))
}

fn parse_id<T, E: std::fmt::Display>(
    parse: impl FnOnce(String) -> Result<T, E>,
    raw: String,
    what: &str,
) -> Result<T, StoreError> {
    parse(raw).map_err(|e| corrupt(what, e))
}

fn stored_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what}: {value}")))
}

/// Positions, versions and limits beyond `i64::MAX` mean "everything": SQLite stops there.
fn saturating_i64<N: TryInto<i64>>(value: N) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {error}"))
}

fn writer_stopped() -> StoreError {
    StoreError::Unavailable("the sqlite writer thread has stopped".into())
}

fn batch_failed(why: &str) -> StoreError {
    StoreError::Unavailable(format!("sqlite batch not committed: {why}").into())
}

/// What the caller does next: the disk, the lock or the file is the trouble → `Unavailable`
/// (retry later, answer 503); the bytes are wrong → `Corrupt` (alert). Anything else is a bug
/// in this file, answered `Unavailable` because an unacknowledged write is retried harmlessly.
impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> StoreError {
        use rusqlite::Error as E;

        match &error {
            E::SqliteFailure(failure, _)
                if matches!(
                    failure.code,
                    ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase
                ) =>
            {
                StoreError::Corrupt(error.to_string())
            }
            // Busy/locked, I/O, disk full, read-only, cannot open, permissions, out of memory.
            E::SqliteFailure(..) => StoreError::Unavailable(Box::new(error)),
            E::FromSqlConversionFailure(..)
            | E::IntegralValueOutOfRange(..)
            | E::Utf8Error(..)
            | E::InvalidColumnType(..) => StoreError::Corrupt(error.to_string()),
            _ => StoreError::Unavailable(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::super::conformance;
    use super::*;
    use crate::event::EventKind;

    async fn fresh() -> (TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(db_path(&dir).to_str().unwrap())
            .await
            .unwrap();
        (dir, store)
    }

    fn db_path(dir: &TempDir) -> PathBuf {
        dir.path().join("nested/dir/video-status.db")
    }

    conformance::conformance_tests!(fresh);

    /// `.cargo/config.toml` builds SQLite without the process-wide page cache and allocation
    /// statistics, each behind one global mutex that an online rebuild's niced readers held
    /// while preempted, stalling the webhooks' writer. A build that lost the flags fails here.
    #[test]
    fn sqlite_is_built_without_process_wide_locks() {
        let conn = Connection::open_in_memory().unwrap();
        let options: Vec<String> = conn
            .prepare("PRAGMA compile_options")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
            "one page cache for all connections: {options:?}"
        );
        assert!(
            options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
            "allocation statistics on: {options:?}"
        );
    }

    #[test]
    fn only_requests_arriving_fast_enough_to_fill_a_batch_wait_for_company() {
        let ms = Duration::from_millis;
        // A lone request answers at fsync latency, however recent the batch before.
        assert!(!worth_lingering(1, Duration::ZERO));
        assert!(!worth_lingering(1, Duration::from_micros(50)));
        // A thousand or two webhooks a second, a few queued behind a slower commit: a whole
        // LINGER would gather one or two more, so they commit at once.
        assert!(!worth_lingering(2, ms(2)));
        assert!(!worth_lingering(3, ms(2)));
        // Concurrency 64 at several thousand a second: a batch of 20 gathered in 2 ms.
        assert!(worth_lingering(20, ms(2)));
        assert!(worth_lingering(5, ms(1)));
        assert!(worth_lingering(2, Duration::ZERO));
    }

    #[test]
    fn a_shadow_write_commits_without_fsync_and_the_writer_goes_back_to_full() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("writer.db")).unwrap();
        migrate(&mut conn).unwrap();
        let generation = begin_shadow(&conn).unwrap();
        let status =
            conformance::sample_status("vid_1", "demo", crate::lifecycle::Status::Ready, 3);
        let rows = vec![StatusRow::new(&status, 7).unwrap()];
        let (reply, answer) = oneshot::channel();
        let job = Job::WriteShadow(Shadow { generation }, rows, reply);
        assert!(job.is_background());
        let (changes, _) = broadcast::channel(4);
        commit_without_fsync(&conn, std::iter::once(job), &Counters::default(), &changes);
        answer.blocking_recv().unwrap().unwrap();
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL again, for the next append");
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM status_rebuild", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[tokio::test]
    async fn events_survive_drop_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        let event = conformance::sample_event("vid_1", "evt_1", EventKind::Uploaded, 100);
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let outcome = store
            .append(conformance::append_request(event.clone(), 0))
            .await
            .unwrap();
        assert_eq!(
            outcome,
            AppendOutcome::Appended {
                position: 1,
                version: 1
            }
        );
        drop(store);

        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let stored = store.read_stream(&event.video_id).await.unwrap();
        assert_eq!(
            stored,
            vec![StoredEvent {
                position: 1,
                version: 1,
                event: event.clone()
            }]
        );
        // The redelivery after a restart is still recognised.
        let again = store
            .append(conformance::append_request(event.clone(), 0))
            .await
            .unwrap();
        assert_eq!(
            again,
            AppendOutcome::Duplicate {
                stream: event.video_id,
                same_body: true
            }
        );
    }

    #[tokio::test]
    async fn migrations_apply_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        drop(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
        drop(SqliteStore::open(path.to_str().unwrap()).await.unwrap());

        let conn = Connection::open(&path).unwrap();
        let applied: Vec<(i64, String)> = conn
            .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let expected: Vec<(i64, String)> = MIGRATIONS
            .iter()
            .map(|m| (m.version, m.name.to_string()))
            .collect();
        assert_eq!(applied, expected);
    }

    /// 0006 rewrites the log and the status table: everything an older build stored reads back
    /// the same, and positions go on from where they were.
    #[tokio::test]
    async fn the_clustered_log_migration_keeps_every_event_raw_request_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let events = [
            conformance::sample_event("vid_b", "evt_1", EventKind::Uploaded, 100),
            conformance::sample_event("vid_a", "evt_2", EventKind::Uploaded, 101),
            conformance::sample_event("vid_b", "evt_3", EventKind::Ready, 102),
        ];
        let status =
            conformance::sample_status("vid_b", "demo", crate::lifecycle::Status::Ready, 2);
        {
            let mut conn = open_writer(&path).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(CREATE_MIGRATIONS_TABLE).unwrap();
            for migration in MIGRATIONS.iter().filter(|m| m.version <= 5) {
                tx.execute_batch(migration.sql).unwrap();
                tx.execute(
                    INSERT_MIGRATION,
                    params![migration.version, migration.name, "2026-11-23T00:00:00Z"],
                )
                .unwrap();
            }
            let mut versions = std::collections::HashMap::new();
            for event in &events {
                let version: &mut i64 = versions.entry(event.video_id.clone()).or_default();
                *version += 1;
                let raw = conformance::sample_raw(event);
                tx.execute(
                    "INSERT INTO events (stream_id, stream_version, provider, event_id, kind,
                     occurred_at, received_at, body_sha256, payload, raw)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        event.video_id.as_str(),
                        *version,
                        event.provider.as_str(),
                        event.event_id.as_str(),
                        event.kind.name(),
                        event.occurred_at.timestamp_micros(),
                        event.received_at.timestamp_micros(),
                        &raw.body_sha256()[..],
                        encode_event(event),
                        encode_raw(&raw),
                    ],
                )
                .unwrap();
            }
            tx.execute(
                "INSERT INTO status (video_id, provider, status, version, position, doc)
                 VALUES ('vid_b', 'demo', 'ready', 2, 3, ?1)",
                params![serde_json::to_string(&status).unwrap()],
            )
            .unwrap();
            tx.commit().unwrap();
        }

        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let stream = store.read_stream(&events[0].video_id).await.unwrap();
        assert_eq!(
            stream,
            vec![
                StoredEvent {
                    position: 1,
                    version: 1,
                    event: events[0].clone()
                },
                StoredEvent {
                    position: 3,
                    version: 2,
                    event: events[2].clone()
                },
            ]
        );
        let deliveries = store.read_deliveries(0, 10).await.unwrap();
        assert_eq!(deliveries.len(), 3);
        for (delivery, event) in deliveries.iter().zip(&events) {
            assert_eq!(&delivery.stored.event, event);
            assert_eq!(delivery.raw, conformance::sample_raw(event));
        }
        assert_eq!(
            store.get_status(&status.video_id).await.unwrap(),
            Some(status)
        );
        let next = conformance::sample_event("vid_a", "evt_4", EventKind::Ready, 103);
        assert_eq!(
            store
                .append(conformance::append_request(next.clone(), 1))
                .await
                .unwrap(),
            AppendOutcome::Appended {
                position: 4,
                version: 2
            }
        );
        // The dedupe key still holds for what the old log stored.
        let again = store
            .append(conformance::append_request(events[1].clone(), 2))
            .await
            .unwrap();
        assert!(matches!(
            again,
            AppendOutcome::Duplicate {
                same_body: true,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_database_from_a_newer_build_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        drop(SqliteStore::open(path.to_str().unwrap()).await.unwrap());
        Connection::open(&path)
            .unwrap()
            .execute(
                INSERT_MIGRATION,
                params![999, "9999_future", "2030-01-01T00:00:00Z"],
            )
            .unwrap();
        let err = SqliteStore::open(path.to_str().unwrap())
            .await
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Corrupt(m) if m.contains("999")));
    }

    #[test]
    fn the_writer_connection_commits_durably_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open_writer(&dir.path().join("db")).unwrap();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .unwrap();
        let foreign_keys: bool = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(synchronous, 2, "synchronous must be FULL");
        assert!(foreign_keys);
    }

    #[test]
    fn the_shadow_status_table_has_the_columns_of_the_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.execute_batch(&create_shadow(1)).unwrap();
        let columns = |table: &str| -> Vec<(String, String, bool, bool)> {
            conn.prepare(&format!("PRAGMA table_info({table})"))
                .unwrap()
                .query_map([], |row| {
                    Ok((
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get::<_, i64>(5)? > 0,
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(columns("status_rebuild"), columns("status"));
        let indexed = |table: &str| -> Vec<String> {
            let mut columns: Vec<String> = conn
                .prepare(&format!("PRAGMA index_list({table})"))
                .unwrap()
                .query_map([], |row| row.get::<_, String>(1))
                .unwrap()
                .map(|name| {
                    let name = name.unwrap();
                    conn.prepare(&format!("PRAGMA index_info({name})"))
                        .unwrap()
                        .query_map([], |row| row.get::<_, String>(2))
                        .unwrap()
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap()
                        .join(",")
                })
                .collect();
            columns.sort();
            columns
        };
        assert_eq!(indexed("status_rebuild"), indexed("status"));
    }

    /// A rebuild must stream the log: sorting it in a temporary B-tree would hold it all, and a
    /// lookup in the table per event (ranging over the position index) would read its pages at
    /// random.
    #[test]
    fn reading_in_stream_order_walks_the_log_in_its_own_order_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        for (sql, bound) in [
            (SELECT_STREAMS, params!["", 0, 10, 10]),
            (SELECT_STREAMS_BEFORE, params!["", 0, 10, 10, "z"]),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(bound, |row| row.get::<_, String>(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("; ");
            assert!(plan.contains("USING PRIMARY KEY"), "{plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{plan}");
        }
    }

    #[test]
    fn an_append_changes_no_filter_index_when_status_and_provider_stay() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN {UPDATE_STATUS_DOC}"))
            .unwrap()
            .query_map(params!["v", "demo", "ready", 1, 1, "{}"], |row| {
                row.get::<_, String>(1)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // The only B-tree it opens for writing is the table itself.
        let writes: Vec<&String> = plan
            .iter()
            .filter(|op| op.starts_with("OpenWrite"))
            .collect();
        assert_eq!(writes.len(), 1, "{plan:#?}");
    }

    #[tokio::test]
    async fn an_unreadable_payload_is_corrupt() {
        let (dir, store) = fresh().await;
        let event = conformance::sample_event("vid_1", "evt_1", EventKind::Ready, 100);
        store
            .append(conformance::append_request(event.clone(), 0))
            .await
            .unwrap();
        Connection::open(db_path(&dir))
            .unwrap()
            .execute("UPDATE events SET payload = x'0f01'", [])
            .unwrap();
        let err = store.read_stream(&event.video_id).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(m) if m.contains("position 1")));
        let err = store.read_all(0, 10).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)));
    }

    #[tokio::test]
    async fn in_memory_paths_are_refused() {
        for path in ["", ":memory:"] {
            let err = SqliteStore::open(path).await.err().unwrap();
            assert!(matches!(err, StoreError::Unavailable(_)), "{path:?}");
        }
    }

    #[tokio::test]
    async fn ping_commits_a_write_and_appends_nothing() {
        let (dir, store) = fresh().await;
        store.ping().await.unwrap();
        assert_eq!(
            store.stats(),
            StoreStats {
                commits: 1,
                appended: 0
            }
        );
        let conn = Connection::open(db_path(&dir)).unwrap();
        let probed: String = conn
            .query_row(SELECT_META, [READY_PROBE_KEY], |row| row.get(0))
            .unwrap();
        instant_from_text(&probed).unwrap();
    }

    #[test]
    fn driver_failures_are_classified() {
        let failure = |code| {
            StoreError::from(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ))
        };
        for code in [
            rusqlite::ffi::SQLITE_BUSY,
            rusqlite::ffi::SQLITE_IOERR,
            rusqlite::ffi::SQLITE_FULL,
            rusqlite::ffi::SQLITE_READONLY,
            rusqlite::ffi::SQLITE_CANTOPEN,
        ] {
            assert!(
                matches!(failure(code), StoreError::Unavailable(_)),
                "{code}"
            );
        }
        for code in [rusqlite::ffi::SQLITE_CORRUPT, rusqlite::ffi::SQLITE_NOTADB] {
            assert!(matches!(failure(code), StoreError::Corrupt(_)), "{code}");
        }
        let conversion =
            rusqlite::Error::InvalidColumnType(0, "payload".into(), rusqlite::types::Type::Text);
        assert!(matches!(
            StoreError::from(conversion),
            StoreError::Corrupt(_)
        ));
    }

    fn writer_with_schema(dir: &TempDir) -> Connection {
        let mut conn = open_writer(&dir.path().join("db")).unwrap();
        migrate(&mut conn).unwrap();
        conn
    }

    fn count(conn: &Connection, table: &str) -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
            row.get(0)
        })
        .unwrap()
    }

    fn audit() -> AuditRecord {
        AuditRecord {
            provider: ProviderName::parse("mux").unwrap(),
            event_id: None,
            video_id: None,
            kind: AuditKind::Ignored,
            detail: "untracked".into(),
            received_at: Utc::now(),
            raw: Default::default(),
        }
    }

    fn quarantined() -> QuarantineRecord {
        QuarantineRecord {
            provider: ProviderName::parse("mux").unwrap(),
            error_code: "bad_json".into(),
            reason: "not JSON".into(),
            received_at: Utc::now(),
            raw: Default::default(),
        }
    }

    #[test]
    fn a_request_refused_before_writing_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.execute_batch(BEGIN_BATCH).unwrap();
        let mut batch = Batch {
            conn: &conn,
            aborted: None,
            writes: 0,
        };
        let stored = batch.run(|c| record_audit(c, &audit()));
        let refused =
            batch.run(|_| Err::<(), _>(StoreError::Corrupt("refused before writing".into())));
        let also_stored = batch.run(|c| quarantine(c, &quarantined()));
        assert!(stored.is_ok() && also_stored.is_ok());
        assert!(refused.is_err());
        assert_eq!(batch.aborted, None);
        conn.execute_batch(COMMIT_BATCH).unwrap();
        assert_eq!(count(&conn, "audit_log"), 1);
        assert_eq!(count(&conn, "quarantine"), 1);
    }

    #[test]
    fn a_request_failing_after_it_wrote_fails_the_whole_batch() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.execute_batch(BEGIN_BATCH).unwrap();
        let mut batch = Batch {
            conn: &conn,
            aborted: None,
            writes: 0,
        };
        assert!(batch.run(|c| quarantine(c, &quarantined())).is_ok());
        let failed = batch.run(|c| {
            record_audit(c, &audit())?;
            Err::<(), _>(StoreError::Corrupt("failed after writing".into()))
        });
        assert!(failed.is_err());
        assert!(
            batch.aborted.is_some(),
            "its half-done write cannot be undone alone"
        );
        let after = batch.run(|c| quarantine(c, &quarantined()));
        assert!(matches!(after, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn a_failed_schema_change_rolls_back_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.execute_batch(BEGIN_BATCH).unwrap();
        let mut batch = Batch {
            conn: &conn,
            aborted: None,
            writes: 0,
        };
        let failed = batch.run_isolated(|c| {
            c.execute_batch("CREATE TABLE scratch (x INTEGER) STRICT")?;
            record_audit(c, &audit())?;
            Err::<(), _>(StoreError::Corrupt("failed after writing".into()))
        });
        let stored = batch.run(|c| quarantine(c, &quarantined()));
        assert!(failed.is_err());
        assert!(stored.is_ok());
        assert_eq!(batch.aborted, None);
        conn.execute_batch(COMMIT_BATCH).unwrap();
        assert_eq!(count(&conn, "audit_log"), 0);
        assert_eq!(count(&conn, "quarantine"), 1);
        let scratch: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'scratch'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(scratch, 0);
    }

    #[test]
    fn a_transaction_lost_mid_batch_fails_the_rest_of_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.execute_batch(BEGIN_BATCH).unwrap();
        let mut batch = Batch {
            conn: &conn,
            aborted: None,
            writes: 0,
        };
        assert!(batch.run(|c| record_audit(c, &audit())).is_ok());
        // What SQLite does by itself on SQLITE_FULL or an I/O error.
        let lost = batch.run(|c| {
            c.execute_batch(ROLLBACK_BATCH)?;
            Err::<(), _>(StoreError::Unavailable("disk full".into()))
        });
        assert!(lost.is_err());
        assert!(batch.aborted.is_some());
        let after = batch.run(|c| quarantine(c, &quarantined()));
        assert!(matches!(after, Err(StoreError::Unavailable(_))));
        assert_eq!(
            count(&conn, "quarantine"),
            0,
            "not run once the batch is lost"
        );
    }

    #[test]
    fn one_batch_is_one_commit_and_later_requests_see_earlier_ones() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        let counters = Counters::default();
        let first = conformance::sample_event("vid_1", "evt_1", EventKind::Uploaded, 100);
        let second = conformance::sample_event("vid_1", "evt_2", EventKind::Ready, 101);
        let (reply_1, mut answer_1) = oneshot::channel();
        let (reply_2, mut answer_2) = oneshot::channel();
        let (reply_3, mut answer_3) = oneshot::channel();
        let jobs = vec![
            Job::Append(Box::new(conformance::append_request(first, 0)), reply_1),
            Job::Append(Box::new(conformance::append_request(second, 1)), reply_2),
            Job::Ping(reply_3),
        ];
        commit_batch(&conn, jobs.into_iter(), &counters, &broadcast::channel(1).0);

        assert_eq!(
            answer_1.try_recv().unwrap().unwrap(),
            AppendOutcome::Appended {
                position: 1,
                version: 1
            }
        );
        assert_eq!(
            answer_2.try_recv().unwrap().unwrap(),
            AppendOutcome::Appended {
                position: 2,
                version: 2
            }
        );
        answer_3.try_recv().unwrap().unwrap();
        assert_eq!(counters.commits.load(Ordering::Relaxed), 1);
        assert_eq!(counters.appended.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_batch_that_cannot_commit_answers_every_request_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let conn = writer_with_schema(&dir);
        conn.busy_timeout(Duration::from_millis(20)).unwrap();
        // Another process holds the write lock past the busy timeout.
        let other = Connection::open(dir.path().join("db")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let counters = Counters::default();
        let event = conformance::sample_event("vid_1", "evt_1", EventKind::Uploaded, 100);
        let (reply_1, mut answer_1) = oneshot::channel();
        let (reply_2, mut answer_2) = oneshot::channel();
        let jobs = vec![
            Job::Append(Box::new(conformance::append_request(event, 0)), reply_1),
            Job::Ping(reply_2),
        ];
        commit_batch(&conn, jobs.into_iter(), &counters, &broadcast::channel(1).0);

        assert!(matches!(
            answer_1.try_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            answer_2.try_recv().unwrap(),
            Err(StoreError::Unavailable(_))
        ));
        assert_eq!(counters.commits.load(Ordering::Relaxed), 0);
        assert_eq!(counters.appended.load(Ordering::Relaxed), 0);

        // Once the lock is free, the same connection commits again.
        other.execute_batch("ROLLBACK").unwrap();
        let (reply, mut answer) = oneshot::channel();
        commit_batch(
            &conn,
            [Job::Ping(reply)].into_iter(),
            &counters,
            &broadcast::channel(1).0,
        );
        answer.try_recv().unwrap().unwrap();
    }
}
