//! A single server's SQLite database: opening and migrating it, the writer's
//! inserts and the replay tails read at start, and the record's queries: the
//! report's reads ([`RecordRead`]), erasing ([`RecordErase`]) and the roster
//! commands ([`RosterEdit`]), on any [`Connection`] (read-only for reports,
//! read-write for the commands).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::types::{Type, Value};
use rusqlite::{
    params, params_from_iter, Connection, OpenFlags, OptionalExtension, Row, Transaction,
};

use super::erase::{count_sql, erase_sql, Counts, RecordErase};
use super::read::{EachEvent, Param, RecordRead, Selection, Snapshot, StoredEvent, COLUMNS};
use super::{DbError, RosterEdit, StoreError};
use crate::event::{Event, HistoryLine};
use crate::roster::{self, Issued, Member, RosterError};

/// The schema, in order. Each entry is applied once; `PRAGMA user_version` counts
/// how many already were.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../migrations/0001_init.sql"),
    ),
    (
        "0002_roster.sql",
        include_str!("../../migrations/0002_roster.sql"),
    ),
    (
        "0003_unsaved.sql",
        include_str!("../../migrations/0003_unsaved.sql"),
    ),
    (
        "0004_erase.sql",
        include_str!("../../migrations/0004_erase.sql"),
    ),
];

pub(super) fn create_folder(path: &Path) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            what: format!("database folder {}", dir.display()),
            source,
        })?;
    }
    Ok(())
}

/// Opens the database read-write, creating it and its folder, in WAL mode, with
/// every migration applied.
pub fn open_database(path: &Path) -> Result<Connection, StoreError> {
    create_folder(path)?;
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

pub(super) fn db_error(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Database {
        path: path.display().to_string(),
        source,
    }
}

/// The last `limit` chat lines of `room`, oldest first (an index walk backwards
/// from the newest line, so its cost does not grow with the table). Erased lines
/// (SPEC 12) are not replayed.
pub fn query_history(
    conn: &Connection,
    room: &str,
    limit: usize,
) -> rusqlite::Result<Vec<HistoryLine>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ts_ms, sender, text FROM events
         WHERE room = ?1 AND kind = 'chat' AND text IS NOT '[erased]'
         ORDER BY id DESC LIMIT ?2",
    )?;
    let mut lines = stmt
        .query_map(params![room, limit as i64], |row| {
            Ok(HistoryLine {
                ts_ms: row.get(0)?,
                sender: row.get::<_, String>(1)?.into(),
                text: row.get::<_, Option<String>>(2)?.unwrap_or_default().into(),
                action: false,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    lines.reverse();
    Ok(lines)
}

/// Each room that has chat lines, with its last `per_room` of them, oldest first;
/// nothing when `per_room` is 0. The rooms are found by skipping through the
/// `events_room_chat` index one room at a time, so the cost grows with the
/// number of rooms, not of rows.
pub fn recent_history(
    conn: &Connection,
    per_room: usize,
) -> rusqlite::Result<Vec<(Arc<str>, Vec<HistoryLine>)>> {
    if per_room == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "WITH RECURSIVE rooms(room) AS (
             SELECT MIN(room) FROM events WHERE kind = 'chat'
             UNION ALL
             SELECT (SELECT MIN(room) FROM events WHERE kind = 'chat' AND room > rooms.room)
             FROM rooms WHERE rooms.room IS NOT NULL
         )
         SELECT room FROM rooms WHERE room IS NOT NULL",
    )?;
    let rooms = stmt
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
    insert_counting(conn, events, None)
}

/// Inserts events within `tx`.
pub(super) fn insert_rows(tx: &Transaction<'_>, events: &[Event]) -> rusqlite::Result<()> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (ts_ms, kind, room, sender, recipient, text, session, account)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for e in events {
        insert.execute(params![
            e.ts_ms,
            e.kind.as_str(),
            &*e.room,
            &*e.sender,
            e.recipient.as_deref(),
            e.text.as_deref(),
            e.session,
            e.account.as_deref()
        ])?;
    }
    Ok(())
}

/// Inserts `events` and, in the same transaction, counts `from_file.1` of them
/// as committed from the unsaved-events file of generation `from_file.0`.
pub(super) fn insert_counting(
    conn: &mut Connection,
    events: &[Event],
    from_file: Option<(&str, usize)>,
) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    insert_rows(&tx, events)?;
    if let Some((generation, count)) = from_file.filter(|(_, count)| *count > 0) {
        tx.execute(
            "INSERT INTO unsaved_progress (generation, committed) VALUES (?1, ?2)
             ON CONFLICT (generation) DO UPDATE SET committed = committed + ?2",
            params![generation, count as i64],
        )?;
    }
    tx.commit()
}

/// Deletes the events before `cutoff_ms` (`storage.retention_days`); returns how
/// many. `secure_delete` overwrites the freed space, so the deleted words leave no
/// copy in the file.
pub fn expire_before(conn: &Connection, cutoff_ms: i64) -> rusqlite::Result<usize> {
    conn.pragma_update(None, "secure_delete", true)?;
    conn.execute("DELETE FROM events WHERE ts_ms < ?1", [cutoff_ms])
}

/// The id of the newest `erase` event, 0 when there is none: a running server
/// acts on those after the one it saw last.
pub fn last_erase(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM events WHERE kind = 'erase'",
        [],
        |r| r.get(0),
    )
}

/// How long [`checkpoint`] keeps trying while a server or a reader holds the log.
const CHECKPOINT_FOR: Duration = Duration::from_secs(10);

/// How the write-ahead log ended after an erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Everything is in the database file and the log is empty: the old words
    /// are nowhere.
    Truncated,
    /// The log could not be emptied (a reader held it the whole time); the old
    /// words may stay in it until the next checkpoint overwrites them.
    NotTruncated(String),
}

/// Copies the log into the database and empties it (`wal_checkpoint(TRUNCATE)`),
/// retrying for a while (up to [`CHECKPOINT_FOR`]): a running server's writer and
/// any open report take turns with it. What an erase needs, so that the old words
/// are nowhere.
pub fn checkpoint(conn: &Connection, database: &Path) -> Checkpoint {
    let mut wal = database.as_os_str().to_owned();
    wal.push("-wal");
    let started = Instant::now();
    let mut last;
    loop {
        let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match result {
            Ok((0, _, _)) => {
                // The server may have appended since; the old frames are gone anyway.
                let len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                if len == 0 {
                    return Checkpoint::Truncated;
                }
                last = format!("the log has {len} bytes again");
            }
            Ok((_, log, done)) => last = format!("busy: {done} of {log} pages copied"),
            Err(err) => last = err.to_string(),
        }
        if started.elapsed() >= CHECKPOINT_FOR {
            return Checkpoint::NotTruncated(last);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

impl RecordRead for Connection {
    /// A read transaction, begun unless one is open already; SQLite fixes its
    /// moment at the first read.
    fn snapshot(&self) -> Result<Snapshot<'_>, DbError> {
        if !self.is_autocommit() {
            return Ok(Snapshot::nested());
        }
        let tx = self.unchecked_transaction()?;
        Ok(Snapshot::ending(move || drop(tx)))
    }

    /// In order by row id, which a scan of the whole table follows anyway.
    fn each_event(&self, selection: &Selection, each: &mut EachEvent<'_>) -> Result<(), DbError> {
        let (clause, params) = selection.where_clause('?');
        let order = match selection.in_order {
            true => " ORDER BY id",
            false => "",
        };
        let mut stmt = self.prepare(&format!("SELECT id, {COLUMNS} FROM events{clause}{order}"))?;
        let params = params.into_iter().map(|param| match param {
            Param::Text(text) => Value::Text(text),
            Param::Int(int) => Value::Integer(int),
        });
        let mut rows = stmt.query(params_from_iter(params))?;
        while let Some(row) = rows.next()? {
            if each(&stored_event(row)?).is_break() {
                break;
            }
        }
        Ok(())
    }

    fn members(&self) -> Result<Vec<Member>, DbError> {
        let mut stmt =
            self.prepare("SELECT name, role, full_name, code_hash FROM roster ORDER BY name")?;
        let rows = stmt.query_map([], |row| {
            let role: String = row.get(1)?;
            Ok(roster::member(row.get(0)?, &role, row.get(2)?, row.get(3)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl RosterEdit for Connection {
    fn insert_members(&mut self, issued: &[Issued], now_ms: i64) -> Result<(), RosterError> {
        // Immediate: the server writes events all the time, and a read
        // transaction could not be promoted to a write after one of its commits.
        let tx = self.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            // The name's NOCASE key makes a name taken in another case conflict.
            let mut insert = tx.prepare(
                "INSERT INTO roster (name, role, full_name, code_hash, added_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )?;
            for Issued {
                person, code_hash, ..
            } in issued
            {
                let added = insert.execute(params![
                    person.name,
                    person.role.as_str(),
                    person.full_name,
                    code_hash,
                    now_ms
                ])?;
                roster::added(person, added as u64)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn remove_member(&mut self, name: &str) -> Result<(), RosterError> {
        let rows = self.execute("DELETE FROM roster WHERE name = ?1", [name])?;
        roster::removed(name, rows as u64)
    }

    fn replace_code(&mut self, name: &str, code_hash: &str) -> Result<Option<String>, RosterError> {
        let stored = self
            .query_row(
                "UPDATE roster SET code_hash = ?1 WHERE name = ?2 RETURNING name",
                params![code_hash, name],
                |r| r.get(0),
            )
            .optional()?;
        Ok(stored)
    }
}

impl RecordErase for Connection {
    fn count_words(&self, sessions: &[i64]) -> Result<Counts, DbError> {
        let mut stmt = self.prepare(&count_sql(sessions))?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Counts::of(rows.iter().map(|(kind, n)| (kind.as_str(), *n))))
    }

    /// With `secure_delete` on, the freed space is overwritten: the old words
    /// leave no copy in the file (the write-ahead log is the caller's to empty).
    fn erase_words(
        &mut self,
        sessions: &[i64],
        erase: &dyn Fn(Counts) -> Event,
    ) -> Result<Counts, DbError> {
        self.pragma_update(None, "secure_delete", true)?;
        let tx = self.transaction()?;
        let counts = tx.count_words(sessions)?;
        tx.execute(&erase_sql(sessions), [])?;
        super::insert_rows(&tx, &[erase(counts)])?;
        tx.commit()?;
        Ok(counts)
    }
}

/// A row of `id, ` [`COLUMNS`] as a [`StoredEvent`], its text borrowed.
fn stored_event<'a>(row: &'a Row<'_>) -> rusqlite::Result<StoredEvent<'a>> {
    Ok(StoredEvent {
        order: row.get(0)?,
        ts_ms: row.get(1)?,
        kind: text(row, 2)?.unwrap_or(""),
        room: text(row, 3)?.unwrap_or(""),
        sender: text(row, 4)?.unwrap_or(""),
        recipient: text(row, 5)?,
        text: text(row, 6)?,
        session: row.get(7)?,
        account: text(row, 8)?,
    })
}

/// A text column borrowed from the row, to count without allocating.
fn text<'a>(row: &'a Row<'_>, column: usize) -> rusqlite::Result<Option<&'a str>> {
    row.get_ref(column)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

/// Reads the roster of the database at this path, on the blocking pool.
pub(crate) struct RosterReader(pub(crate) std::path::PathBuf);

impl super::RosterSource for RosterReader {
    fn read(&mut self) -> futures_util::future::BoxFuture<'_, Result<roster::Roster, DbError>> {
        let database = self.0.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || {
                let conn = super::open_read_only(&database)?;
                Ok(roster::Roster::from_members(conn.members()?))
            })
            .await
            .map_err(|e| DbError::Task(e.to_string()))?
        })
    }
}
