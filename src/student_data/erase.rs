//! `chat-server erase --student NAME`: a student's words replaced by
//! [`ERASED`] in the record, and an `erase` event naming who did it.
//!
//! Their words are their chat lines, the private messages they sent and the
//! reasons they gave for leaving, from any of their connections. The rows stay,
//! so a report made before the erase is still explained by the record: the same
//! messages are counted, only their words are gone. Private messages others sent
//! them are the others' words and stay.
//!
//! Counting and replacing the words is the record's own
//! ([`RecordErase`](crate::store::RecordErase)), the same on either back end; this
//! module makes the `erase` event and does what else each back end needs.
//! SQLite keeps old contents in free space and in the write-ahead log, so the
//! update runs with `secure_delete` (freed space is overwritten) and is followed
//! by a checkpoint that empties the log ([`checkpoint`]).

use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::ERASED;
use crate::event::{Event, EventKind};
use crate::report::StudentScope;
pub use crate::store::Counts;
use crate::store::{DbError, RecordRead, Selection, StudentKeys};

/// How long [`checkpoint`] keeps trying while a server or a reader holds the log.
const CHECKPOINT_FOR: Duration = Duration::from_secs(10);

/// The `erase` event for `scope`, run by `operator`.
pub fn erase_event(scope: &StudentScope, operator: &str, counts: Counts, now_ms: i64) -> Event {
    Event {
        ts_ms: now_ms,
        kind: EventKind::Erase,
        room: "".into(),
        sender: operator.into(),
        recipient: Some(scope.name.as_str().into()),
        text: Some(format!("{counts} erased")),
        session: 0,
        account: None,
    }
}

/// Every erased chat line, private message and leave reason, in the record's
/// order: of these connections, or of everyone's (what a running server removes
/// from its transcripts and replay).
pub fn erased_events(
    records: &dyn RecordRead,
    sessions: Option<&[i64]>,
) -> Result<Vec<Event>, DbError> {
    let selection = Selection {
        student: sessions.map(|sessions| StudentKeys {
            sessions: sessions.to_vec(),
            names: Vec::new(),
        }),
        in_order: true,
        ..Selection::default()
    };
    let mut events = Vec::new();
    let mut failed = None;
    records.each_event(&selection, &mut |stored| {
        let words = matches!(stored.kind, "chat" | "pm" | "leave");
        if !words || stored.text != Some(ERASED) {
            return ControlFlow::Continue(());
        }
        match stored.to_event() {
            Ok(event) => {
                events.push(event);
                ControlFlow::Continue(())
            }
            Err(err) => {
                failed = Some(err);
                ControlFlow::Break(())
            }
        }
    })?;
    failed.map_or(Ok(events), Err)
}

/// [`erased_events`] of everyone in a SQLite database.
pub fn erased_sqlite(conn: &Connection) -> Result<Vec<Event>, DbError> {
    erased_events(conn, None)
}

/// The id of the newest `erase` event, 0 when there is none: a running server
/// acts on those after the one it saw last.
pub fn last_erase_sqlite(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM events WHERE kind = 'erase'",
        [],
        |r| r.get(0),
    )
}

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
/// retrying for a while: a running server's writer and any open report take
/// turns with it.
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

/// The stream sequences of the inputs that carried the student's chat lines and
/// private messages: the cluster's copies of their words. Leave reasons stay in
/// the stream, because their inputs also end a connection, which a node
/// rebuilding its state must replay.
pub async fn stream_seqs_postgres(
    client: &tokio_postgres::Client,
    scope: &StudentScope,
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT DISTINCT seq FROM events WHERE session = ANY($1)
             AND kind IN ('chat', 'pm') AND seq > 0 ORDER BY seq",
            &[&scope.sessions],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// Deletes these messages from the cluster's stream; JetStream overwrites a
/// deleted message's bytes unless told not to. Returns how many were deleted and
/// how many were gone already (deleted before, or trimmed).
pub async fn delete_from_stream(
    nats_url: &str,
    seqs: &[u64],
) -> Result<(usize, usize), async_nats::Error> {
    let client = async_nats::ConnectOptions::new()
        .name("classchat-erase")
        .connection_timeout(Duration::from_secs(5))
        .connect(nats_url)
        .await?;
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream(crate::cluster::STREAM).await?;
    let (mut deleted, mut gone) = (0, 0);
    for &seq in seqs {
        match stream.delete_message(seq).await {
            Ok(true) => deleted += 1,
            Ok(false) => gone += 1,
            Err(err) if err.to_string().contains("no message found") => gone += 1,
            Err(err) => return Err(err.into()),
        }
    }
    Ok((deleted, gone))
}

/// How many `erase` events a cluster's PostgreSQL holds: a node acts when it
/// grows.
pub async fn erase_count_postgres(
    client: &tokio_postgres::Client,
) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT COUNT(*) FROM events WHERE kind = 'erase'", &[])
        .await?;
    Ok(row.get(0))
}

/// Every erased chat line in a cluster's PostgreSQL, as `(room, ts_ms, sender)`:
/// what a node no longer replays.
pub async fn erased_chat_postgres(
    client: &tokio_postgres::Client,
) -> Result<Vec<(String, i64, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT room, ts_ms, sender FROM events WHERE kind = 'chat' AND text = $1",
            &[&ERASED],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}
