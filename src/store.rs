//! Persistence: one writer thread owns the SQLite connection and the transcript file.
//!
//! The chat never waits on the disk. The room manager hands every [`Event`] to a
//! [`StoreHandle`], which only pushes it on a queue. The writer thread drains the
//! queue in batches, inserts each batch in one transaction and appends the same
//! events, in the same order, to the transcript. This queue is unbounded on purpose:
//! its consumer is the local disk, not a stranger's socket, and an event must never
//! be dropped.
//!
//! Replay never reads the database while the server runs: the hub keeps each
//! room's tail in memory, loaded here at start-up ([`recent_history`]).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags};
use tracing_appender::rolling::RollingFileAppender;

use crate::config::Config;
use crate::event::{Event, EventSink, HistoryLine};
use crate::transcript;

/// The schema, in order. Each entry is applied once; `PRAGMA user_version` counts
/// how many already were.
pub const MIGRATIONS: &[(&str, &str)] =
    &[("0001_init.sql", include_str!("../migrations/0001_init.sql"))];

/// Most events written in one transaction.
const MAX_BATCH: usize = 8192;

/// How long the writer gathers events before it commits them: one commit per
/// interval instead of one per event when the class chats steadily. It is also the
/// most a `kill -9` can lose.
pub const BATCH_INTERVAL: Duration = Duration::from_millis(10);

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
}

/// What the writer thread is asked to do.
enum Request {
    Record(Event),
    /// Write what is queued before this and stop.
    Close,
}

/// The sending side of the store: cheap to clone, never blocks.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    queue: mpsc::Sender<Request>,
}

impl StoreHandle {
    /// Queues an event for the database and the transcript.
    pub fn record(&self, event: Event) {
        if self.queue.send(Request::Record(event)).is_err() {
            tracing::error!("store is closed; an event was not recorded");
        }
    }
}

impl EventSink for StoreHandle {
    fn record(&self, event: Event) {
        StoreHandle::record(self, event);
    }
}

/// An open store and what the server reads from it at start-up.
#[derive(Debug)]
pub struct Opened {
    /// The writer thread.
    pub store: Store,
    /// Where events are recorded.
    pub handle: StoreHandle,
    /// The first session number not yet used in the database.
    pub next_session: i64,
    /// Each room's last chat lines, oldest first.
    pub history: Vec<(Arc<str>, Vec<HistoryLine>)>,
}

/// The running writer thread. [`Store::close`] waits until everything queued is on disk.
#[derive(Debug)]
pub struct Store {
    thread: JoinHandle<()>,
    queue: mpsc::Sender<Request>,
}

impl Store {
    /// Opens (and creates, and migrates) the database and the transcript, reads
    /// what the server needs from it, and starts the writer thread.
    pub fn open(config: &Config) -> Result<Opened, StoreError> {
        let path = &config.storage.database;
        let conn = open_database(path)?;
        let next_session: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(session), 0) + 1 FROM events",
                [],
                |r| r.get(0),
            )
            .map_err(|source| db_error(path, source))?;
        let history = recent_history(&conn, config.history.replay_lines)
            .map_err(|source| db_error(path, source))?;
        let log = &config.log;
        let transcript =
            transcript::open(&log.dir, log.rotation, log.max_files).map_err(|source| {
                StoreError::Io {
                    what: format!("transcript folder {}", log.dir.display()),
                    source,
                }
            })?;
        let (queue, requests) = mpsc::channel();
        let mut writer = Writer {
            conn,
            transcript: BufWriter::with_capacity(64 * 1024, transcript),
            pending: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer.run(requests))
            .map_err(|source| StoreError::Io {
                what: "store writer thread".into(),
                source,
            })?;
        let store = Store {
            thread,
            queue: queue.clone(),
        };
        Ok(Opened {
            store,
            handle: StoreHandle { queue },
            next_session,
            history,
        })
    }

    /// Writes everything queued so far, stops the writer and waits for it. Events
    /// recorded after this are not written (and logged as such).
    pub fn close(self) {
        let _ = self.queue.send(Request::Close);
        if self.thread.join().is_err() {
            tracing::error!("store writer thread panicked");
        }
    }
}

/// Opens the database read-write, creating it and its folder, in WAL mode, with
/// every migration applied.
pub fn open_database(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: format!("database folder {}", dir.display()),
            source,
        })?;
    }
    let mut conn = Connection::open(path).map_err(|source| db_error(path, source))?;
    // NORMAL is durable against a crash of this process in WAL mode; only a power
    // loss can undo the last commits, and it saves an fsync per batch.
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
        .and_then(|()| conn.busy_timeout(Duration::from_secs(5)))
        .and_then(|()| migrate(&mut conn))
        .map_err(|source| db_error(path, source))?;
    Ok(conn)
}

/// Opens an existing database for reading only (reports), while a server may be
/// writing it.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|source| db_error(path, source))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|source| db_error(path, source))?;
    Ok(conn)
}

/// Applies the migrations the database has not seen yet, each in its own transaction.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let applied: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (version, (_, sql)) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn db_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Database {
        path: path.display().to_string(),
        source,
    }
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    transcript: BufWriter<RollingFileAppender>,
    pending: Vec<Event>,
}

impl Writer {
    /// Collects events for at most [`BATCH_INTERVAL`] after the first of a batch
    /// (or [`MAX_BATCH`] events), then commits them together. A history request
    /// does not wait: it commits what came before it and is answered at once.
    fn run(&mut self, requests: mpsc::Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let deadline = Instant::now() + BATCH_INTERVAL;
            let mut open = self.handle(first);
            while open && self.pending.len() < MAX_BATCH {
                let wait = deadline.saturating_duration_since(Instant::now());
                match requests.recv_timeout(wait) {
                    Ok(request) => open = self.handle(request),
                    Err(mpsc::RecvTimeoutError::Timeout) => break,
                    Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
                }
            }
            self.flush();
            if !open {
                return;
            }
        }
    }

    /// Acts on one request; `false` once asked to close.
    fn handle(&mut self, request: Request) -> bool {
        match request {
            Request::Close => return false,
            Request::Record(event) => self.pending.push(event),
        }
        true
    }

    /// Writes the pending events to the database, then to the transcript.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Err(err) = insert_events(&mut self.conn, &self.pending) {
            tracing::error!(%err, events = self.pending.len(), "database write failed");
        }
        for event in &self.pending {
            let _ = writeln!(self.transcript, "{}", transcript::format_line(event));
        }
        if let Err(err) = self.transcript.flush() {
            tracing::error!(%err, "transcript write failed");
        }
        self.pending.clear();
    }
}

/// The last `limit` chat lines of `room`, oldest first (an index walk backwards
/// from the newest line, so its cost does not grow with the table).
pub fn query_history(
    conn: &Connection,
    room: &str,
    limit: usize,
) -> rusqlite::Result<Vec<HistoryLine>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, sender, text FROM events
         WHERE room = ?1 AND kind = 'chat' ORDER BY id DESC LIMIT ?2",
    )?;
    let mut lines = stmt
        .query_map(params![room, limit as i64], |row| {
            Ok(HistoryLine {
                ts_ms: row.get(0)?,
                sender: row.get::<_, String>(1)?.into(),
                text: row.get::<_, Option<String>>(2)?.unwrap_or_default().into(),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    lines.reverse();
    Ok(lines)
}

/// Every room's last `per_room` chat lines, oldest first, for the in-memory
/// history the hub replays from.
pub fn recent_history(
    conn: &Connection,
    per_room: usize,
) -> rusqlite::Result<Vec<(Arc<str>, Vec<HistoryLine>)>> {
    if per_room == 0 {
        return Ok(Vec::new());
    }
    let rooms = conn
        .prepare("SELECT DISTINCT room FROM events WHERE kind = 'chat'")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rooms
        .into_iter()
        .map(|room| {
            let lines = query_history(conn, &room, per_room)?;
            Ok((room.into(), lines))
        })
        .collect()
}

/// Inserts a batch of events in one transaction.
pub fn insert_events(conn: &mut Connection, events: &[Event]) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO events (ts_ms, kind, room, sender, recipient, text, session)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for e in events {
            insert.execute(params![
                e.ts_ms,
                e.kind.as_str(),
                &*e.room,
                &*e.sender,
                e.recipient.as_deref(),
                e.text.as_deref(),
                e.session
            ])?;
        }
    }
    tx.commit()
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
}
