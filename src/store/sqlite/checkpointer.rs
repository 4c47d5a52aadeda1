//! Copies the WAL back into the database file on a thread of its own. SQLite's automatic
//! checkpoint runs inside the commit that crosses its threshold, on the writer thread, so every
//! append queued behind that commit waited for a few megabytes to be copied and the database
//! file to be fsynced. A passive checkpoint from another connection runs beside the writer
//! (WAL allows one checkpointer and one writer at once) and never waits for readers.
//!
//! Copying is not all: the WAL only starts over from its first frame when a writer begins at a
//! moment every frame is copied, and under steady appends this thread's pass never ends at such
//! a moment (the writer committed meanwhile). Left alone, the WAL grows until the writer's own
//! automatic checkpoint fires, which copies whatever accumulated since the last pass (up to
//! [`INTERVAL`] of appends) and fsyncs the database file, all while appends wait. So once the
//! WAL is [`RESTART_AFTER_FRAMES`] long, a pass asks the writer ([`RestartWanted`]) to finish
//! right after it: the writer's checkpoint then copies only the few frames committed during the
//! pass, and its next transaction starts the WAL over.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// How often the WAL is copied back. Between two passes the WAL grows by what the writer
/// committed meanwhile; at a few thousand appends a second that is a few megabytes.
const INTERVAL: Duration = Duration::from_millis(250);

/// WAL length (frames, a page each; 16 MiB at the default page size) from which a pass asks the
/// writer to let the WAL start over.
const RESTART_AFTER_FRAMES: i64 = 4096;

/// The writer's own automatic checkpoint stays on as a backstop, for when this thread cannot
/// keep up or stopped: four times the length at which the WAL normally starts over, so with the
/// thread working it does not fire.
pub(super) const WRITER_BACKSTOP_PAGES: u32 = 4 * RESTART_AFTER_FRAMES as u32;

/// Set by a pass of the checkpoint thread, taken by the writer between two batches: "the WAL
/// is long and has just been copied; checkpoint the rest now, so it can start over".
#[derive(Clone, Default)]
pub(super) struct RestartWanted(Arc<AtomicBool>);

impl RestartWanted {
    fn ask(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// True once per request.
    pub(super) fn take(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// The checkpoint thread; dropping it stops the thread and waits for its pass to end.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path, restart: RestartWanted) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The database file's fsync after the copy is what lets SQLite reuse the WAL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped, &restart))
            .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        Ok(Checkpointer {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>, restart: &RestartWanted) {
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match pass(conn) {
            Ok(true) => restart.ask(),
            Ok(false) => {}
            // The writer's backstop checkpoint still bounds the WAL; nothing acknowledged is
            // at risk, since the WAL itself is durable.
            Err(error) => tracing::warn!(%error, "passive WAL checkpoint failed; retrying"),
        }
    }
}

/// One pass of the thread; true when the WAL is long enough that the writer should let it
/// start over.
fn pass(conn: &Connection) -> Result<bool, rusqlite::Error> {
    let (frames, _copied) = checkpoint(conn)?;
    Ok(frames >= RESTART_AFTER_FRAMES)
}

/// One passive pass: copies what no reader still needs. Returns the WAL's frames and how many of
/// them are now in the database file.
pub(super) fn checkpoint(conn: &Connection) -> Result<(i64, i64), rusqlite::Error> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
        Ok((row.get(1)?, row.get(2)?))
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use crate::event::EventKind;
    use crate::store::conformance::{append_request, sample_event};
    use crate::store::sqlite::SqliteStore;
    use crate::store::EventStore;

    /// Pages the database file itself says it has (header bytes 28..32): what checkpoints
    /// copied there, not what waits in the WAL.
    fn pages_in_file(path: &std::path::Path) -> u32 {
        let bytes = std::fs::read(path).unwrap();
        u32::from_be_bytes(bytes[28..32].try_into().unwrap())
    }

    #[tokio::test]
    async fn the_wal_reaches_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpointed.db");
        let store = SqliteStore::open(path.to_str().unwrap()).await.unwrap();
        let before = pages_in_file(&path);
        for n in 0..200 {
            let event = sample_event(&format!("vid_{n}"), "evt", EventKind::Uploaded, 1_000);
            store.append(append_request(event, 0)).await.unwrap();
        }
        // Far below the writer's backstop: only the checkpoint thread copies these pages.
        let conn = rusqlite::Connection::open(&path).unwrap();
        let live: u32 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        assert!(
            live > before,
            "the appends grew the database ({before} → {live} pages)"
        );
        let deadline = Instant::now() + super::INTERVAL * 20;
        while pages_in_file(&path) < live {
            assert!(
                Instant::now() < deadline,
                "the database file still has {} of {live} pages",
                pages_in_file(&path)
            );
            tokio::time::sleep(super::INTERVAL / 2).await;
        }
    }

    /// The WAL header's checkpoint sequence number (bytes 12..16), which goes up each time
    /// the WAL starts over from its first frame.
    fn wal_generation(wal: &std::path::Path) -> u32 {
        let bytes = std::fs::read(wal).unwrap();
        u32::from_be_bytes(bytes[12..16].try_into().unwrap())
    }

    /// Under steady appends the writer commits while each pass runs, so the WAL is never all
    /// copied when the writer begins, and it would grow until the backstop. A pass over a long
    /// WAL asks the writer to finish the checkpoint, after which the WAL starts over.
    #[test]
    fn a_long_wal_starts_over_once_the_writer_finishes_the_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("restarting.db");
        let wal = dir.path().join("restarting.db-wal");
        let writer = rusqlite::Connection::open(&path).unwrap();
        writer.pragma_update(None, "journal_mode", "WAL").unwrap();
        writer.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        writer.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let commit = || {
            writer
                .execute("INSERT INTO t VALUES (zeroblob(1 << 20))", [])
                .unwrap()
        };
        let thread = rusqlite::Connection::open(&path).unwrap();
        // 256 pages a commit: the WAL passes the length at which a pass asks for a restart.
        for _ in 0..=super::RESTART_AFTER_FRAMES / 256 {
            commit();
        }
        let first = wal_generation(&wal);
        // A read that began before the last commits keeps the pass from copying them: the
        // same as the writer committing while the pass runs.
        let reader = rusqlite::Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        commit();
        let restart = super::RestartWanted::default();
        assert!(super::pass(&thread).unwrap());
        restart.ask();
        reader.execute_batch("COMMIT").unwrap();
        commit();
        commit();
        assert_eq!(
            wal_generation(&wal),
            first,
            "nothing started the WAL over yet"
        );

        let counters = crate::store::sqlite::Counters::default();
        assert!(restart.take());
        assert!(!restart.take(), "one request, one checkpoint");
        crate::store::sqlite::let_the_wal_start_over(&writer, &counters);
        commit();
        assert_ne!(wal_generation(&wal), first, "the WAL started over");
        assert_eq!(
            counters
                .wal_checkpoints
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn a_short_wal_is_left_to_start_over_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("short.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        assert!(!super::pass(&conn).unwrap());
    }

    #[test]
    fn a_pass_copies_every_frame_no_reader_needs() {
        let dir = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(dir.path().join("wal.db")).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let (frames, copied) = super::checkpoint(&conn).unwrap();
        assert!(frames > 0);
        assert_eq!(frames, copied);
    }
}
