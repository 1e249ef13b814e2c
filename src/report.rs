//! Grading: per-student reports and filtered transcripts, read back from the database.
//!
//! A student is not a name: people change names with `/nick` and log in again later.
//! So students are found by a union-find over sessions and lower-cased names: every
//! name used in a session belongs to that session's student, and one name used in
//! several sessions joins them into one student. Identities are always computed over
//! the whole database, whatever the filters, so a renamed student stays one row.
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
    /// The student's other names, sorted case-insensitively.
    pub other_names: Vec<String>,
}

/// One row per student seen by the filter, sorted by name case-insensitively.
/// Room filters narrow what is counted and who is listed; online time always counts
/// the student's whole connections (within `since..until`), not only the room.
pub fn student_rows(conn: &Connection, filter: &Filter) -> Result<Vec<StudentRow>, ReportError> {
    let _snapshot = snapshot(conn)?;
    let ids = load_identities(conn)?;
    let mut sql = Where::window(filter);
    if let Some(user) = &filter.user {
        match ids.find(user) {
            Some(student) => sql.push(ids.students[student].session_clause(), []),
            None => return Ok(Vec::new()),
        }
    }
    let tallies = tally_events(conn, &sql, &ids)?;
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
/// name and the private messages sent to them.
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
        let student = &ids.students[student];
        let marks = vec!["?"; student.lower_names.len()].join(", ");
        let clause = format!(
            "({} OR (kind = 'pm' AND recipient COLLATE NOCASE IN ({marks})))",
            student.session_clause()
        );
        sql.push(clause, student.lower_names.iter().cloned().map(Value::Text));
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

    /// Literal ids are safe (they are integers) and spare SQLite thousands of
    /// parameters for a student who reconnected a lot.
    fn session_clause(&self) -> String {
        let ids: Vec<String> = self.sessions.iter().map(|s| s.0.to_string()).collect();
        format!("session IN ({})", ids.join(", "))
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
}

/// Streams the filtered events and counts them per student; students without a
/// matching event get no tally, hence no row.
fn tally_events(
    conn: &Connection,
    sql: &Where,
    ids: &Identities,
) -> Result<HashMap<usize, Tally>, ReportError> {
    let query = format!(
        "SELECT ts_ms, kind, room, session, text FROM events{}",
        sql.clause()
    );
    let mut stmt = conn.prepare(&query)?;
    let mut rows = stmt.query(params_from_iter(&sql.params))?;
    let mut tallies: HashMap<usize, Tally> = HashMap::new();
    while let Some(row) = rows.next()? {
        let ts: i64 = row.get(0)?;
        let Some(&student) = ids.by_session.get(&row.get::<_, i64>(3)?) else {
            continue;
        };
        let tally = tallies.entry(student).or_insert_with(|| Tally {
            first_ms: ts,
            last_ms: ts,
            ..Tally::default()
        });
        (tally.first_ms, tally.last_ms) = (tally.first_ms.min(ts), tally.last_ms.max(ts));
        let room = text(row, 2)?.unwrap_or("");
        if !tally.rooms.contains(room) {
            tally.rooms.insert(room.to_owned());
        }
        let counter = match text(row, 1)?.unwrap_or("") {
            "chat" => &mut tally.messages,
            "pm" => &mut tally.private_messages,
            _ => continue,
        };
        *counter += 1;
        let words = text(row, 4)?.unwrap_or("").split_whitespace().count();
        tally.words += words as u64;
    }
    Ok(tallies)
}

/// A text column borrowed from the row, to count without allocating.
fn text<'a>(row: &'a Row<'_>, column: usize) -> rusqlite::Result<Option<&'a str>> {
    row.get_ref(column)?
        .as_str_or_null()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

const TABLE_HEADER: [&str; 9] = [
    "name",
    "messages",
    "pms",
    "words",
    "rooms",
    "first seen",
    "last seen",
    "online",
    "other names",
];

/// Columns 1, 2, 3 and 7 are numbers or durations: right-aligned.
fn right_aligned(column: usize) -> bool {
    matches!(column, 1..=3 | 7)
}

/// A row's fields as text, in header order, with the format's time and duration.
fn cells(r: &StudentRow, time: fn(i64) -> String, online: fn(i64) -> String) -> [String; 9] {
    [
        r.name.clone(),
        r.messages.to_string(),
        r.private_messages.to_string(),
        r.words.to_string(),
        r.rooms.join(" "),
        time(r.first_seen_ms),
        time(r.last_seen_ms),
        online(r.online_ms),
        r.other_names.join(" "),
    ]
}

fn write_table(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let time = |ms| utc(ms).format("%Y-%m-%d %H:%M:%S").to_string();
    let mut lines = vec![TABLE_HEADER.map(String::from)];
    lines.extend(rows.iter().map(|r| cells(r, time, format_duration)));
    let mut widths = [0; 9];
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

const CSV_HEADER: [&str; 9] = [
    "name",
    "messages",
    "private_messages",
    "words",
    "rooms",
    "first_seen",
    "last_seen",
    "online_secs",
    "other_names",
];

fn write_csv(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_HEADER)?;
    for r in rows {
        csv.write_record(cells(r, rfc3339, |ms| (ms / 1000).to_string()))?;
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

    fn ev(
        secs: i64,
        session: i64,
        kind: EventKind,
        room: &str,
        sender: &str,
        text: Option<&str>,
    ) -> Event {
        let (recipient, text) = match (kind, text) {
            (EventKind::Private, Some(t)) => {
                let (to, t) = t.split_once(':').unwrap();
                (Some(to.into()), Some(t.to_owned()))
            }
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
    /// stays in the lobby; she comes back as "Alice" (session 3) and times out.
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
            ev(200, 2, Leave, "lobby", "bob", Some("Connection closed")),
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
            last_seen_ms: at(200),
            online_ms: 195_000,
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
        assert_eq!(rows(Filter::default()), vec![alice(), bob()]);
    }

    #[test]
    fn table_is_aligned_and_readable() {
        let expected = "\
name   messages  pms  words  rooms      first seen           last seen            online  other names
Alice         4    1     15  lab lobby  2026-11-24 19:00:00  2026-11-24 20:02:05  3m 45s  Alicia
bob           1    1      5  lobby      2026-11-24 19:00:05  2026-11-24 19:03:20  3m 15s
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
                "Alicia",
            ],
            [
                "bob",
                "1",
                "1",
                "5",
                "lobby",
                "2026-11-24T19:00:05.000Z",
                "2026-11-24T19:03:20.000Z",
                "195",
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
             "online_secs": 225, "other_names": ["Alicia"]},
            {"name": "bob", "messages": 1, "private_messages": 1, "words": 5, "rooms": ["lobby"],
             "first_seen": "2026-11-24T19:00:05.000Z", "last_seen": "2026-11-24T19:03:20.000Z",
             "online_secs": 195, "other_names": []},
        ]);
        assert_eq!(value, expected);
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
            vec![lobby, bob()]
        );
    }

    #[test]
    fn user_filter_finds_the_student_by_any_name() {
        assert_eq!(rows(user("ALICIA")), vec![alice()]);
        assert_eq!(rows(user("alice")), vec![alice()]);
        assert_eq!(rows(user("Bob")), vec![bob()]);
        assert_eq!(rows(user("nobody")), vec![]);
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
            ..alice()
        };
        let silent = StudentRow {
            messages: 0,
            private_messages: 0,
            words: 0,
            last_seen_ms: at(5),
            online_ms: 10_000,
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
        // bob's own events, and the private message Alicia sent him.
        assert_eq!(
            output(user("BOB"), None),
            lines(&|i, e| e.session == 2 || i == 9)
        );
        // alice under every name, and bob's private message to Alicia.
        assert_eq!(
            output(user("alice"), None),
            lines(&|i, e| e.session != 2 || i == 10)
        );
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
