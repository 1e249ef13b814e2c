//! `chat-server export --student NAME`: a student's own copy of their record.
//!
//! Every event by or about the student as the report counts them (SPEC 3): what
//! they did under any of their names and connections, private messages both
//! ways, moderation aimed at them; and their roster entry without the code hash.
//! Nobody else's private messages: a message between two others is neither by
//! nor about them.

use std::io::Write;

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::event::Event;
use crate::report::{self, formula_guard, ReportError, StudentScope};
use crate::store::RecordRead;

/// A student's roster entry as they may see it: never the hash of their code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RosterEntry {
    /// The roster name.
    pub name: String,
    /// `student` or `instructor`.
    pub role: String,
    /// The full name, if the roster has it.
    pub full_name: Option<String>,
}

/// One event as exported: the time in RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportedEvent {
    /// When, UTC, to the millisecond.
    pub time: String,
    /// The stored kind (`chat`, `pm`, `join`, ...).
    pub kind: String,
    /// The room.
    pub room: String,
    /// Who did it.
    pub sender: String,
    /// Whom it was aimed at (private messages, moderation).
    pub recipient: Option<String>,
    /// The words, the reason or the new name.
    pub text: Option<String>,
    /// The connection it came from.
    pub session: i64,
    /// The roster account, where the class has a roster.
    pub account: Option<String>,
}

/// Everything [`student_record`] finds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StudentRecord {
    /// The name the report counts them under.
    pub student: String,
    /// Their other names.
    pub other_names: Vec<String>,
    /// Their roster entry, if the class has a roster and they are on it.
    pub roster: Option<RosterEntry>,
    /// Their events, in the order they were stored.
    pub events: Vec<ExportedEvent>,
}

/// The student who used `name` and everything about them; `None` when no
/// student used that name.
pub fn student_record(
    records: &dyn RecordRead,
    name: &str,
) -> Result<Option<StudentRecord>, ReportError> {
    let Some((scope, events)) = report::student_events(records, name)? else {
        return Ok(None);
    };
    let roster = roster_entry(records, &scope)?;
    Ok(Some(StudentRecord {
        student: scope.name,
        other_names: scope.other_names,
        roster,
        events: events.iter().map(exported).collect(),
    }))
}

fn roster_entry(
    records: &dyn RecordRead,
    scope: &StudentScope,
) -> Result<Option<RosterEntry>, ReportError> {
    let members = records.members()?;
    let key = scope.name.to_ascii_lowercase();
    let member = members
        .into_iter()
        .find(|m| m.name.eq_ignore_ascii_case(&key))
        .map(|m| RosterEntry {
            name: m.name,
            role: m.role.as_str().to_owned(),
            full_name: m.full_name,
        });
    Ok(member)
}

fn exported(event: &Event) -> ExportedEvent {
    ExportedEvent {
        time: Utc
            .timestamp_millis_opt(event.ts_ms)
            .single()
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        kind: event.kind.as_str().to_owned(),
        room: event.room.to_string(),
        sender: event.sender.to_string(),
        recipient: event.recipient.as_deref().map(str::to_owned),
        text: event.text.clone(),
        session: event.session,
        account: event.account.as_deref().map(str::to_owned),
    }
}

/// Prints the record as one pretty JSON object.
pub fn write_json(record: &StudentRecord, out: &mut dyn Write) -> Result<(), ReportError> {
    serde_json::to_writer_pretty(&mut *out, record)?;
    writeln!(out)?;
    Ok(out.flush()?)
}

/// Prints the record as CSV, one row per event, after a first row of kind
/// `roster` (sender: the roster name, recipient: the role, text: the full name)
/// when they are on the roster. Formula-like cells are quoted as in the report.
pub fn write_csv(record: &StudentRecord, out: &mut dyn Write) -> Result<(), ReportError> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record([
        "time",
        "kind",
        "room",
        "sender",
        "recipient",
        "text",
        "session",
        "account",
    ])?;
    let mut row = |cells: [&str; 8]| csv.write_record(cells.map(|c| formula_guard(c).into_owned()));
    if let Some(entry) = &record.roster {
        let full_name = entry.full_name.as_deref().unwrap_or("");
        row([
            "",
            "roster",
            "",
            &entry.name,
            &entry.role,
            full_name,
            "",
            &entry.name,
        ])?;
    }
    for e in &record.events {
        let session = e.session.to_string();
        row([
            &e.time,
            &e.kind,
            &e.room,
            &e.sender,
            e.recipient.as_deref().unwrap_or(""),
            e.text.as_deref().unwrap_or(""),
            &session,
            e.account.as_deref().unwrap_or(""),
        ])?;
    }
    Ok(csv.flush()?)
}
