//! Copies the WAL back into the database file on a thread of its own. SQLite's automatic
//! checkpoint runs inside the commit that crosses its threshold, on the writer thread, so every
//! append queued behind that commit waited for a few megabytes to be copied and the database
//! file to be fsynced. A passive checkpoint from another connection runs beside the writer
//! (WAL allows one checkpointer and one writer at once) and never waits for readers.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// How often the WAL is copied back. Between two passes the WAL grows by what the writer
/// committed meanwhile; at a few thousand appends a second that is a few megabytes.
const INTERVAL: Duration = Duration::from_millis(250);

/// The writer's own automatic checkpoint stays on as a backstop, at a size this thread keeps
/// the WAL well below (pages; 16 MiB at the default page size).
pub(super) const WRITER_BACKSTOP_PAGES: u32 = 4096;

/// The checkpoint thread; dropping it stops the thread and waits for its pass to end.
pub(super) struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    pub(super) fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // The database file's fsync after the copy is what lets SQLite reuse the WAL.
        conn.pragma_update(None, "synchronous", "FULL")?;
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &stopped))
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

fn run(conn: &Connection, stopped: &mpsc::Receiver<()>) {
    let mut failures = FailureLog::default();
    loop {
        match stopped.recv_timeout(INTERVAL) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match checkpoint(conn) {
            Ok(_) => {
                if let Some(failed_for) = failures.recovered(Instant::now()) {
                    tracing::info!(
                        failed_for_secs = failed_for.as_secs(),
                        "passive WAL checkpoints succeed again"
                    );
                }
            }
            Err(error) => {
                // The writer's backstop checkpoint still bounds the WAL; nothing acknowledged
                // is at risk, since the WAL itself is durable.
                if failures.should_log(&error.to_string(), Instant::now()) {
                    tracing::warn!(
                        %error,
                        "passive WAL checkpoint failed; retrying every {} ms, logged again \
                         when the error changes or after {} min",
                        INTERVAL.as_millis(),
                        REPEAT_LOG_AFTER.as_secs() / 60
                    );
                }
            }
        }
    }
}

/// How often the same checkpoint failure is logged again while it lasts.
const REPEAT_LOG_AFTER: Duration = Duration::from_secs(300);

/// Which checkpoint failures to log: a full disk fails every pass, four times a second, and the
/// lines would go to that same disk.
#[derive(Debug, Default)]
struct FailureLog {
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    error: String,
    since: Instant,
    logged_at: Instant,
}

impl FailureLog {
    /// Records a failure; true when it should be logged: the first, one with another error, or
    /// the same one again after [`REPEAT_LOG_AFTER`].
    fn should_log(&mut self, error: &str, now: Instant) -> bool {
        match &mut self.failing {
            Some(failing)
                if failing.error == error
                    && now.duration_since(failing.logged_at) < REPEAT_LOG_AFTER =>
            {
                false
            }
            Some(failing) => {
                failing.error = error.to_string();
                failing.logged_at = now;
                true
            }
            None => {
                self.failing = Some(Failing {
                    error: error.to_string(),
                    since: now,
                    logged_at: now,
                });
                true
            }
        }
    }

    /// Records a success; how long checkpoints had been failing, if they were.
    fn recovered(&mut self, now: Instant) -> Option<Duration> {
        self.failing
            .take()
            .map(|failing| now.duration_since(failing.since))
    }
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
    use std::time::{Duration, Instant};

    use super::{FailureLog, REPEAT_LOG_AFTER};

    use crate::event::EventKind;
    use crate::store::conformance::{append_request, sample_event};
    use crate::store::sqlite::SqliteStore;
    use crate::store::EventStore;

    #[test]
    fn a_lasting_failure_is_logged_once_then_again_on_change_or_after_a_while() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let mut log = FailureLog::default();
        assert!(log.should_log("disk full", at(0)));
        assert!(!log.should_log("disk full", at(1)));
        assert!(!log.should_log("disk full", at(299)));
        assert!(log.should_log("disk full", at(0) + REPEAT_LOG_AFTER));
        assert!(log.should_log("I/O error", at(301)), "another error");
        assert!(!log.should_log("I/O error", at(302)));
        assert_eq!(log.recovered(at(310)), Some(Duration::from_secs(310)));
        assert_eq!(log.recovered(at(311)), None, "only once");
        assert!(log.should_log("disk full", at(320)), "a new failure");
    }

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
