//! Persistence: one writer thread owns the SQLite connection and the transcript file.
//!
//! The chat never waits on the disk. The room manager hands every [`Event`] to a
//! [`StoreHandle`], which only pushes it on a queue. The writer thread drains the
//! queue in batches, inserts each batch in one transaction and appends the same
//! events, in the same order, to the transcript. This queue is unbounded on purpose:
//! its consumer is the local disk, not a stranger's socket, and an event must never
//! be dropped.
//!
//! Nothing is lost when the disk misbehaves. A batch the database refuses (locked
//! by a grader's `sqlite3`, disk full, I/O error) is kept, in order, and retried
//! with backoff until it is written, while the queue keeps draining behind it; the
//! transcript is retried the same way, on its own schedule. [`StoreHandle::backlog`]
//! tells how far the database is behind, so the room manager can stop accepting
//! messages that might never be recorded. A shutdown keeps retrying for
//! `storage.shutdown_grace_secs`, then saves what is left to
//! `DATABASE.unsaved.jsonl`, which the next [`Store::open`] imports first.
//!
//! One server per database: [`Store::open`] holds an advisory lock beside it.
//!
//! Reading the record back, erasing from it and keeping the roster go through
//! small traits ([`RecordRead`], [`RecordErase`], [`RosterEdit`],
//! [`RosterSource`]) with one implementation per
//! back end: [`sqlite`] for a single server, [`postgres`] for a cluster, whose
//! nodes share one record.

mod erase;
mod lock;
pub mod postgres;
mod read;
mod roster;
pub mod sqlite;
mod unsaved;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use crate::config::Config;
use crate::event::{Event, EventSink, HistoryLine};
use crate::transcript::Transcript;

pub use erase::{Counts, RecordErase, ERASED};
pub use lock::{acquire as lock_database, lock_path, DatabaseLock};
pub use read::{EachEvent, Param, RecordRead, Selection, Snapshot, StoredEvent, StudentKeys};
pub use roster::{roster_source, RosterEdit, RosterSource};
use sqlite::{create_folder, db_error, insert_counting, insert_rows};
pub use sqlite::{
    insert_events, migrate, open_database, open_read_only, query_history, recent_history,
    MIGRATIONS,
};
pub use unsaved::unsaved_path;
use writer::{Request, Writer};

/// How long the writer gathers events before it commits them: one commit per
/// interval instead of one per event when the class chats steadily. It is also the
/// most a `kill -9` can lose.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// How long one write of the writer waits for another connection's lock before it
/// counts as failed. Short, because a failed batch is kept and retried anyway, and
/// the writer must get back to its queue and to the transcript.
const WRITE_BUSY_TIMEOUT: Duration = Duration::from_millis(250);

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused to open, migrate or write.
    #[error("database {path}: {source}")]
    Database {
        /// The database file.
        path: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A folder or the transcript file could not be created.
    #[error("{what}: {source}")]
    Io {
        /// What was being created.
        what: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Another server holds the database.
    #[error("database {path} is in use by another chat-server (pid {pid})")]
    InUse {
        /// The database file.
        path: String,
        /// The holder's process id, as it wrote it in the lock file.
        pid: String,
    },
}

/// Why a back end could not answer a query.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite refused.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused, or the connection to it failed.
    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// The database could not be opened.
    #[error(transparent)]
    Open(#[from] StoreError),
    /// PostgreSQL did not answer in time.
    #[error("PostgreSQL did not answer within {} s", .0.as_secs())]
    NoAnswer(Duration),
    /// The task reading it on the blocking pool failed.
    #[error("the reading task failed: {0}")]
    Task(String),
    /// A stored event has a kind this version does not know.
    #[error("the database holds an event of unknown kind {0:?}")]
    UnknownKind(String),
}

/// The sending side of the store: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    queue: mpsc::Sender<Request>,
    backlog: Arc<AtomicUsize>,
    max_backlog: usize,
}

impl StoreHandle {
    /// Queues an event for the database and the transcript.
    pub fn record(&self, event: Event) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        if self.queue.send(Request::Record(event)).is_err() {
            self.backlog.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("store is closed; an event was not recorded");
        }
    }

    /// Events recorded but not yet committed to the database.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }

    /// Whether more than `storage.max_backlog` events wait for the database. While
    /// it is, the room manager refuses new chat lines and private messages with
    /// `! Messages cannot be recorded right now; try again shortly.`, so that
    /// nothing is delivered that might never be recorded. One atomic load: cheap
    /// enough for every line.
    pub fn over_backlog(&self) -> bool {
        self.backlog() > self.max_backlog
    }

    /// Asks the writer thread to delete the events before `cutoff_ms` and the
    /// transcript files last written before then (`storage.retention_days`).
    pub fn expire(&self, cutoff_ms: i64) {
        let _ = self.queue.send(Request::Expire { cutoff_ms });
    }

    /// Asks the writer thread to replace, in every transcript file, the lines of
    /// these erased events by their `[erased]` form. The writer is the one that
    /// appends, so no line is appended while a file is rewritten.
    pub fn rewrite_transcripts(&self, erased: Vec<Event>) {
        let _ = self.queue.send(Request::RewriteTranscripts(erased));
    }
}

impl EventSink for StoreHandle {
    fn record(&self, event: Event) {
        StoreHandle::record(self, event);
    }

    fn backlogged(&self) -> bool {
        self.over_backlog()
    }
}

/// What [`Store::open`] hands the server.
#[derive(Debug)]
pub struct Opened {
    /// The running writer; [`Store::close`] it at shutdown.
    pub store: Store,
    /// Where events go.
    pub handle: StoreHandle,
    /// The first session number not yet used in the database.
    pub next_session: i64,
    /// Each room's last `history.replay_lines` chat lines, oldest first (empty when
    /// replay is off): the room manager's replay starts from these.
    pub history: Vec<(Arc<str>, Vec<HistoryLine>)>,
    /// The id of the newest `erase` event when `history` was read: the server
    /// applies those after it (SPEC 12), the history already has the others.
    pub last_erase: i64,
}

/// How the store ended. Only [`Closed::AllWritten`] means every event is in the
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Every event is in the database.
    AllWritten,
    /// The database still refused `count` events when the shutdown grace ran out;
    /// they are in `path`, and the next start imports them.
    Unsaved {
        /// Events in the file from this run.
        count: usize,
        /// `DATABASE.unsaved.jsonl`.
        path: PathBuf,
    },
    /// Not even the unsaved-events file could take them: `count` events are lost.
    Lost {
        /// Events lost.
        count: usize,
        /// The file that could not be written.
        path: PathBuf,
        /// Why.
        error: String,
    },
}

impl Closed {
    /// What to tell the operator when not everything is in the database.
    pub fn problem(&self) -> Option<String> {
        match self {
            Closed::AllWritten => None,
            Closed::Unsaved { count, path } => Some(format!(
                "{count} events could not be written to the database; saved to {}",
                path.display()
            )),
            Closed::Lost { count, path, error } => Some(format!(
                "{count} events could not be written to the database nor saved to {}: {error}",
                path.display()
            )),
        }
    }
}

/// The running writer thread. [`Store::close`] waits until everything queued is on
/// disk, or the shutdown grace has run out.
#[derive(Debug)]
pub struct Store {
    thread: JoinHandle<(Vec<Event>, unsaved::Spill)>,
    queue: mpsc::Sender<Request>,
    backlog: Arc<AtomicUsize>,
    unsaved: PathBuf,
    // Released only after the unsaved events are on disk: a restart waits for them.
    _lock: lock::DatabaseLock,
}

impl Store {
    /// Takes the database's lock, opens (and creates, and migrates) it, imports the
    /// events a previous run could not write, loads each room's recent history,
    /// opens the transcript and starts the writer thread.
    pub fn open(config: &Config) -> Result<Opened, StoreError> {
        let path = &config.storage.database;
        create_folder(path)?;
        let lock = lock::acquire(path)?;
        let mut conn = open_database(path)?;
        let unsaved = unsaved_path(path);
        import_unsaved(&mut conn, path, &unsaved)?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        if let Some(cutoff_ms) = config.storage.retention_cutoff_ms(now_ms) {
            // Before the writer starts, so that no append races the removals.
            sqlite::expire_before(&conn, cutoff_ms).map_err(|source| db_error(path, source))?;
            crate::transcript::expire_transcripts(&config.log.dir, cutoff_ms);
        }
        let next_session: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(session), 0) + 1 FROM events",
                [],
                |r| r.get(0),
            )
            .map_err(|source| db_error(path, source))?;
        let last_erase = sqlite::last_erase(&conn).map_err(|source| db_error(path, source))?;
        let replay_lines = config.history.replay_lines;
        let history =
            recent_history(&conn, replay_lines).map_err(|source| db_error(path, source))?;
        conn.busy_timeout(WRITE_BUSY_TIMEOUT)
            .map_err(|source| db_error(path, source))?;
        let log = &config.log;
        let transcript =
            Transcript::open(&log.dir, log.rotation, log.max_files).map_err(|source| {
                StoreError::Io {
                    what: format!("transcript folder {}", log.dir.display()),
                    source,
                }
            })?;
        let backlog = Arc::new(AtomicUsize::new(0));
        let spill = unsaved::Spill::new(unsaved.clone());
        let writer = Writer::new(conn, transcript, backlog.clone(), spill);
        let (queue, requests) = mpsc::channel();
        let grace = config.storage.shutdown_grace();
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(requests, grace))
            .map_err(|source| StoreError::Io {
                what: "store writer thread".into(),
                source,
            })?;
        let store = Store {
            thread,
            queue: queue.clone(),
            backlog: backlog.clone(),
            unsaved,
            _lock: lock,
        };
        let handle = StoreHandle {
            queue,
            backlog,
            max_backlog: config.storage.max_backlog,
        };
        Ok(Opened {
            store,
            handle,
            next_session,
            history,
            last_erase,
        })
    }

    /// Writes everything queued so far, retrying a failing database for at most
    /// `storage.shutdown_grace_secs`, saves what it still refuses to
    /// `DATABASE.unsaved.jsonl`, stops the writer and releases the database.
    /// Events recorded after this are not written (and logged as such).
    pub fn close(self) -> Closed {
        let _ = self.queue.send(Request::Close);
        let (left, spill) = match self.thread.join() {
            Ok(joined) => joined,
            Err(_) => {
                return Closed::Lost {
                    count: self.backlog.load(Ordering::Relaxed),
                    path: self.unsaved,
                    error: "the store writer thread panicked".into(),
                }
            }
        };
        if left.is_empty() {
            return Closed::AllWritten;
        }
        let count = left.len();
        // The first of them may be in the file already, saved as they waited.
        match unsaved::save(&self.unsaved, spill.rest(&left)) {
            Ok(()) => {
                tracing::error!(
                    count,
                    path = %self.unsaved.display(),
                    "events the database refused are saved for the next start"
                );
                Closed::Unsaved {
                    count,
                    path: self.unsaved,
                }
            }
            Err(err) => {
                tracing::error!(count, %err, "events could be neither written nor saved");
                Closed::Lost {
                    count,
                    path: self.unsaved,
                    error: err.to_string(),
                }
            }
        }
    }
}

/// The record a server's configuration names, to read: a cluster's PostgreSQL,
/// or the SQLite database, read-only. It blocks: call it on a blocking thread.
pub fn open_record(config: &Config) -> anyhow::Result<Box<dyn RecordRead>> {
    if !config.storage.postgres_url.is_empty() {
        return Ok(Box::new(postgres::Blocking::connect(
            &config.storage.postgres_url,
        )?));
    }
    Ok(Box::new(open_read_only(&config.storage.database)?))
}

/// Writes the events a previous run saved in `unsaved` into the database, in one
/// transaction, and removes the file only once they are committed. Those the
/// previous run itself committed after saving them (the lock cleared) are
/// skipped: each event is imported once.
fn import_unsaved(conn: &mut Connection, path: &Path, unsaved: &Path) -> Result<(), StoreError> {
    let io_error = |source| StoreError::Io {
        what: format!("unsaved events {}", unsaved.display()),
        source,
    };
    let saved = unsaved::load(unsaved).map_err(io_error)?;
    let committed: usize = match &saved.generation {
        None => 0,
        Some(generation) => conn
            .query_row(
                "SELECT committed FROM unsaved_progress WHERE generation = ?1",
                [generation],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map_err(|source| db_error(path, source))?
            .unwrap_or(0) as usize,
    };
    let events = saved.events.get(committed..).unwrap_or_default();
    let tx = conn
        .transaction()
        .map_err(|source| db_error(path, source))?;
    insert_rows(&tx, events).map_err(|source| db_error(path, source))?;
    tx.execute("DELETE FROM unsaved_progress", [])
        .map_err(|source| db_error(path, source))?;
    tx.commit().map_err(|source| db_error(path, source))?;
    if !events.is_empty() {
        tracing::info!(
            count = events.len(),
            from = %unsaved.display(),
            "imported the events a previous run could not write"
        );
    }
    if unsaved.exists() {
        std::fs::remove_file(unsaved).map_err(io_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let mut files: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.ends_with(".sql"))
                .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
        assert_eq!(files, listed);
    }

    fn chat(id: i64, room: &str, text: &str) -> Event {
        Event {
            ts_ms: id,
            kind: crate::event::EventKind::Chat,
            room: room.into(),
            sender: "u".into(),
            recipient: None,
            text: Some(text.into()),
            session: 1,
            account: None,
        }
    }

    #[test]
    fn recent_history_gives_each_room_its_last_lines_oldest_first() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        assert!(recent_history(&conn, 2).unwrap().is_empty());
        let mut events: Vec<Event> = (0..5)
            .map(|i| chat(i, ["lab", "lobby"][i as usize % 2], &format!("m{i}")))
            .collect();
        events.push(Event {
            kind: crate::event::EventKind::Join,
            ..chat(9, "quiet", "")
        });
        insert_events(&mut conn, &events).unwrap();
        let texts = |per_room| -> Vec<(String, Vec<String>)> {
            recent_history(&conn, per_room)
                .unwrap()
                .into_iter()
                .map(|(room, lines)| {
                    let texts = lines.into_iter().map(|l| l.text.to_string()).collect();
                    (room.to_string(), texts)
                })
                .collect()
        };
        assert_eq!(
            texts(2),
            vec![
                ("lab".into(), vec!["m2".into(), "m4".into()]),
                ("lobby".into(), vec!["m1".into(), "m3".into()]),
            ]
        );
        assert!(texts(0).is_empty());
    }

    /// The daily retention of a running server: the writer thread deletes the
    /// old rows and transcript files, and keeps the recent ones.
    #[test]
    fn the_writer_expires_old_events_and_transcript_files_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.storage.database = dir.path().join("chat.db");
        config.log.dir = dir.path().join("logs");
        let day = 86_400_000;
        let now = chrono::Utc::now().timestamp_millis();
        let mut conn = open_database(&config.storage.database).unwrap();
        insert_events(
            &mut conn,
            &[
                chat(now - 40 * day, "lobby", "old"),
                chat(now - day, "lobby", "new"),
            ],
        )
        .unwrap();
        drop(conn);
        std::fs::create_dir_all(&config.log.dir).unwrap();
        let old_file = config.log.dir.join("transcript.2020-01-01.log");
        std::fs::write(&old_file, "x\n").unwrap();
        let forty_days_ago = std::time::SystemTime::now() - Duration::from_secs(40 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&old_file)
            .unwrap()
            .set_modified(forty_days_ago)
            .unwrap();
        let opened = Store::open(&config).unwrap();
        assert!(
            old_file.exists(),
            "retention_days = 0 keeps everything at start"
        );
        opened.handle.expire(now - 30 * day);
        assert_eq!(opened.store.close(), Closed::AllWritten);
        assert!(!old_file.exists());
        let conn = open_read_only(&config.storage.database).unwrap();
        let texts = texts(&conn);
        assert_eq!(texts, ["new"]);
    }

    /// Every event's text, in the order stored.
    fn texts(conn: &Connection) -> Vec<String> {
        conn.prepare("SELECT text FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn migrations_apply_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }

    /// Events saved as they waited, some of them committed before the server
    /// died: the next start imports only the rest.
    #[test]
    fn a_saved_event_already_committed_is_not_imported_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chat.db");
        let unsaved = unsaved_path(&path);
        let mut conn = open_database(&path).unwrap();
        let events: Vec<Event> = (0..5)
            .map(|i| Event {
                ts_ms: i,
                kind: crate::event::EventKind::Chat,
                room: "lobby".into(),
                sender: "amy".into(),
                recipient: None,
                text: Some(format!("m{i}")),
                session: 1,
                account: None,
            })
            .collect();
        let mut spill = unsaved::Spill::new(unsaved.clone());
        spill.keep(&events[..2]).unwrap();
        spill.keep(&events).unwrap();
        let from_file = spill.taking(3);
        assert_eq!(from_file.map(|(_, n)| n), Some(3));
        insert_counting(&mut conn, &events[..3], from_file).unwrap();
        // Killed here: the file still holds all five.
        drop(conn);
        let mut conn = open_database(&path).unwrap();
        import_unsaved(&mut conn, &path, &unsaved).unwrap();
        let texts = texts(&conn);
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
        assert!(!unsaved.exists());
    }
}
