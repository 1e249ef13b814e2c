//! Counting: the SQL `WHERE` clause of a filter, and one streaming pass over the
//! matching events that tallies what each student did.

use std::collections::{BTreeSet, HashMap};

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::identity::Identities;
use super::{text, Filter, ReportError};
use crate::event::EventKind;

/// A `WHERE` clause under construction and its `?` parameters, in order.
#[derive(Default)]
pub(super) struct Where {
    conditions: Vec<String>,
    pub(super) params: Vec<Value>,
}

impl Where {
    /// The room and time conditions of a filter; these can use the indexes.
    pub(super) fn window(filter: &Filter) -> Where {
        let mut sql = Where::default();
        if let Some(room) = &filter.room {
            let room = room.trim();
            let room = room.strip_prefix('#').unwrap_or(room).to_ascii_lowercase();
            sql.push("room = ?", [Value::Text(room)]);
        }
        if let Some(since) = filter.since {
            sql.push("ts_ms >= ?", [Value::Integer(since)]);
        }
        if let Some(until) = filter.until {
            sql.push("ts_ms < ?", [Value::Integer(until)]);
        }
        sql
    }

    pub(super) fn push(
        &mut self,
        condition: impl Into<String>,
        params: impl IntoIterator<Item = Value>,
    ) {
        self.conditions.push(condition.into());
        self.params.extend(params);
    }

    pub(super) fn clause(&self) -> String {
        match self.conditions.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", self.conditions.join(" AND ")),
        }
    }
}

/// What one student did among the filtered events.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) messages: u64,
    pub(super) private_messages: u64,
    pub(super) words: u64,
    pub(super) rooms: BTreeSet<String>,
    pub(super) first_ms: i64,
    pub(super) last_ms: i64,
    pub(super) instructor: bool,
    pub(super) moderation_actions: u64,
    pub(super) kicked: u64,
    pub(super) muted: u64,
}

impl Tally {
    /// Counts one event the student sent; `kind` is `None` for a kind this version
    /// does not know, which still counts as being seen.
    fn sent(&mut self, ts: i64, room: &str, kind: Option<EventKind>, text: Option<&str>) {
        use EventKind::*;
        (self.first_ms, self.last_ms) = (self.first_ms.min(ts), self.last_ms.max(ts));
        if !self.rooms.contains(room) {
            self.rooms.insert(room.to_owned());
        }
        match kind {
            Some(Chat) => self.messages += 1,
            Some(Private) => self.private_messages += 1,
            Some(Op) => self.instructor = true,
            Some(Kick | Mute | Unmute | Announce | Quiet) => self.moderation_actions += 1,
            Some(Join | Leave | Nick) | None => {}
        }
        if matches!(kind, Some(Chat | Private)) {
            let words = text.unwrap_or("").split_whitespace().count();
            self.words += words as u64;
        }
    }
}

/// Kicks and mutes aimed at one student, counted apart from what they sent.
#[derive(Default)]
struct Targeted {
    kicked: u64,
    muted: u64,
}

impl Targeted {
    /// The student a kick or mute is aimed at: whoever used the recipient name, in
    /// any case. A name never used as a sender belongs to no one.
    fn target(ids: &Identities, kind: Option<EventKind>, recipient: Option<&str>) -> Option<usize> {
        match kind {
            Some(EventKind::Kick | EventKind::Mute) => ids.find(recipient?),
            _ => None,
        }
    }

    fn count(&mut self, kind: Option<EventKind>) {
        match kind {
            Some(EventKind::Kick) => self.kicked += 1,
            Some(EventKind::Mute) => self.muted += 1,
            _ => {}
        }
    }
}

/// Streams the filtered events and counts them per student; students without a
/// matching event of their own get no tally, hence no row, even if they were
/// kicked or muted.
pub(super) fn tally_events(
    conn: &Connection,
    sql: &Where,
    ids: &Identities,
) -> Result<HashMap<usize, Tally>, ReportError> {
    let query = format!(
        "SELECT ts_ms, kind, room, session, text, recipient FROM events{}",
        sql.clause()
    );
    let mut stmt = conn.prepare(&query)?;
    let mut rows = stmt.query(params_from_iter(&sql.params))?;
    let mut tallies: HashMap<usize, Tally> = HashMap::new();
    let mut targeted: HashMap<usize, Targeted> = HashMap::new();
    while let Some(row) = rows.next()? {
        let ts: i64 = row.get(0)?;
        let kind = text(row, 1)?.and_then(EventKind::parse);
        if let Some(student) = Targeted::target(ids, kind, text(row, 5)?) {
            targeted.entry(student).or_default().count(kind);
        }
        let Some(&student) = ids.by_session.get(&row.get::<_, i64>(3)?) else {
            continue;
        };
        let tally = tallies.entry(student).or_insert_with(|| Tally {
            first_ms: ts,
            last_ms: ts,
            ..Tally::default()
        });
        tally.sent(ts, text(row, 2)?.unwrap_or(""), kind, text(row, 4)?);
    }
    for (student, targeted) in targeted {
        if let Some(tally) = tallies.get_mut(&student) {
            (tally.kicked, tally.muted) = (targeted.kicked, targeted.muted);
        }
    }
    Ok(tallies)
}
