//! The record's queries on a single server's SQLite database: the report's
//! reads ([`RecordRead`]) and the roster commands ([`RosterEdit`]), on any
//! [`Connection`] (read-only for reports, read-write for the commands).

use rusqlite::types::{Type, Value};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use super::erase::{count_sql, erase_sql, Counts, RecordErase};
use super::read::{EachEvent, Param, RecordRead, Selection, Snapshot, StoredEvent, COLUMNS};
use super::{DbError, RosterEdit};
use crate::event::Event;
use crate::roster::{self, Issued, Member, RosterError};

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
