//! `chat-server erase --student NAME`: a student's words replaced by
//! [`ERASED`] in the record, and an `erase` event naming who did it.
//!
//! Their words are their chat lines, the private messages they sent and the
//! reasons they gave for leaving, from any of their connections. The rows stay,
//! so a report made before the erase is still explained by the record: the same
//! messages are counted, only their words are gone. Private messages others sent
//! them are the others' words and stay.
//!
//! SQLite keeps old contents in free space and in the write-ahead log, so the
//! update runs with `secure_delete` (freed space is overwritten) and is followed
//! by a checkpoint that empties the log ([`checkpoint`]).

use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

use super::ERASED;
use crate::event::{Event, EventKind};
use crate::report::StudentScope;

/// The kinds whose text is the student's own words.
const WORDS: [EventKind; 3] = [EventKind::Chat, EventKind::Private, EventKind::Leave];

/// How long [`checkpoint`] keeps trying while a server or a reader holds the log.
const CHECKPOINT_FOR: Duration = Duration::from_secs(10);

/// Rows whose words an erase replaces (or replaced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Chat lines.
    pub chat: u64,
    /// Private messages the student sent.
    pub private: u64,
    /// Reasons given for leaving.
    pub reasons: u64,
}

impl Counts {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.chat + self.private + self.reasons
    }

    fn add(&mut self, kind: EventKind, n: u64) {
        match kind {
            EventKind::Chat => self.chat += n,
            EventKind::Private => self.private += n,
            _ => self.reasons += n,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} chat lines, {} private messages, {} leave reasons",
            self.chat, self.private, self.reasons
        )
    }
}

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

/// The student's sessions as SQL literals: integers, so safe to inline.
fn session_list(scope: &StudentScope) -> String {
    let ids: Vec<String> = scope.sessions.iter().map(i64::to_string).collect();
    ids.join(", ")
}

/// What an erase of `scope` would change now.
pub fn count_sqlite(conn: &Connection, scope: &StudentScope) -> rusqlite::Result<Counts> {
    let mut counts = Counts::default();
    for kind in WORDS {
        let n: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM events WHERE session IN ({}) AND kind = ?1
                 AND text IS NOT NULL AND text <> ?2",
                session_list(scope)
            ),
            params![kind.as_str(), ERASED],
            |r| r.get(0),
        )?;
        counts.add(kind, n as u64);
    }
    Ok(counts)
}

/// Replaces the student's words and records the `erase` event, in one
/// transaction with `secure_delete` on. Returns what changed and every erased
/// event of the student (for the transcript files).
pub fn erase_sqlite(
    conn: &mut Connection,
    scope: &StudentScope,
    operator: &str,
    now_ms: i64,
) -> rusqlite::Result<(Counts, Vec<Event>)> {
    conn.pragma_update(None, "secure_delete", true)?;
    let tx = conn.transaction()?;
    let mut counts = Counts::default();
    for kind in WORDS {
        let n = tx.execute(
            &format!(
                "UPDATE events SET text = ?2 WHERE session IN ({}) AND kind = ?1
                 AND text IS NOT NULL AND text <> ?2",
                session_list(scope)
            ),
            params![kind.as_str(), ERASED],
        )?;
        counts.add(kind, n as u64);
    }
    crate::store::insert_rows(&tx, &[erase_event(scope, operator, counts, now_ms)])?;
    let erased = erased_where(&tx, &format!("session IN ({})", session_list(scope)))?;
    tx.commit()?;
    Ok((counts, erased))
}

/// Every erased chat line, private message and leave reason in the database,
/// whoever's: what a running server removes from its transcripts and replay.
pub fn erased_sqlite(conn: &Connection) -> rusqlite::Result<Vec<Event>> {
    erased_where(conn, "1")
}

fn erased_where(conn: &Connection, clause: &str) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT ts_ms, kind, room, sender, recipient, session, account FROM events
         WHERE {clause} AND kind IN ('chat', 'pm', 'leave') AND text = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map([ERASED], |row| {
        let kind: String = row.get(1)?;
        Ok(Event {
            ts_ms: row.get(0)?,
            kind: EventKind::parse(&kind).unwrap_or(EventKind::Chat),
            room: row.get::<_, String>(2)?.into(),
            sender: row.get::<_, String>(3)?.into(),
            recipient: row.get::<_, Option<String>>(4)?.map(Into::into),
            text: Some(ERASED.to_owned()),
            session: row.get(5)?,
            account: row.get::<_, Option<String>>(6)?.map(Into::into),
        })
    })?;
    rows.collect()
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

/// What an erase of `scope` would change now, in a cluster's PostgreSQL.
pub async fn count_postgres(
    client: &tokio_postgres::Client,
    scope: &StudentScope,
) -> Result<Counts, tokio_postgres::Error> {
    let mut counts = Counts::default();
    for kind in WORDS {
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM events WHERE session = ANY($1) AND kind = $2
                 AND text IS NOT NULL AND text <> $3",
                &[&scope.sessions, &kind.as_str(), &ERASED],
            )
            .await?;
        counts.add(kind, row.get::<_, i64>(0) as u64);
    }
    Ok(counts)
}

/// Replaces the student's words in a cluster's PostgreSQL and records the
/// `erase` event, in one transaction, then vacuums the table so that the old row
/// versions are reclaimed. The event is keyed by a negative `seq` (minus its
/// time): it came from no stream input, and the nodes' watermark, the highest
/// `seq`, must not move.
pub async fn erase_postgres(
    client: &mut tokio_postgres::Client,
    scope: &StudentScope,
    operator: &str,
    now_ms: i64,
) -> Result<Counts, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    let mut counts = Counts::default();
    for kind in WORDS {
        let n = tx
            .execute(
                "UPDATE events SET text = $3 WHERE session = ANY($1) AND kind = $2
                 AND text IS NOT NULL AND text <> $3",
                &[&scope.sessions, &kind.as_str(), &ERASED],
            )
            .await?;
        counts.add(kind, n);
    }
    let event = erase_event(scope, operator, counts, now_ms);
    tx.execute(
        "INSERT INTO events (seq, idx, ts_ms, kind, room, sender, recipient, text, session, account)
         VALUES ($1, 0, $2, 'erase', '', $3, $4, $5, 0, NULL) ON CONFLICT DO NOTHING",
        &[
            &-now_ms,
            &now_ms,
            &&*event.sender,
            &event.recipient.as_deref(),
            &event.text,
        ],
    )
    .await?;
    tx.commit().await?;
    client.batch_execute("VACUUM events").await?;
    Ok(counts)
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
