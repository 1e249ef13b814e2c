//! Reading the record back, the same way from either back end.
//!
//! The report, the transcript command, `export` and `erase` ask for events by a
//! [`Selection`] and get each matching row as a [`StoredEvent`] borrowed from the
//! back end's own row, so that counting a million rows allocates nothing per row.
//! The SQL of a selection is written once ([`Selection::where_clause`]); each back
//! end only runs it and maps its row type to a [`StoredEvent`], in one place each.

use std::ops::ControlFlow;

use crate::event::{Event, EventKind};
use crate::roster::Member;

use super::DbError;

/// The columns every read selects, in the order [`StoredEvent`] is made from.
pub(crate) const COLUMNS: &str = "ts_ms, kind, room, sender, recipient, text, session, account";

/// One stored event as a back end hands it over, its text borrowed from the row.
#[derive(Debug, Clone, Copy)]
pub struct StoredEvent<'a> {
    /// Its place in the record's order: larger is later. Comparable only
    /// within one read.
    pub order: i64,
    /// When, UTC milliseconds.
    pub ts_ms: i64,
    /// The stored kind, as text: a kind this version does not know still counts
    /// as being seen.
    pub kind: &'a str,
    /// The room.
    pub room: &'a str,
    /// Who did it.
    pub sender: &'a str,
    /// Whom it was aimed at.
    pub recipient: Option<&'a str>,
    /// The words, the reason or the new name.
    pub text: Option<&'a str>,
    /// The connection it came from.
    pub session: i64,
    /// The roster account, where the class has a roster.
    pub account: Option<&'a str>,
}

impl StoredEvent<'_> {
    /// The kind, if this version knows it.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(self.kind)
    }

    /// The event this row holds.
    pub fn to_event(&self) -> Result<Event, DbError> {
        Ok(Event {
            ts_ms: self.ts_ms,
            kind: self
                .kind()
                .ok_or_else(|| DbError::UnknownKind(self.kind.to_owned()))?,
            room: self.room.into(),
            sender: self.sender.into(),
            recipient: self.recipient.map(Into::into),
            text: self.text.map(str::to_owned),
            session: self.session,
            account: self.account.map(Into::into),
        })
    }
}

/// One student's keys in the record: their connections and every name they used.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudentKeys {
    /// Their connections (the `session` column).
    pub sessions: Vec<i64>,
    /// Every name they used, lower-cased.
    pub names: Vec<String>,
}

/// Which events a read returns. Every field narrows; the default is everything,
/// in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Only events in this room (as stored: lower case, no `#`).
    pub room: Option<String>,
    /// Only events at or after this time, UTC milliseconds.
    pub since: Option<i64>,
    /// Only events before this time, UTC milliseconds.
    pub until: Option<i64>,
    /// Only this student's own events and those aimed at them: private messages,
    /// kicks, mutes and unmutes to any of their names, and the erasure of their
    /// words.
    pub student: Option<StudentKeys>,
    /// Leave out `erase` events, which are an operator's and no session's.
    pub skip_erase: bool,
    /// In the record's order (the order the events happened), which costs a sort
    /// on some back ends; otherwise in whatever order is cheapest.
    pub in_order: bool,
}

/// A value bound to a placeholder of [`Selection::where_clause`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Param {
    /// A text column's value.
    Text(String),
    /// An integer column's value.
    Int(i64),
}

impl Selection {
    /// The ` WHERE ...` of this selection (empty when it keeps everything), with
    /// numbered placeholders `{mark}1`, `{mark}2`, ... (`?` for SQLite, `$` for
    /// PostgreSQL) and their values in order. Names are ASCII, so `lower` folds
    /// them alike on both back ends.
    pub fn where_clause(&self, mark: char) -> (String, Vec<Param>) {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        let mut bind = |value: Param| {
            params.push(value);
            format!("{mark}{}", params.len())
        };
        if let Some(room) = &self.room {
            conditions.push(format!("room = {}", bind(Param::Text(room.clone()))));
        }
        if let Some(since) = self.since {
            conditions.push(format!("ts_ms >= {}", bind(Param::Int(since))));
        }
        if let Some(until) = self.until {
            conditions.push(format!("ts_ms < {}", bind(Param::Int(until))));
        }
        if let Some(student) = &self.student {
            // Session ids are integers, safe to inline, and spare the back end
            // thousands of parameters for a student who reconnected a lot.
            let sessions: Vec<String> = student.sessions.iter().map(i64::to_string).collect();
            let names: Vec<String> = student
                .names
                .iter()
                .map(|name| bind(Param::Text(name.clone())))
                .collect();
            conditions.push(format!(
                "(session IN ({}) OR (kind IN ('pm', 'kick', 'mute', 'unmute', 'erase') \
                 AND lower(recipient) IN ({})))",
                none_is_null(sessions),
                none_is_null(names)
            ));
        }
        if self.skip_erase {
            conditions.push("kind <> 'erase'".to_owned());
        }
        let clause = match conditions.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", conditions.join(" AND ")),
        };
        (clause, params)
    }
}

/// An `IN` list; `NULL` when empty, which matches nothing (PostgreSQL refuses
/// `IN ()`).
fn none_is_null(items: Vec<String>) -> String {
    match items.is_empty() {
        true => "NULL".to_owned(),
        false => items.join(", "),
    }
}

/// What [`RecordRead::each_event`] calls for each row: `Break` stops the read
/// early (the caller keeps its own reason).
pub type EachEvent<'f> = dyn FnMut(&StoredEvent<'_>) -> ControlFlow<()> + 'f;

/// Held while a read sees one consistent moment of the record; the moment ends
/// when it is dropped.
pub struct Snapshot<'a>(Option<Box<dyn FnOnce() + 'a>>);

impl<'a> Snapshot<'a> {
    /// A snapshot that `end` finishes.
    pub(crate) fn ending(end: impl FnOnce() + 'a) -> Snapshot<'a> {
        Snapshot(Some(Box::new(end)))
    }

    /// Nothing to end: an outer snapshot already holds the moment.
    pub(crate) fn nested() -> Snapshot<'a> {
        Snapshot(None)
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        if let Some(end) = self.0.take() {
            end();
        }
    }
}

/// The record's read queries, as the report, `transcript`, `export` and `erase`
/// use them: one implementation per back end.
pub trait RecordRead {
    /// Starts one consistent moment of the record: a writer adding events
    /// meanwhile cannot make two passes of one report disagree.
    fn snapshot(&self) -> Result<Snapshot<'_>, DbError>;

    /// Calls `each` with every event `selection` keeps.
    fn each_event(&self, selection: &Selection, each: &mut EachEvent<'_>) -> Result<(), DbError>;

    /// Every roster member, sorted by name as `roster list` prints them.
    fn members(&self) -> Result<Vec<Member>, DbError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_binds_its_values_in_order_for_either_back_end() {
        let selection = Selection {
            room: Some("lab".into()),
            until: Some(9),
            student: Some(StudentKeys {
                sessions: vec![3, 4],
                names: vec!["amy".into(), "amelia".into()],
            }),
            skip_erase: true,
            ..Selection::default()
        };
        let (sqlite, params) = selection.where_clause('?');
        assert_eq!(
            sqlite,
            " WHERE room = ?1 AND ts_ms < ?2 AND (session IN (3, 4) OR (kind IN \
             ('pm', 'kick', 'mute', 'unmute', 'erase') AND lower(recipient) IN (?3, ?4))) \
             AND kind <> 'erase'"
        );
        assert_eq!(
            params,
            [
                Param::Text("lab".into()),
                Param::Int(9),
                Param::Text("amy".into()),
                Param::Text("amelia".into())
            ]
        );
        let (postgres, _) = selection.where_clause('$');
        assert_eq!(postgres, sqlite.replace('?', "$"));
        assert_eq!(
            Selection::default().where_clause('?'),
            (String::new(), vec![])
        );
        let nobody = Selection {
            student: Some(StudentKeys::default()),
            ..Selection::default()
        };
        assert!(nobody.where_clause('$').0.contains("session IN (NULL)"));
    }
}
