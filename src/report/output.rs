//! Printing: the table, CSV and JSON forms of the report rows, and how times and
//! durations read in each.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::Serializer;

use super::{ReportError, StudentRow};

const TABLE_HEADER: [&str; 12] = [
    "name",
    "full name",
    "messages",
    "pms",
    "words",
    "rooms",
    "first seen",
    "last seen",
    "online",
    "moderation",
    "other names",
    "class tools",
];

/// Columns 2, 3, 4 and 8 are numbers or durations: right-aligned.
fn right_aligned(column: usize) -> bool {
    matches!(column, 2..=4 | 8)
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
        r.full_name.clone().unwrap_or_default(),
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

/// The table's cell for the class's tools: `2 hands, 1 question, 3 answers`.
fn tools_summary(r: &StudentRow) -> String {
    let count = |n: u64, one: &str, many: &str| match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    [
        count(r.hands, "hand", "hands"),
        count(r.questions, "question", "questions"),
        count(r.answers.len() as u64, "answer", "answers"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ")
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

pub(super) fn write_table(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let time = |ms| utc(ms).format("%Y-%m-%d %H:%M:%S").to_string();
    let mut lines = vec![TABLE_HEADER.map(String::from).to_vec()];
    lines.extend(rows.iter().map(|r| {
        let mut line = cells(r, time, format_duration, &[moderation_summary(r)]);
        line.push(tools_summary(r));
        line
    }));
    let right: Vec<usize> = (0..TABLE_HEADER.len())
        .filter(|&c| right_aligned(c))
        .collect();
    print_aligned(&lines, &right, out)?;
    if rows.is_empty() {
        writeln!(out, "(no students match)")?;
    }
    Ok(out.flush()?)
}

/// Prints `lines` (the header first) in aligned columns, those in `right`
/// right-aligned. A class without a roster has no full names, and one that uses
/// no hands, polls or questions no class tools: such a column is left out when
/// it is empty.
const OPTIONAL: [&str; 2] = ["full name", "class tools"];

pub(super) fn print_aligned(
    lines: &[Vec<String>],
    right: &[usize],
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let columns = lines.first().map_or(0, Vec::len);
    let mut widths = vec![0; columns];
    for line in lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let shown = |column: usize| {
        !OPTIONAL.contains(&lines[0][column].as_str())
            || lines[1..].iter().any(|l| !l[column].is_empty())
    };
    for line in lines {
        let mut text = String::new();
        for (column, (cell, &width)) in line.iter().zip(&widths).enumerate() {
            if !shown(column) {
                continue;
            }
            let sep = if column == 0 { "" } else { "  " };
            match right.contains(&column) {
                true => text += &format!("{sep}{cell:>width$}"),
                false => text += &format!("{sep}{cell:<width$}"),
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

pub(super) const CSV_HEADER: [&str; 17] = [
    "name",
    "full_name",
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
    "hands",
    "questions",
    "answers",
];

pub(super) fn write_csv(rows: &[StudentRow], out: &mut dyn Write) -> Result<(), ReportError> {
    let mut csv = csv::Writer::from_writer(out);
    csv.write_record(CSV_HEADER)?;
    for r in rows {
        let moderation = [
            r.instructor.to_string(),
            r.moderation_actions.to_string(),
            r.kicked.to_string(),
            r.muted.to_string(),
        ];
        let mut row = cells(r, rfc3339, |ms| (ms / 1000).to_string(), &moderation);
        row.extend([
            r.hands.to_string(),
            r.questions.to_string(),
            r.answers.join("; "),
        ]);
        csv.write_record(row.iter().map(|cell| formula_guard(cell).into_owned()))?;
    }
    Ok(csv.flush()?)
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`,
/// `@`, TAB or CR) gets a leading `'`, so that it stays text. Room names such as
/// `-1-1` and `+a` are valid, and a student chooses them.
pub fn formula_guard(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        true => format!("'{cell}").into(),
        false => cell.into(),
    }
}

fn utc(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn rfc3339(ms: i64) -> String {
    utc(ms).to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(super) fn serialize_time<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*ms))
}

pub(super) fn serialize_secs<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_i64(ms / 1000)
}

/// `1h 02m 03s`, `2m 05s` or `12s`; whole seconds, rounded down.
pub(super) fn format_duration(ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s:02}s"),
        _ => format!("{h}h {m:02}m {s:02}s"),
    }
}
