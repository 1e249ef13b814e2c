//! The roster's seam: the commands that change it ([`RosterEdit`]) and the
//! running server's reading of it ([`RosterSource`]), each with an
//! implementation in [`sqlite`](super::sqlite) and [`postgres`](super::postgres).

use futures_util::future::BoxFuture;

use super::read::RecordRead;
use super::DbError;
use crate::config::ValidConfig;
use crate::roster::{self, Issued, NewMember, Roster, RosterError};

/// What `chat-server roster` does to the roster, wherever it is kept. Listing it
/// is [`RecordRead::members`].
pub trait RosterEdit: RecordRead {
    /// Stores these people with the hashes of their codes, in one transaction:
    /// a name already there in any case refuses them all.
    fn insert_members(&mut self, issued: &[Issued], now_ms: i64) -> Result<(), RosterError>;

    /// Takes `name` (any case) off the roster.
    fn remove_member(&mut self, name: &str) -> Result<(), RosterError>;

    /// Stores `code_hash` as the code of `name` (any case); returns the stored
    /// name, `None` when no one has that name.
    fn replace_code(&mut self, name: &str, code_hash: &str) -> Result<Option<String>, RosterError>;

    /// Adds people, all or none; returns each name with its new code, to be
    /// printed once. Every name is checked and every code hashed before the
    /// database is touched: the slow hashing then holds no write lock.
    fn add_members(
        &mut self,
        people: &[NewMember],
        max_nick_len: usize,
        now_ms: i64,
    ) -> Result<Vec<(String, String)>, RosterError> {
        let issued = roster::issue_codes(people, max_nick_len)?;
        self.insert_members(&issued, now_ms)?;
        Ok(roster::printable(issued))
    }

    /// Gives `name` (any case) a new code (the old one stops working); returns
    /// the stored name and the code.
    fn reissue_code(&mut self, name: &str) -> Result<(String, String), RosterError> {
        let (code, code_hash) = roster::issue_code()?;
        let stored = self
            .replace_code(name, &code_hash)?
            .ok_or_else(|| RosterError::Missing(name.to_owned()))?;
        Ok((stored, code))
    }
}

/// Where a running server reads the roster from, again every few seconds.
pub trait RosterSource: Send {
    /// The whole roster as it is now. Never blocks the runtime, and gives up
    /// after [`postgres::ANSWER_WITHIN`](super::postgres::ANSWER_WITHIN) on a
    /// database that does not answer.
    fn read(&mut self) -> BoxFuture<'_, Result<Roster, DbError>>;
}

/// The roster source of this configuration: a cluster's PostgreSQL, or the
/// single server's SQLite database.
pub fn roster_source(config: &ValidConfig) -> Box<dyn RosterSource> {
    match config.is_cluster() {
        true => Box::new(super::postgres::RosterReader::new(
            &config.storage.postgres_url,
        )),
        false => Box::new(super::sqlite::RosterReader(config.storage.database.clone())),
    }
}
