//! The record in PostgreSQL, for cluster mode: the same events and roster as the
//! SQLite [`store`](crate::store), shared by every node.
//!
//! Each event is keyed by `(seq, idx)`: the JetStream stream sequence of the input
//! that produced it and its place among that input's events. The table's order is
//! `ORDER BY seq, idx`, and inserting is idempotent, so a node that writes a batch
//! again after a restart or a redelivery changes nothing.
//!
//! The report, `transcript`, `export` and `erase` read it through [`Blocking`],
//! which runs the same [`Selection`]s as SQLite does ([`RecordRead`]). The roster
//! commands share their names, codes and hashing with [`roster`] and only put the
//! rows elsewhere ([`RosterEdit`]).

use std::cell::Cell;
use std::error::Error;

use bytes::BytesMut;
use futures_util::{pin_mut, TryStreamExt};
use tokio_postgres::types::{accepts, to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

use super::erase::{count_sql, erase_sql, Counts, RecordErase};
use super::read::{EachEvent, Param, RecordRead, Selection, Snapshot, StoredEvent, COLUMNS};
use super::{DbError, RosterEdit};
use crate::event::Event;
use crate::roster::{self, Issued, Member, Roster, RosterError};

/// The schema. Columns and types mirror `migrations/` (SQLite's `INTEGER` is 64
/// bits, hence `BIGINT`); `(seq, idx)` takes the place of SQLite's row id.
/// Roster names are unique ignoring case, as `COLLATE NOCASE` makes them in
/// SQLite; names are ASCII, so `lower` folds them alike in every locale.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq       BIGINT  NOT NULL,
    idx       INTEGER NOT NULL,
    ts_ms     BIGINT  NOT NULL,
    kind      TEXT    NOT NULL,
    room      TEXT    NOT NULL,
    sender    TEXT    NOT NULL,
    recipient TEXT,
    text      TEXT,
    session   BIGINT  NOT NULL,
    account   TEXT,
    PRIMARY KEY (seq, idx)
);
CREATE INDEX IF NOT EXISTS events_room_chat ON events (room, seq, idx) WHERE kind = 'chat';
CREATE INDEX IF NOT EXISTS events_ts ON events (ts_ms);
CREATE INDEX IF NOT EXISTS events_session ON events (session);
CREATE INDEX IF NOT EXISTS events_erase ON events (ts_ms) WHERE kind = 'erase';
CREATE TABLE IF NOT EXISTS roster (
    name      TEXT    NOT NULL PRIMARY KEY,
    role      TEXT    NOT NULL DEFAULT 'student',
    full_name TEXT,
    code_hash TEXT    NOT NULL,
    added_ms  BIGINT  NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS roster_name_nocase ON roster (lower(name));
CREATE TABLE IF NOT EXISTS stream (
    name    TEXT NOT NULL PRIMARY KEY,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash TEXT   NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    expires_ms BIGINT NOT NULL
);
";

/// Held while the schema is created. Concurrent `CREATE TABLE IF NOT EXISTS` can
/// both find the table missing and then collide in the catalog with a unique
/// violation, so nodes starting together take turns. The value is arbitrary but
/// fixed: "classchat" in ASCII.
const MIGRATION_LOCK: i64 = 0x0063_6c61_7373_6368;

/// How long a server waits for PostgreSQL before it counts it as unreachable: the
/// connect timeout when the URL sets none, and the limit on each roster read.
pub const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Connects without TLS and runs the connection on the current tokio runtime;
/// the returned client is usable until the connection ends, which is logged.
pub async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        // Without one, a host that drops packets holds a connect for minutes.
        config.connect_timeout(ANSWER_WITHIN);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(%err, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Creates the tables and indexes that do not exist yet. Safe to run from
/// several nodes at once.
pub async fn migrate(client: &Client) -> Result<(), tokio_postgres::Error> {
    // A simple query of several statements runs as one implicit transaction,
    // rolled back whole on an error: the transaction-scoped lock is held to the
    // end of it, and no half-made schema is left behind.
    client
        // "relation already exists, skipping" notices would be logged at every start.
        .batch_execute(&format!(
            "SET client_min_messages = warning; SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); {SCHEMA}"
        ))
        .await
}

/// Which JetStream stream this database records: `created` is the stream's
/// creation time, and the first node to write claims the database for it. Returns
/// the creation time of the stream the database belongs to; when that is not
/// `created`, the stream was deleted and made anew, and its sequences (which start
/// again at 1) must not be written here: they would be taken for rows already
/// written.
pub async fn claim_stream(
    client: &Client,
    name: &str,
    created: &str,
) -> Result<String, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO stream (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &created],
        )
        .await?;
    let row = client
        .query_one("SELECT created FROM stream WHERE name = $1", &[&name])
        .await?;
    Ok(row.get(0))
}

/// The highest `seq` stored, 0 when there is none: everything up to it is
/// written, so a node resumes after it.
pub async fn watermark(client: &Client) -> Result<u64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT COALESCE(MAX(seq), 0) FROM events", &[])
        .await?;
    // seq is only ever written from a u64 (see `Unsigned`), so it is never negative.
    Ok(row.get::<_, i64>(0).max(0) as u64)
}

/// Writes `(seq, idx, event)` rows in one transaction, one statement whatever the
/// batch size. Rows already stored (same `seq` and `idx`) are left as they are.
pub async fn insert_events(
    client: &mut Client,
    rows: &[(u64, u32, Event)],
) -> Result<(), tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let seqs: Vec<Unsigned> = rows.iter().map(|r| Unsigned(r.0)).collect();
    let idxs: Vec<Unsigned> = rows.iter().map(|r| Unsigned(r.1.into())).collect();
    let events = || rows.iter().map(|r| &r.2);
    let ts: Vec<i64> = events().map(|e| e.ts_ms).collect();
    let kinds: Vec<&str> = events().map(|e| e.kind.as_str()).collect();
    let rooms: Vec<&str> = events().map(|e| &*e.room).collect();
    let senders: Vec<&str> = events().map(|e| &*e.sender).collect();
    let recipients: Vec<Option<&str>> = events().map(|e| e.recipient.as_deref()).collect();
    let texts: Vec<Option<&str>> = events().map(|e| e.text.as_deref()).collect();
    let sessions: Vec<i64> = events().map(|e| e.session).collect();
    let accounts: Vec<Option<&str>> = events().map(|e| e.account.as_deref()).collect();
    let tx = client.transaction().await?;
    // One array per column: a single round trip and a single plan for any
    // number of rows, where a multi-row VALUES would need a statement per size.
    tx.execute(
        "INSERT INTO events (seq, idx, ts_ms, kind, room, sender, recipient, text, session, account)
         SELECT * FROM UNNEST($1::bigint[], $2::integer[], $3::bigint[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::bigint[], $10::text[])
         ON CONFLICT (seq, idx) DO NOTHING",
        &[
            &seqs,
            &idxs,
            &ts,
            &kinds,
            &rooms,
            &senders,
            &recipients,
            &texts,
            &sessions,
            &accounts,
        ],
    )
    .await?;
    tx.commit().await
}

/// An unsigned number for a signed column: refused, as a parameter error, if it
/// does not fit, rather than wrapped around.
#[derive(Debug)]
struct Unsigned(u64);

impl ToSql for Unsigned {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        if *ty == Type::INT4 {
            i32::try_from(self.0)?.to_sql(ty, out)
        } else {
            i64::try_from(self.0)?.to_sql(ty, out)
        }
    }

    accepts!(INT4, INT8);
    to_sql_checked!();
}

/// Reads the whole roster.
pub async fn load_roster(client: &Client) -> Result<Roster, tokio_postgres::Error> {
    Ok(Roster::from_members(roster_list(client).await?))
}

/// Every member, sorted by name as `roster list` prints them.
pub async fn roster_list(client: &Client) -> Result<Vec<Member>, tokio_postgres::Error> {
    let rows = client
        .query("SELECT name, role, full_name, code_hash FROM roster", &[])
        .await?;
    let mut members: Vec<Member> = rows
        .into_iter()
        .map(|row| roster::member(row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect();
    roster::sort_members(&mut members);
    Ok(members)
}

/// Deletes the events before `cutoff_ms` (`storage.retention_days`); returns how
/// many. Any node may do it: deleting twice deletes nothing more.
pub async fn expire_before(client: &Client, cutoff_ms: i64) -> Result<u64, tokio_postgres::Error> {
    client
        .execute("DELETE FROM events WHERE ts_ms < $1", &[&cutoff_ms])
        .await
}

/// The stream sequences of the inputs that carried the student's chat lines and
/// private messages: the cluster's copies of their words. Leave reasons stay in
/// the stream, because their inputs also end a connection, which a node
/// rebuilding its state must replay.
pub async fn stream_seqs(
    client: &Client,
    sessions: &[i64],
) -> Result<Vec<u64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT DISTINCT seq FROM events WHERE session = ANY($1)
             AND kind IN ('chat', 'action', 'pm', 'ask', 'hand') AND seq > 0 ORDER BY seq",
            &[&sessions],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u64).collect())
}

/// How many `erase` events a cluster's PostgreSQL holds: a node acts when it
/// grows.
pub async fn erase_count(client: &Client) -> Result<i64, tokio_postgres::Error> {
    let row = client
        .query_one("SELECT COUNT(*) FROM events WHERE kind = 'erase'", &[])
        .await?;
    Ok(row.get(0))
}

/// Every erased chat line and action in a cluster's PostgreSQL, as `(room,
/// ts_ms, sender)`: what a node no longer replays.
pub async fn erased_chat(
    client: &Client,
) -> Result<Vec<(String, i64, String)>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT room, ts_ms, sender FROM events WHERE kind IN ('chat', 'action') AND text = $1",
            &[&super::ERASED],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// The record in PostgreSQL for a command-line tool that is otherwise
/// synchronous (`report`, `transcript`, `roster`, `export`, `erase`): a
/// connection with the small runtime that drives it.
pub struct Blocking {
    pub(crate) runtime: tokio::runtime::Runtime,
    pub(crate) client: Client,
    /// Whether a [`Snapshot`] holds a transaction open on `client`.
    in_snapshot: Cell<bool>,
}

impl Blocking {
    /// Connects and creates the tables that do not exist yet. The error never
    /// holds the URL, which may hold a password: tokio-postgres names the server
    /// by what it says about it.
    pub fn connect(url: &str) -> anyhow::Result<Blocking> {
        use anyhow::Context;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the runtime")?;
        let client = runtime
            .block_on(connect(url))
            .context("cannot connect to PostgreSQL")?;
        runtime
            .block_on(migrate(&client))
            .context("cannot prepare the PostgreSQL tables")?;
        Ok(Blocking {
            runtime,
            client,
            in_snapshot: Cell::new(false),
        })
    }
}

impl RecordRead for Blocking {
    /// A read-only `REPEATABLE READ` transaction: nodes keep writing while a
    /// report reads.
    fn snapshot(&self) -> Result<Snapshot<'_>, DbError> {
        if self.in_snapshot.get() {
            return Ok(Snapshot::nested());
        }
        self.runtime.block_on(
            self.client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        )?;
        self.in_snapshot.set(true);
        Ok(Snapshot::ending(move || {
            // Read-only: ending it any way loses nothing.
            let _ = self.runtime.block_on(self.client.batch_execute("COMMIT"));
            self.in_snapshot.set(false);
        }))
    }

    /// In order, the stream's events by `seq, idx`, then those recorded outside
    /// it (an `erase`, keyed by minus its time) oldest first: they came after
    /// what they act on.
    fn each_event(&self, selection: &Selection, each: &mut EachEvent<'_>) -> Result<(), DbError> {
        let (clause, params) = selection.where_clause('$');
        let order = match selection.in_order {
            true => " ORDER BY seq < 0, abs(seq), idx",
            false => "",
        };
        let query = format!("SELECT {COLUMNS} FROM events{clause}{order}");
        let params: Vec<&(dyn ToSql + Sync)> = params
            .iter()
            .map(|param| match param {
                Param::Text(text) => text as &(dyn ToSql + Sync),
                Param::Int(int) => int,
            })
            .collect();
        self.runtime.block_on(async {
            let rows = self.client.query_raw(&query, params).await?;
            pin_mut!(rows);
            let mut order = 0;
            while let Some(row) = rows.try_next().await? {
                order += 1;
                if each(&stored_event(&row, order)).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn members(&self) -> Result<Vec<Member>, DbError> {
        Ok(self.runtime.block_on(roster_list(&self.client))?)
    }
}

impl RosterEdit for Blocking {
    fn insert_members(&mut self, issued: &[Issued], now_ms: i64) -> Result<(), RosterError> {
        let Blocking {
            runtime, client, ..
        } = self;
        runtime.block_on(async {
            let tx = client.transaction().await?;
            let insert = tx
                .prepare(
                    "INSERT INTO roster (name, role, full_name, code_hash, added_ms)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .await?;
            for issued in issued {
                let person = &issued.person;
                // The conflict is on either unique index, so a name taken in another
                // case counts, and so does one added concurrently by another command.
                let added = tx
                    .execute(
                        &insert,
                        &[
                            &person.name,
                            &person.role.as_str(),
                            &person.full_name,
                            &issued.code_hash,
                            &now_ms,
                        ],
                    )
                    .await?;
                roster::added(person, added)?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn remove_member(&mut self, name: &str) -> Result<(), RosterError> {
        let rows = self.runtime.block_on(
            self.client
                .execute("DELETE FROM roster WHERE lower(name) = lower($1)", &[&name]),
        )?;
        roster::removed(name, rows)
    }

    fn replace_code(&mut self, name: &str, code_hash: &str) -> Result<Option<String>, RosterError> {
        let row = self.runtime.block_on(self.client.query_opt(
            "UPDATE roster SET code_hash = $1 WHERE lower(name) = lower($2) RETURNING name",
            &[&code_hash, &name],
        ))?;
        Ok(row.map(|row| row.get(0)))
    }
}

impl RecordErase for Blocking {
    fn count_words(&self, sessions: &[i64]) -> Result<Counts, DbError> {
        let rows = self
            .runtime
            .block_on(self.client.query(&count_sql(sessions), &[]))?;
        Ok(Counts::of(rows.iter().map(|r| (r.get(0), r.get(1)))))
    }

    /// The `erase` event is keyed by a negative `seq` (minus its time): it came
    /// from no stream input, and the nodes' watermark, the highest `seq`, must
    /// not move. The table is vacuumed afterwards, so that the old row versions
    /// are reclaimed.
    fn erase_words(
        &mut self,
        sessions: &[i64],
        erase: &dyn Fn(Counts) -> Event,
    ) -> Result<Counts, DbError> {
        let Blocking {
            runtime, client, ..
        } = self;
        runtime.block_on(async {
            let tx = client.transaction().await?;
            let rows = tx.query(&count_sql(sessions), &[]).await?;
            let counts = Counts::of(rows.iter().map(|r| (r.get(0), r.get(1))));
            tx.execute(&erase_sql(sessions), &[]).await?;
            let event = erase(counts);
            tx.execute(
                "INSERT INTO events (seq, idx, ts_ms, kind, room, sender, recipient, text, session, account)
                 VALUES ($1, 0, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                &[
                    &-event.ts_ms,
                    &event.ts_ms,
                    &event.kind.as_str(),
                    &&*event.room,
                    &&*event.sender,
                    &event.recipient.as_deref(),
                    &event.text,
                    &event.session,
                    &event.account.as_deref(),
                ],
            )
            .await?;
            tx.commit().await?;
            client.batch_execute("VACUUM events").await?;
            Ok(counts)
        })
    }
}

/// A row of [`COLUMNS`] as a [`StoredEvent`]; `order` is its place in the read.
fn stored_event(row: &Row, order: i64) -> StoredEvent<'_> {
    StoredEvent {
        order,
        ts_ms: row.get(0),
        kind: row.get(1),
        room: row.get(2),
        sender: row.get(3),
        recipient: row.get(4),
        text: row.get(5),
        session: row.get(6),
        account: row.get(7),
    }
}

/// Reads the roster for a running node, connecting (again) when it must.
pub(crate) struct RosterReader {
    url: String,
    client: Option<Client>,
}

impl RosterReader {
    pub(crate) fn new(url: &str) -> RosterReader {
        RosterReader {
            url: url.to_owned(),
            client: None,
        }
    }
}

impl super::RosterSource for RosterReader {
    fn read(&mut self) -> futures_util::future::BoxFuture<'_, Result<Roster, DbError>> {
        Box::pin(async move {
            let read = async {
                if self.client.as_ref().is_none_or(|c| c.is_closed()) {
                    let connected = connect(&self.url).await?;
                    // The first node of a new cluster reads before anyone made the tables.
                    migrate(&connected).await?;
                    self.client = Some(connected);
                }
                let client = self.client.as_ref().expect("connected above");
                Ok(load_roster(client).await?)
            };
            // A server that stopped answering must not hold up the start (the
            // first read comes before anyone is let in) or the reloads.
            let answered = tokio::time::timeout(ANSWER_WITHIN, read).await;
            match answered {
                Ok(read) => read,
                Err(_) => {
                    self.client = None;
                    Err(DbError::NoAnswer(ANSWER_WITHIN))
                }
            }
        })
    }
}

/// The instructor page's sessions in cluster mode, shared by every node and kept
/// across restarts: a row per session, keyed by the SHA-256 of its token (the
/// token itself is only ever in the browser's cookie), with the wall-clock time
/// it ends. One connection, made again when it fails; each query waits at most
/// [`ANSWER_WITHIN`].
pub(crate) struct WebSessions {
    url: String,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl WebSessions {
    pub(crate) fn new(url: &str) -> WebSessions {
        WebSessions {
            url: url.to_owned(),
            client: tokio::sync::Mutex::new(None),
        }
    }

    /// Stores a session, and forgets those that have ended.
    pub(crate) async fn insert(
        &self,
        token_hash: &str,
        name: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), DbError> {
        self.with_client(async |client: &Client| {
            client
                .execute(
                    "DELETE FROM web_sessions WHERE expires_ms <= $1",
                    &[&now_ms],
                )
                .await?;
            client
                .execute(
                    "INSERT INTO web_sessions (token_hash, name, expires_ms) VALUES ($1, $2, $3)",
                    &[&token_hash, &name, &expires_ms],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// The instructor whose session this is, if it has not ended.
    pub(crate) async fn find(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<Option<String>, DbError> {
        self.with_client(async |client: &Client| {
            let row = client
                .query_opt(
                    "SELECT name FROM web_sessions WHERE token_hash = $1 AND expires_ms > $2",
                    &[&token_hash, &now_ms],
                )
                .await?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
    }

    /// Ends a session.
    pub(crate) async fn remove(&self, token_hash: &str) -> Result<(), DbError> {
        self.with_client(async |client: &Client| {
            client
                .execute(
                    "DELETE FROM web_sessions WHERE token_hash = $1",
                    &[&token_hash],
                )
                .await?;
            Ok(())
        })
        .await
    }

    /// Runs `query` on the connection, connecting first if need be; a connection
    /// that failed or did not answer in time is dropped, for the next call to make
    /// again.
    async fn with_client<T>(
        &self,
        query: impl AsyncFnOnce(&Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, DbError> {
        let mut held = self.client.lock().await;
        let answered = tokio::time::timeout(ANSWER_WITHIN, async {
            if held.as_ref().is_none_or(|c| c.is_closed()) {
                let connected = connect(&self.url).await?;
                migrate(&connected).await?;
                *held = Some(connected);
            }
            let client = held.as_ref().expect("connected above");
            query(client).await
        })
        .await;
        match answered {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => {
                *held = None;
                Err(err.into())
            }
            Err(_) => {
                *held = None;
                Err(DbError::NoAnswer(ANSWER_WITHIN))
            }
        }
    }
}
