//! Grading: per-student reports and filtered transcripts, read back from the database.
//!
//! A student is not a name: people change names with `/nick` and log in again later.
//! So students are found by a union-find over sessions and lower-cased names: every
//! name used in a session belongs to that session's student, and one name used in
//! several sessions joins them into one student. Identities are always computed over
//! the whole database, whatever the filters, so a renamed student stays one row.
//!
//! Moderation is counted both ways: what an instructor did (`op`, then `kick`, `mute`,
//! `unmute`, `announce`, `quiet`) goes to the sender's student like any event, and a
//! `kick` or `mute` also counts for the student its recipient name belongs to.
//!
//! Room and time filters go into SQL `WHERE` clauses and the events are streamed, so a
//! report over a million rows holds only one entry per session and per name.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, BufWriter, Write};

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};
use rusqlite::types::{Type, Value};
use rusqlite::{params_from_iter, Connection, Row, Transaction};
use serde::{Serialize, Serializer};

use crate::event::{Event, EventKind};
use crate::transcript;

/// Why a report or transcript could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A `--since`/`--until` value in none of the accepted forms; holds the value.
    #[error("invalid time {0:?}: expected RFC 3339 (2026-11-24T19:05:03Z), YYYY-MM-DD, or YYYY-MM-DD HH:MM[:SS] in UTC")]
    BadTime(String),
    /// SQLite failed to read the events.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// A stored event has a kind this version does not know, so it cannot be printed.
    #[error("the database holds an event of unknown kind {0:?}")]
    UnknownKind(String),
    /// The reader of the output went away (`report | head`). Kept apart from [`Io`]
    /// so that the binary can exit quietly with success.
    ///
    /// [`Io`]: ReportError::Io
    #[error("output closed")]
    BrokenPipe,
    /// Writing the output failed for another reason.
    #[error("writing the output: {0}")]
    Io(io::Error),
}

impl From<io::Error> for ReportError {
    fn from(err: io::Error) -> Self {
        match err.kind() {
            io::ErrorKind::BrokenPipe => ReportError::BrokenPipe,
            _ => ReportError::Io(err),
        }
    }
}

impl From<csv::Error> for ReportError {
    fn from(err: csv::Error) -> Self {
        match err.kind() {
            csv::ErrorKind::Io(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                ReportError::BrokenPipe
            }
            _ => ReportError::Io(io::Error::other(err)),
        }
    }
}

impl From<serde_json::Error> for ReportError {
    fn from(err: serde_json::Error) -> Self {
        io::Error::from(err).into()
    }
}

/// Which events a report or transcript looks at. Every field narrows; the default
/// keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only events in this room (`#lab` or `lab`, any case).
    pub room: Option<String>,
    /// Only the student who used this name (any case), under all their names.
    pub user: Option<String>,
    /// Only events at or after this time, UTC milliseconds.
    pub since: Option<i64>,
    /// Only events before this time, UTC milliseconds.
    pub until: Option<i64>,
}

/// Parses a `--since`/`--until` value into UTC milliseconds. Accepts RFC 3339
/// (`2026-11-24T19:05:03Z`, `2026-11-24T20:05:03+01:00`), a day `2026-11-24`
/// (its midnight UTC), and `2026-11-24 19:05[:03]` or `2026-11-24T19:05[:03]` (UTC),
/// so a teacher can type whatever is handiest.
pub fn parse_time(s: &str) -> Result<i64, ReportError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(day) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(day
            .and_time(Default::default())
            .and_utc()
            .timestamp_millis());
    }
    const FORMATS: [&str; 4] = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| ReportError::BadTime(s.to_owned()))
}

/// How [`write_report`] prints: `table` for people, `csv` for spreadsheets, `json`
/// for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// A pretty-printed JSON array of objects.
    Json,
}

/// One student's line of the report. Serializes with times as RFC 3339 strings
/// (`first_seen`, `last_seen`) and the online time in whole seconds (`online_secs`),
/// which is what spreadsheets and scripts want.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentRow {
    /// The name the student used last.
    pub name: String,
    /// Chat lines sent (in the room, if filtered).
    pub messages: u64,
    /// Private messages sent (from the room, if filtered).
    pub private_messages: u64,
    /// Whitespace-separated words in those chat lines and private messages.
    pub words: u64,
    /// The rooms the student was seen in, sorted.
    pub rooms: Vec<String>,
    /// Time of the student's first matching event, UTC milliseconds.
    #[serde(rename = "first_seen", serialize_with = "serialize_time")]
    pub first_seen_ms: i64,
    /// Time of the student's last matching event, UTC milliseconds.
    #[serde(rename = "last_seen", serialize_with = "serialize_time")]
    pub last_seen_ms: i64,
    /// Sum of the student's connections' durations, cut to `since..until`.
    #[serde(rename = "online_secs", serialize_with = "serialize_secs")]
    pub online_ms: i64,
    /// Whether the student became an instructor (`/op`) among the matching events.
    pub instructor: bool,
    /// Kicks, mutes, unmutes, announcements and quiet switches the student sent.
    pub moderation_actions: u64,
    /// Kicks aimed at any of the student's names.
    pub kicked: u64,
    /// Mutes aimed at any of the student's names.
    pub muted: u64,
    /// The student's other names, sorted case-insensitively.
    pub other_names: Vec<String>,
}

/// One row per student seen by the filter, sorted by name case-insensitively.
/// Room filters narrow what is counted and who is listed; online time always counts
/// the student's whole connections (within `since..until`), not only the room.
/// Only students with a matching event of their own are listed: being kicked or
/// muted adds to a row but does not make one.
pub fn student_rows(conn: &Connection, filter: &Filter) -> Result<Vec<StudentRow>, ReportError> {
    let _snapshot = snapshot(conn)?;
    let ids = load_identities(conn)?;
    let mut sql = Where::window(filter);
    let mut only = None;
    if let Some(user) = &filter.user {
        let Some(student) = ids.find(user) else {
            return Ok(Vec::new());
        };
        ids.students[student].push_user_clause(&mut sql);
        only = Some(student);
    }
    let mut tallies = tally_events(conn, &sql, &ids)?;
    // The user clause also reads others' events aimed at the user: not their rows.
    tallies.retain(|&student, _| only.is_none_or(|only| only == student));
    let mut rows: Vec<StudentRow> = tallies
        .into_iter()
        .map(|(student, tally)| ids.students[student].row(tally, filter))
        .collect();
    rows.sort_by_cached_key(|r| (r.name.to_ascii_lowercase(), r.name.clone()));
    Ok(rows)
}

/// Prints the report in `format`. On an empty result, a table says so in words, a
/// CSV is only its header, and JSON is `[]`.
pub fn write_report(
    conn: &Connection,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let rows = student_rows(conn, filter)?;
    match format {
        Format::Table => write_table(&rows, out),
        Format::Csv => write_csv(&rows, out),
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &rows)?;
            writeln!(out)?;
            Ok(out.flush()?)
        }
    }
}

/// Prints the matching events as transcript lines ([`transcript::format_line`]) in
/// the order they were stored. With a user, keeps what that student did under any
/// name, the private messages sent to them and the kicks, mutes and unmutes aimed
/// at them.
pub fn write_transcript(
    conn: &Connection,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let _snapshot = snapshot(conn)?;
    let mut sql = Where::window(filter);
    if let Some(user) = &filter.user {
        let ids = load_identities(conn)?;
        let Some(student) = ids.find(user) else {
            return Ok(());
        };
        ids.students[student].push_user_clause(&mut sql);
    }
    let query = format!(
        "SELECT ts_ms, kind, room, sender, recipient, text, session FROM events{} ORDER BY id",
        sql.clause()
    );
    let mut stmt = conn.prepare(&query)?;
    let mut rows = stmt.query(params_from_iter(&sql.params))?;
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    while let Some(row) = rows.next()? {
        writeln!(out, "{}", transcript::format_line(&event_from_row(row)?))?;
    }
    Ok(out.flush()?)
}

fn event_from_row(row: &Row<'_>) -> Result<Event, ReportError> {
    let kind: String = row.get(1)?;
    Ok(Event {
        ts_ms: row.get(0)?,
        kind: EventKind::parse(&kind).ok_or(ReportError::UnknownKind(kind))?,
        room: row.get::<_, String>(2)?.into(),
        sender: row.get::<_, String>(3)?.into(),
        recipient: row.get::<_, Option<String>>(4)?.map(Into::into),
        text: row.get(5)?,
        session: row.get(6)?,
    })
}

/// Reads everything in one read transaction, so that a server writing meanwhile
/// cannot add a session between the identity pass and the counting pass.
fn snapshot(conn: &Connection) -> Result<Option<Transaction<'_>>, ReportError> {
    Ok(match conn.is_autocommit() {
        true => Some(conn.unchecked_transaction()?),
        false => None,
    })
}

/// A `WHERE` clause under construction and its `?` parameters, in order.
#[derive(Default)]
struct Where {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    /// The room and time conditions of a filter; these can use the indexes.
    fn window(filter: &Filter) -> Where {
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

    fn push(&mut self, condition: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.conditions.push(condition.into());
        self.params.extend(params);
    }

    fn clause(&self) -> String {
        match self.conditions.is_empty() {
            true => String::new(),
            false => format!(" WHERE {}", self.conditions.join(" AND ")),
        }
    }
}

/// Every student in the database, with the sessions and names that make them up.
#[derive(Default)]
struct Identities {
    students: Vec<Student>,
    by_session: HashMap<i64, usize>,
    by_name: HashMap<String, usize>,
}

/// One student's identity, independent of any filter.
#[derive(Default)]
struct Student {
    name: String,
    other_names: Vec<String>,
    lower_names: Vec<String>,
    /// (session, first event ms, last event ms)
    sessions: Vec<(i64, i64, i64)>,
}

/// When a spelling of a name was last used: (ts, id, 1 if it is a nick's new name).
type Recency = (i64, i64, u8);

impl Identities {
    fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.trim().to_ascii_lowercase()).copied()
    }
}

impl Student {
    /// Takes the most recent spelling as the name and the others, sorted, as
    /// other names.
    fn name_from(&mut self, mut names: Vec<(Recency, &str)>) {
        names.sort_by_key(|n| std::cmp::Reverse(n.0));
        let mut names = names.into_iter().map(|(_, name)| name.to_owned());
        self.name = names.next().unwrap_or_default();
        self.other_names = names.collect();
        self.other_names
            .sort_by_cached_key(|n| (n.to_ascii_lowercase(), n.clone()));
    }

    /// Keeps the student's own events (from any of their sessions) and the events
    /// aimed at them: private messages, kicks, mutes and unmutes to any of their
    /// names. Literal session ids are safe (they are integers) and spare SQLite
    /// thousands of parameters for a student who reconnected a lot.
    fn push_user_clause(&self, sql: &mut Where) {
        let ids: Vec<String> = self.sessions.iter().map(|s| s.0.to_string()).collect();
        let marks = vec!["?"; self.lower_names.len()].join(", ");
        let clause = format!(
            "(session IN ({}) OR (kind IN ('pm', 'kick', 'mute', 'unmute') \
             AND recipient COLLATE NOCASE IN ({marks})))",
            ids.join(", ")
        );
        sql.push(clause, self.lower_names.iter().cloned().map(Value::Text));
    }

    fn row(&self, tally: Tally, filter: &Filter) -> StudentRow {
        let (since, until) = (
            filter.since.unwrap_or(i64::MIN),
            filter.until.unwrap_or(i64::MAX),
        );
        let online_ms = self
            .sessions
            .iter()
            .map(|&(_, first, last)| (last.min(until) - first.max(since)).max(0))
            .sum();
        StudentRow {
            name: self.name.clone(),
            messages: tally.messages,
            private_messages: tally.private_messages,
            words: tally.words,
            rooms: tally.rooms.into_iter().collect(),
            first_seen_ms: tally.first_ms,
            last_seen_ms: tally.last_ms,
            online_ms,
            instructor: tally.instructor,
            moderation_actions: tally.moderation_actions,
            kicked: tally.kicked,
            muted: tally.muted,
            other_names: self.other_names.clone(),
        }
    }
}

/// Groups sessions and names into students, from one pass over the table.
fn load_identities(conn: &Connection) -> Result<Identities, ReportError> {
    let sessions = scan_sessions(conn)?;
    let mut sets = UnionFind::default();
    let mut spellings: HashMap<String, (Recency, &str)> = HashMap::new();
    for (&session, seen) in &sessions {
        for (name, when) in &seen.names {
            let lower = name.to_ascii_lowercase();
            sets.union(Node::Session(session), Node::Name(lower.clone()));
            let used = spellings.entry(lower).or_insert((*when, name));
            if *when > used.0 {
                *used = (*when, name);
            }
        }
    }
    let mut ids = Identities::default();
    let mut by_root: HashMap<usize, usize> = HashMap::new();
    let mut student_of = |node: Node, ids: &mut Identities| {
        let next = ids.students.len();
        let student = *by_root.entry(sets.find(node)).or_insert(next);
        if student == next {
            ids.students.push(Student::default());
        }
        student
    };
    for (&session, seen) in &sessions {
        let student = student_of(Node::Session(session), &mut ids);
        let span = (session, seen.first, seen.last);
        ids.students[student].sessions.push(span);
        ids.by_session.insert(session, student);
    }
    let mut names: Vec<Vec<(Recency, &str)>> = vec![Vec::new(); ids.students.len()];
    for (lower, used) in spellings {
        let student = student_of(Node::Name(lower.clone()), &mut ids);
        names[student].push(used);
        ids.students[student].lower_names.push(lower.clone());
        ids.by_name.insert(lower, student);
    }
    for (student, names) in ids.students.iter_mut().zip(names) {
        student.name_from(names);
    }
    Ok(ids)
}

/// One session as the identity pass saw it: its first and last event, and each
/// spelling used in it with when it was last used.
struct SessionSeen {
    first: i64,
    last: i64,
    names: Vec<(String, Recency)>,
}

impl SessionSeen {
    fn saw(&mut self, name: &str, when: Recency) {
        match self.names.iter_mut().find(|(n, _)| n == name) {
            Some((_, last)) => *last = when.max(*last),
            None => self.names.push((name.to_owned(), when)),
        }
    }
}

/// Reads the whole table once, in storage order and without sorting, keeping only
/// a few names per session: much faster than a `GROUP BY` at a million rows.
fn scan_sessions(conn: &Connection) -> Result<HashMap<i64, SessionSeen>, ReportError> {
    let mut stmt = conn.prepare("SELECT session, ts_ms, id, sender, kind, text FROM events")?;
    let mut sessions: HashMap<i64, SessionSeen> = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (session, ts, id): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let seen = sessions.entry(session).or_insert_with(|| SessionSeen {
            first: ts,
            last: ts,
            names: Vec::new(),
        });
        (seen.first, seen.last) = (seen.first.min(ts), seen.last.max(ts));
        seen.saw(text(row, 3)?.unwrap_or(""), (ts, id, 0));
        if let (Some("nick"), Some(new_name)) = (text(row, 4)?, text(row, 5)?) {
            // The new name outranks the old one at the same instant.
            seen.saw(new_name, (ts, id, 1));
        }
    }
    Ok(sessions)
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Node {
    Session(i64),
    Name(String),
}

/// Disjoint sets of sessions and lower-cased names.
#[derive(Default)]
struct UnionFind {
    parent: Vec<usize>,
    index: HashMap<Node, usize>,
}

impl UnionFind {
    fn find(&mut self, node: Node) -> usize {
        let next = self.parent.len();
        let mut x = *self.index.entry(node).or_insert(next);
        if x == next {
            self.parent.push(next);
        }
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: Node, b: Node) {
        let (a, b) = (self.find(a), self.find(b));
        self.parent[a] = b;
    }
}

/// What one student did among the filtered events.
#[derive(Default)]
struct Tally {
    messages: u64,
    private_messages: u64,
    words: u64,
    rooms: BTreeSet<String>,
    first_ms: i64,
    last_ms: i64,
    instructor: bool,
    moderation_actions: u64,
    kicked: u64,
    muted: u64,
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
fn tally_events(
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

/// A text column borrowed from the row, to count without allocating.
fn text<'a>(row: &'a Row<'_>, column: usize) -> rusqlite::Result<Option<&'a str>> {
    row.get_ref(column)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

const TABLE_HEADER: [&str; 10] = [
    "name",
    "messages",
    "pms",
    "words",
    "rooms",
    "first seen",
    "last seen",
    "online",
    "moderation",
    "other names",
];

/// Columns 1, 2, 3 and 7 are numbers or durations: right-aligned.
fn right_aligned(column: usize) -> bool {
    matches!(column, 1..=3 | 7)
}

/// A row's fields as text, in header order, with the format's time and duration
/// and its moderation columns (one for a table, four for CSV).
fn cells(
    r: &StudentRow,
    time: fn(i64) -> String,
    online: fn(i64) -> String,
    moderation: &[String],
) -> Vec<String> {
    let mut cells = vec![
        r.name.clone(),
        r.messages.to_string(),
        r.private_messages.to_string(),
        r.words.to_string(),
        r.rooms.join(" "),
        time(r.first_seen_ms),
        time(r.last_seen_ms),
        online(r.online_ms),
    ];
    cells.extend_from_slice(moderation);
    cells.push(r.other_names.join(" "));
    cells
}

/// The table's moderation cell: `instructor, 3 actions`, `kicked 1, muted 2`, or
/// empty for a student who neither moderated nor was moderated.
fn moderation_summary(r: &StudentRow) -> String {
    let mut parts = Vec::new();
    if r.instructor {
        parts.push("instructor".to_owned());
    }
    match r.moderation_actions {
        0 => {}
        1 => parts.push("1 action".to_owned()),
        n => parts.push(format!("{n} actions")),
    }
    if r.kicked > 0 {
        parts.push(format!("kicked {}", r.kicked));
    }
    if r.muted > 0 {
        parts.push(format!("muted {}", r.muted));
    }
    parts.join(", ")
}

fn write_table(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let time = |ms| utc(ms).format("%Y-%m-%d %H:%M:%S").to_string();
    let mut lines = vec![TABLE_HEADER.map(String::from).to_vec()];
    lines.extend(
        rows.iter()
            .map(|r| cells(r, time, format_duration, &[moderation_summary(r)])),
    );
    let mut widths = [0; TABLE_HEADER.len()];
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for line in &lines {
        let mut text = String::new();
        for (column, (cell, &width)) in line.iter().zip(&widths).enumerate() {
            let sep = if column == 0 { "" } else { "  " };
            match right_aligned(column) {
                true => text += &format!("{sep}{cell:>width$}"),
                false => text += &format!("{sep}{cell:<width$}"),
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    if rows.is_empty() {
        writeln!(out, "(no students match)")?;
    }
    Ok(out.flush()?)
}

const CSV_HEADER: [&str; 13] = [
    "name",
    "messages",
    "private_messages",
    "words",
    "rooms",
    "first_seen",
    "last_seen",
    "online_secs",
    "instructor",
    "moderation_actions",
    "kicked",
    "muted",
    "other_names",
];

fn write_csv(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_HEADER)?;
    for r in rows {
        let moderation = [
            r.instructor.to_string(),
            r.moderation_actions.to_string(),
            r.kicked.to_string(),
            r.muted.to_string(),
        ];
        csv.write_record(cells(r, rfc3339, |ms| (ms / 1000).to_string(), &moderation))?;
    }
    Ok(csv.flush()?)
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn serialize_time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

fn serialize_secs<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(ms / 1000)
}

/// `1h 02m 03s`, `2m 05s` or `12s`; whole seconds, rounded down.
fn format_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;
    use serde_json::json;

    /// 2026-11-24T19:00:00Z
    const T0: i64 = 1_795_546_800_000;
    const MIN: i64 = 60_000;

    fn at(secs: i64) -> i64 {
        T0 + secs * 1000
    }

    /// For a pm, kick, mute or unmute, `text` is `recipient[:text]`.
    fn ev(
        secs: i64,
        session: i64,
        kind: EventKind,
        room: &str,
        sender: &str,
        text: Option<&str>,
    ) -> Event {
        use EventKind::*;
        let (recipient, text) = match (kind, text) {
            (Private | Kick | Mute | Unmute, Some(t)) => match t.split_once(':') {
                Some((to, t)) => (Some(to.into()), Some(t.to_owned())),
                None => (Some(t.into()), None),
            },
            (_, t) => (None, t.map(String::from)),
        };
        Event {
            ts_ms: at(secs),
            kind,
            room: room.into(),
            sender: sender.into(),
            recipient,
            text,
            session,
        }
    }

    /// alice (session 1) renames to Alicia, moves to lab and quits; bob (session 2)
    /// stays in the lobby until Prof (session 4, appended last so that the indexes
    /// above stay put) ops, mutes, unmutes and kicks him, and mutes the gone Alicia;
    /// she comes back as "Alice" (session 3) and times out.
    fn script() -> Vec<Event> {
        use EventKind::*;
        vec![
            ev(0, 1, Join, "lobby", "alice", None),
            ev(5, 2, Join, "lobby", "bob", None),
            ev(10, 1, Chat, "lobby", "alice", Some("hello everyone")),
            ev(15, 2, Chat, "lobby", "bob", Some("hi alice")),
            ev(20, 1, Nick, "lobby", "alice", Some("Alicia")),
            ev(30, 1, Chat, "lobby", "Alicia", Some("my new name, same me")),
            ev(40, 1, Leave, "lobby", "Alicia", Some("joined #lab")),
            ev(40, 1, Join, "lab", "Alicia", None),
            ev(50, 1, Chat, "lab", "Alicia", Some("lab time")),
            ev(60, 1, Private, "lab", "Alicia", Some("bob:psst, bob")),
            ev(
                70,
                2,
                Private,
                "lobby",
                "bob",
                Some("Alicia:hey \"you\", hi"),
            ),
            ev(100, 1, Leave, "lab", "Alicia", Some("Quit: bye")),
            ev(160, 2, Leave, "lobby", "bob", Some("Kicked: spamming")),
            ev(3600, 3, Join, "lobby", "Alice", None),
            ev(
                3610,
                3,
                Chat,
                "lobby",
                "Alice",
                Some("back again, with commas"),
            ),
            ev(3725, 3, Leave, "lobby", "Alice", Some("Timed out")),
            ev(110, 4, Join, "lobby", "Prof", None),
            ev(115, 4, Op, "lobby", "Prof", None),
            ev(120, 4, Mute, "lobby", "Prof", Some("BOB:5")),
            ev(130, 4, Unmute, "lobby", "Prof", Some("bob")),
            ev(140, 4, Announce, "lobby", "Prof", Some("quiz in five")),
            ev(150, 4, Quiet, "lobby", "Prof", Some("on")),
            ev(155, 4, Mute, "lobby", "Prof", Some("alicia")),
            ev(160, 4, Kick, "lobby", "Prof", Some("bob:spamming")),
            // Nobody ever spoke as "ghost": an action of Prof's, aimed at no one.
            ev(165, 4, Kick, "lobby", "Prof", Some("ghost")),
            ev(170, 4, Quiet, "lobby", "Prof", Some("off")),
            ev(180, 4, Leave, "lobby", "Prof", Some("Quit: done")),
        ]
    }

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        store::migrate(&mut conn).unwrap();
        store::insert_events(&mut conn, &script()).unwrap();
        conn
    }

    fn alice() -> StudentRow {
        StudentRow {
            name: "Alice".into(),
            messages: 4,
            private_messages: 1,
            words: 15,
            rooms: vec!["lab".into(), "lobby".into()],
            first_seen_ms: at(0),
            last_seen_ms: at(3725),
            online_ms: 225_000,
            instructor: false,
            moderation_actions: 0,
            kicked: 0,
            muted: 1,
            other_names: vec!["Alicia".into()],
        }
    }

    fn bob() -> StudentRow {
        StudentRow {
            name: "bob".into(),
            messages: 1,
            private_messages: 1,
            words: 5,
            rooms: vec!["lobby".into()],
            first_seen_ms: at(5),
            last_seen_ms: at(160),
            online_ms: 155_000,
            instructor: false,
            moderation_actions: 0,
            kicked: 1,
            muted: 1,
            other_names: vec![],
        }
    }

    fn prof() -> StudentRow {
        StudentRow {
            name: "Prof".into(),
            messages: 0,
            private_messages: 0,
            words: 0,
            rooms: vec!["lobby".into()],
            first_seen_ms: at(110),
            last_seen_ms: at(180),
            online_ms: 70_000,
            instructor: true,
            moderation_actions: 8,
            kicked: 0,
            muted: 0,
            other_names: vec![],
        }
    }

    fn rows(filter: Filter) -> Vec<StudentRow> {
        student_rows(&db(), &filter).unwrap()
    }

    fn output(filter: Filter, format: Option<Format>) -> String {
        let mut out = Vec::new();
        match format {
            Some(format) => write_report(&db(), &filter, format, &mut out).unwrap(),
            None => write_transcript(&db(), &filter, &mut out).unwrap(),
        }
        String::from_utf8(out).unwrap()
    }

    fn user(name: &str) -> Filter {
        Filter {
            user: Some(name.into()),
            ..Filter::default()
        }
    }

    #[test]
    fn one_row_per_student_across_nicks_and_reconnections() {
        assert_eq!(rows(Filter::default()), vec![alice(), bob(), prof()]);
    }

    #[test]
    fn table_is_aligned_and_readable() {
        let expected = "\
name   messages  pms  words  rooms      first seen           last seen            online  moderation             other names
Alice         4    1     15  lab lobby  2026-11-24 19:00:00  2026-11-24 20:02:05  3m 45s  muted 1                Alicia
bob           1    1      5  lobby      2026-11-24 19:00:05  2026-11-24 19:02:40  2m 35s  kicked 1, muted 1
Prof          0    0      0  lobby      2026-11-24 19:01:50  2026-11-24 19:03:00  1m 10s  instructor, 8 actions
";
        assert_eq!(output(Filter::default(), Some(Format::Table)), expected);
    }

    #[test]
    fn csv_parses_back_with_every_field() {
        let text = output(Filter::default(), Some(Format::Csv));
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(reader.headers().unwrap(), &CSV_HEADER[..]);
        let records: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        let expected = [
            [
                "Alice",
                "4",
                "1",
                "15",
                "lab lobby",
                "2026-11-24T19:00:00.000Z",
                "2026-11-24T20:02:05.000Z",
                "225",
                "false",
                "0",
                "0",
                "1",
                "Alicia",
            ],
            [
                "bob",
                "1",
                "1",
                "5",
                "lobby",
                "2026-11-24T19:00:05.000Z",
                "2026-11-24T19:02:40.000Z",
                "155",
                "false",
                "0",
                "1",
                "1",
                "",
            ],
            [
                "Prof",
                "0",
                "0",
                "0",
                "lobby",
                "2026-11-24T19:01:50.000Z",
                "2026-11-24T19:03:00.000Z",
                "70",
                "true",
                "8",
                "0",
                "0",
                "",
            ],
        ];
        assert_eq!(records, expected.map(|r| r.map(String::from).to_vec()));
    }

    #[test]
    fn json_parses_back_with_every_field() {
        let text = output(Filter::default(), Some(Format::Json));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let expected = json!([
            {"name": "Alice", "messages": 4, "private_messages": 1, "words": 15, "rooms": ["lab", "lobby"],
             "first_seen": "2026-11-24T19:00:00.000Z", "last_seen": "2026-11-24T20:02:05.000Z",
             "online_secs": 225, "instructor": false, "moderation_actions": 0, "kicked": 0,
             "muted": 1, "other_names": ["Alicia"]},
            {"name": "bob", "messages": 1, "private_messages": 1, "words": 5, "rooms": ["lobby"],
             "first_seen": "2026-11-24T19:00:05.000Z", "last_seen": "2026-11-24T19:02:40.000Z",
             "online_secs": 155, "instructor": false, "moderation_actions": 0, "kicked": 1,
             "muted": 1, "other_names": []},
            {"name": "Prof", "messages": 0, "private_messages": 0, "words": 0, "rooms": ["lobby"],
             "first_seen": "2026-11-24T19:01:50.000Z", "last_seen": "2026-11-24T19:03:00.000Z",
             "online_secs": 70, "instructor": true, "moderation_actions": 8, "kicked": 0,
             "muted": 0, "other_names": []},
        ]);
        // The keys come in column order, moderation right before other_names.
        let first = &text[..text.find('}').unwrap()];
        let at = |key: &&str| first.find(&format!("\"{key}\":")).unwrap();
        assert_eq!(value, expected);
        assert!(CSV_HEADER.iter().map(at).is_sorted(), "{first}");
    }

    #[test]
    fn empty_results_in_every_format() {
        let none = || user("nobody");
        assert_eq!(
            output(none(), Some(Format::Table)).lines().nth(1),
            Some("(no students match)")
        );
        assert_eq!(
            output(none(), Some(Format::Csv)),
            format!("{}\n", CSV_HEADER.join(","))
        );
        assert_eq!(output(none(), Some(Format::Json)), "[]\n");
        assert_eq!(output(none(), None), "");
    }

    #[test]
    fn room_filter_counts_only_that_room() {
        let lab = StudentRow {
            messages: 1,
            words: 4,
            rooms: vec!["lab".into()],
            first_seen_ms: at(40),
            last_seen_ms: at(100),
            // Prof muted her in the lobby, not in the lab.
            muted: 0,
            ..alice()
        };
        assert_eq!(
            rows(Filter {
                room: Some("#LAB".into()),
                ..Filter::default()
            }),
            vec![lab]
        );
        let lobby = StudentRow {
            messages: 3,
            private_messages: 0,
            words: 11,
            rooms: vec!["lobby".into()],
            ..alice()
        };
        assert_eq!(
            rows(Filter {
                room: Some("lobby".into()),
                ..Filter::default()
            }),
            vec![lobby, bob(), prof()]
        );
    }

    #[test]
    fn user_filter_finds_the_student_by_any_name() {
        assert_eq!(rows(user("ALICIA")), vec![alice()]);
        assert_eq!(rows(user("alice")), vec![alice()]);
        // Prof's kick and mute of bob count for bob without listing Prof.
        assert_eq!(rows(user("Bob")), vec![bob()]);
        assert_eq!(rows(user("prof")), vec![prof()]);
        assert_eq!(rows(user("nobody")), vec![]);
        assert_eq!(rows(user("ghost")), vec![]);
    }

    #[test]
    fn moderation_counts_for_the_instructor_and_the_target() {
        let window = |since, until| Filter {
            since: Some(at(since)),
            until: Some(at(until)),
            ..Filter::default()
        };
        // An op, a mute, an unmute and an announcement: no messages, no words.
        let opped = StudentRow {
            last_seen_ms: at(140),
            online_ms: 35_000,
            moderation_actions: 3,
            ..prof()
        };
        assert_eq!(rows(window(110, 145)), vec![opped]);
        // Before the op Prof is no instructor yet; the actions still count.
        let acting = StudentRow {
            first_seen_ms: at(120),
            last_seen_ms: at(130),
            online_ms: 15_000,
            instructor: false,
            moderation_actions: 2,
            ..prof()
        };
        // bob, muted at 120 s, has no event of his own in the window: no row, even
        // when asked for by name.
        assert_eq!(rows(window(120, 135)), vec![acting]);
        let bob_then = Filter {
            user: Some("bob".into()),
            ..window(120, 135)
        };
        assert_eq!(rows(bob_then), vec![]);
        // The kick and bob's own "Kicked" leave fall in the same window.
        let kicked = StudentRow {
            messages: 0,
            private_messages: 0,
            words: 0,
            first_seen_ms: at(160),
            online_ms: 0,
            muted: 0,
            ..bob()
        };
        let kicking = StudentRow {
            first_seen_ms: at(160),
            last_seen_ms: at(165),
            online_ms: 6_000,
            instructor: false,
            moderation_actions: 2,
            ..prof()
        };
        assert_eq!(rows(window(160, 166)), vec![kicked, kicking]);
    }

    #[test]
    fn time_filters_cut_events_and_online_time() {
        let since = Filter {
            since: Some(at(3600)),
            ..Filter::default()
        };
        let back = StudentRow {
            messages: 1,
            private_messages: 0,
            words: 4,
            rooms: vec!["lobby".into()],
            first_seen_ms: at(3600),
            online_ms: 125_000,
            muted: 0,
            ..alice()
        };
        assert_eq!(rows(since), vec![back]);
        // since is inclusive, until exclusive: bob's join at 5 s is in, his chat at
        // 15 s is out; both connections count only from 5 s to 15 s.
        let window = Filter {
            since: Some(at(5)),
            until: Some(at(15)),
            ..Filter::default()
        };
        let early = StudentRow {
            messages: 1,
            private_messages: 0,
            words: 2,
            rooms: vec!["lobby".into()],
            first_seen_ms: at(10),
            last_seen_ms: at(10),
            online_ms: 10_000,
            muted: 0,
            ..alice()
        };
        let silent = StudentRow {
            messages: 0,
            private_messages: 0,
            words: 0,
            last_seen_ms: at(5),
            online_ms: 10_000,
            kicked: 0,
            muted: 0,
            ..bob()
        };
        assert_eq!(rows(window), vec![early, silent]);
    }

    #[test]
    fn transcript_prints_filtered_lines_in_order() {
        let lines = |keep: &dyn Fn(usize, &Event) -> bool| -> String {
            let events = script()
                .into_iter()
                .enumerate()
                .filter(|(i, e)| keep(*i, e));
            events
                .map(|(_, e)| transcript::format_line(&e) + "\n")
                .collect()
        };
        assert_eq!(output(Filter::default(), None), lines(&|_, _| true));
        let to = |e: &Event, names: &[&str]| {
            let to = e.recipient.as_deref().unwrap_or("");
            names.iter().any(|n| n.eq_ignore_ascii_case(to))
        };
        // bob's own events, and what was aimed at him: Alicia's private message and
        // Prof's mute, unmute and kick.
        let bob = output(user("BOB"), None);
        assert_eq!(bob, lines(&|_, e| e.session == 2 || to(e, &["bob"])));
        assert!(bob.contains("kick Prof -> bob (spamming)"), "{bob}");
        // alice under every name, bob's private message to Alicia and Prof's mute.
        assert_eq!(
            output(user("alice"), None),
            lines(&|_, e| matches!(e.session, 1 | 3) || to(e, &["alice", "alicia"]))
        );
        // Prof's own events only: the kick of "ghost" is an action, not a target.
        assert_eq!(output(user("prof"), None), lines(&|_, e| e.session == 4));
        let lab = Filter {
            room: Some("lab".into()),
            ..Filter::default()
        };
        assert_eq!(output(lab, None), lines(&|_, e| &*e.room == "lab"));
        let window = Filter {
            since: Some(at(10)),
            until: Some(at(40)),
            ..Filter::default()
        };
        assert_eq!(output(window, None), lines(&|i, _| (2..6).contains(&i)));
    }

    #[test]
    fn parse_time_accepts_the_documented_forms() {
        assert_eq!(parse_time("2026-11-24T19:00:00Z").unwrap(), T0);
        assert_eq!(parse_time("2026-11-24T20:00:00+01:00").unwrap(), T0);
        assert_eq!(parse_time("2026-11-24T19:00:00.250Z").unwrap(), T0 + 250);
        assert_eq!(parse_time("2026-11-24").unwrap(), T0 - 19 * 60 * MIN);
        assert_eq!(parse_time("2026-11-24 19:05").unwrap(), T0 + 5 * MIN);
        assert_eq!(parse_time("2026-11-24T19:05").unwrap(), T0 + 5 * MIN);
        assert_eq!(parse_time(" 2026-11-24 19:05:03 ").unwrap(), at(303));
        assert_eq!(parse_time("2026-11-24T19:05:03").unwrap(), at(303));
        for bad in ["yesterday", "2026-13-01", "2026-11-24 25:00", ""] {
            let err = parse_time(bad).unwrap_err();
            assert!(
                matches!(&err, ReportError::BadTime(v) if v == bad.trim()),
                "{bad}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(12_999), "12s");
        assert_eq!(format_duration(125_000), "2m 05s");
        assert_eq!(format_duration(3_723_000), "1h 02m 03s");
    }

    struct Closed(io::ErrorKind);

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn broken_pipe_is_its_own_error() {
        let (conn, all) = (db(), Filter::default());
        for format in [Format::Table, Format::Csv, Format::Json] {
            let err = write_report(&conn, &all, format, &mut Closed(io::ErrorKind::BrokenPipe));
            assert!(
                matches!(err, Err(ReportError::BrokenPipe)),
                "{format:?}: {err:?}"
            );
            let err = write_report(&conn, &all, format, &mut Closed(io::ErrorKind::Other));
            assert!(
                matches!(err, Err(ReportError::Io(_))),
                "{format:?}: {err:?}"
            );
        }
        let err = write_transcript(&conn, &all, &mut Closed(io::ErrorKind::BrokenPipe));
        assert!(matches!(err, Err(ReportError::BrokenPipe)), "{err:?}");
    }
}
