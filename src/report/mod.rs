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
//! The record is read through [`RecordRead`], so a report says the same from a
//! single server's SQLite and a cluster's PostgreSQL. Room and time filters go
//! into the query's `WHERE` clause and the events are streamed, so a report over a
//! million rows holds only one entry per session and per name.
//!
//! What the filters mean, so that the columns agree with each other: counts
//! (messages, words, moderation) are of events inside the room and window; time
//! online is the time the student was there, in the room with `--room` (from each
//! join of it to the matching leave) and cut to the window with `--since`/`--until`,
//! overlapping connections counted once; first and last seen are the first and last
//! moment of either, so time online never exceeds last minus first seen. A role is
//! a property of the connection: an `/op` outside the filter still marks what the
//! student did inside it as an instructor's.

mod attendance;
mod identity;
mod output;
mod tally;
#[cfg(test)]
mod tests;
mod timeline;

use std::io::{self, BufWriter, Write};
use std::ops::ControlFlow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use serde::Serialize;

use crate::event::Event;
use crate::store::{DbError, RecordRead, Selection};
use crate::transcript;

pub use attendance::{
    attendance_grid, write_attendance, write_gradebook, By, Grid, GridRow, SessionRow, WeekRow,
};
use identity::load_identities;
pub use output::formula_guard;
use output::{write_csv, write_table};
use tally::{add_targeted, tally_events, window, Tally};
pub use timeline::{timeline, Timeline};

/// Why a report or transcript could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A `--since`/`--until` value in none of the accepted forms; holds the value.
    #[error("invalid time {0:?}: expected RFC 3339 (2026-11-24T19:05:03Z), YYYY-MM-DD or YYYY-MM-DD HH:MM[:SS] in UTC, or HH:MM[:SS], today or yesterday in local time")]
    BadTime(String),
    /// The database failed to read the events, or holds an event of a kind this
    /// version does not know, which cannot be printed.
    #[error(transparent)]
    Store(#[from] DbError),
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

impl From<rusqlite::Error> for ReportError {
    fn from(err: rusqlite::Error) -> Self {
        ReportError::Store(err.into())
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
/// so a teacher can type whatever is handiest; and, for the class that just
/// ended, `today`, `yesterday` (their midnight) and `19:05[:03]` (today), in the
/// machine's local time, as the teacher's clock reads.
pub fn parse_time(s: &str) -> Result<i64, ReportError> {
    parse_time_at(s, &chrono::Local::now())
}

/// [`parse_time`] with `now` (and its time zone) for the forms relative to today.
pub fn parse_time_at<Tz: TimeZone>(s: &str, now: &DateTime<Tz>) -> Result<i64, ReportError> {
    let s = s.trim();
    let today = now.date_naive();
    let local = |day: NaiveDate, time: NaiveTime| {
        now.timezone()
            .from_local_datetime(&day.and_time(time))
            .earliest()
            .map(|t| t.timestamp_millis())
            .ok_or_else(|| ReportError::BadTime(s.to_owned()))
    };
    match s.to_ascii_lowercase().as_str() {
        "today" => return local(today, NaiveTime::MIN),
        "yesterday" => return local(today - chrono::Days::new(1), NaiveTime::MIN),
        _ => {}
    }
    if let Some(time) = ["%H:%M", "%H:%M:%S"]
        .iter()
        .find_map(|f| NaiveTime::parse_from_str(s, f).ok())
    {
        return local(today, time);
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// The student's full name from the class roster, where they have one there.
    pub full_name: Option<String>,
    /// Chat lines and actions sent (in the room and window, if filtered).
    pub messages: u64,
    /// Private messages sent (from the room, if filtered).
    pub private_messages: u64,
    /// Whitespace-separated words in those chat lines and private messages.
    pub words: u64,
    /// The rooms the student sent something in or stayed in within the filter, sorted.
    pub rooms: Vec<String>,
    /// The first moment the student was seen within the filter (a matching event
    /// or being online), UTC milliseconds.
    #[serde(rename = "first_seen", serialize_with = "output::serialize_time")]
    pub first_seen_ms: i64,
    /// The last moment the student was seen within the filter, UTC milliseconds.
    #[serde(rename = "last_seen", serialize_with = "output::serialize_time")]
    pub last_seen_ms: i64,
    /// Time online: the student's connections (with a room filter: their stays in
    /// that room), cut to `since..until`, overlaps counted once.
    #[serde(rename = "online_secs", serialize_with = "output::serialize_secs")]
    pub online_ms: i64,
    /// Whether the student was an instructor (`/op`) on a connection that counts in
    /// the filter, even if the `/op` itself was outside it.
    pub instructor: bool,
    /// Kicks, mutes, unmutes, announcements and quiet switches the student sent.
    pub moderation_actions: u64,
    /// Kicks aimed at any of the student's names.
    pub kicked: u64,
    /// Mutes aimed at any of the student's names.
    pub muted: u64,
    /// The student's other names, sorted case-insensitively.
    pub other_names: Vec<String>,
    /// Hands raised with `/hand`.
    pub hands: u64,
    /// Questions asked with `/ask`.
    pub questions: u64,
    /// Their answer to each poll, `N: CHOICE) TEXT`, the last vote of each, in
    /// poll order.
    pub answers: Vec<String>,
}

/// One row per student seen by the filter, sorted by name case-insensitively: those
/// with a matching event of their own and those online within it (in the room, in
/// the window), so a student who listened without a word still shows. Being kicked
/// or muted adds to a row but does not make one.
pub fn student_rows(
    records: &dyn RecordRead,
    filter: &Filter,
) -> Result<Vec<StudentRow>, ReportError> {
    let _snapshot = records.snapshot()?;
    let ids = load_identities(records)?;
    let mut selection = window(filter);
    let mut only = None;
    if let Some(user) = &filter.user {
        let Some(student) = ids.find(user) else {
            return Ok(Vec::new());
        };
        selection.student = Some(ids.students[student].keys());
        only = Some(student);
    }
    let (mut tallies, targeted) = tally_events(records, &selection, &ids)?;
    // The user clause also reads others' events aimed at the user: not their rows.
    tallies.retain(|&student, _| only.is_none_or(|only| only == student));
    // Being there counts for attendance, even without a word said.
    for (student, s) in ids.students.iter().enumerate() {
        if only.is_none_or(|only| only == student) && s.was_online(filter) {
            tallies.entry(student).or_insert_with(Tally::empty);
        }
    }
    add_targeted(&mut tallies, targeted);
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
    records: &dyn RecordRead,
    filter: &Filter,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let rows = student_rows(records, filter)?;
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
    records: &dyn RecordRead,
    filter: &Filter,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let _snapshot = records.snapshot()?;
    let mut selection = window(filter);
    if let Some(user) = &filter.user {
        let ids = load_identities(records)?;
        let Some(student) = ids.find(user) else {
            return Ok(());
        };
        selection.student = Some(ids.students[student].keys());
    }
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    each_in_order(records, selection, &mut |event| {
        writeln!(out, "{}", transcript::format_line(&event))?;
        Ok(())
    })?;
    Ok(out.flush()?)
}

/// One student as the report counts them (SPEC 3): the roster account where a
/// roster is in use, else the name given at log-in, with every connection and
/// name that belongs to them. What `export` and `erase` act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentScope {
    /// The name the report shows.
    pub name: String,
    /// Their other names, as the report lists them.
    pub other_names: Vec<String>,
    /// Every name they used, lower-cased, sorted.
    pub names: Vec<String>,
    /// Their connections (the `session` column).
    pub sessions: Vec<i64>,
}

/// The student who used `name` (any case), and every event by or about them in
/// stored order: what they did under any name, the private messages sent to
/// them, and the kicks, mutes and unmutes aimed at them, as `transcript --user`
/// selects. `None` when no student used that name.
pub fn student_events(
    records: &dyn RecordRead,
    name: &str,
) -> Result<Option<(StudentScope, Vec<Event>)>, ReportError> {
    let _snapshot = records.snapshot()?;
    let ids = load_identities(records)?;
    let Some(student) = ids.find(name) else {
        return Ok(None);
    };
    let student = &ids.students[student];
    let selection = Selection {
        student: Some(student.keys()),
        ..Selection::default()
    };
    let mut events = Vec::new();
    each_in_order(records, selection, &mut |event| {
        events.push(event);
        Ok(())
    })?;
    Ok(Some((student.scope(), events)))
}

/// Calls `each` with every event `selection` keeps, in the record's order, until
/// it fails.
fn each_in_order(
    records: &dyn RecordRead,
    selection: Selection,
    each: &mut dyn FnMut(Event) -> Result<(), ReportError>,
) -> Result<(), ReportError> {
    let selection = Selection {
        in_order: true,
        ..selection
    };
    let mut failed = None;
    records.each_event(&selection, &mut |stored| match stored
        .to_event()
        .map_err(ReportError::from)
        .and_then(&mut *each)
    {
        Ok(()) => ControlFlow::Continue(()),
        Err(err) => {
            failed = Some(err);
            ControlFlow::Break(())
        }
    })?;
    failed.map_or(Ok(()), Err)
}
