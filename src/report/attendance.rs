//! Attendance (SPEC 11): who came to each class session, when, for how long,
//! and what they said; per ISO week; and the gradebook, one column per session.
//!
//! A session is scheduled (`[[class.sessions]]`, dated in the class's time zone
//! over the span of the record) or was started and ended by staff in a room
//! (`session` events; one never ended lasts until the room's next start or the
//! record's last event). A scheduled session without a room counts every room.
//!
//! The people are the students: everyone the record knows (grouped as the report
//! groups them) and everyone on the roster as a student, whether they came or
//! not, minus staff (an instructor or assistant on the roster, or anyone who was
//! an instructor on a connection). A student is present when online for at least
//! `class.present_percent` of the session or when they said anything in it (a
//! chat line, a `/me` or an `/ask`); late by the minutes from its start to their first
//! moment in it. Time online comes from the record: a connection still open
//! counts up to its last event so far.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::ops::ControlFlow;

use serde::Serialize;

use super::identity::{load_identities, Identities};
use super::output::formula_guard;
use super::tally::{room_of, window};
use super::{Filter, Format, ReportError};
use crate::class::{ClassConfig, ClassSession};
use crate::event::EventKind;
use crate::roster::RosterRole;
use crate::store::RecordRead;

const MINUTE: i64 = 60_000;

/// How an attendance report groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// One row per session and student.
    Session,
    /// One row per ISO week and student.
    Week,
}

/// One student in one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionRow {
    /// The session as the gradebook's column names it: its local start, title
    /// and room.
    pub session: String,
    /// The student's name, as the report names them.
    pub name: String,
    /// Their full name on the roster, if any.
    pub full_name: Option<String>,
    /// Present, by time online or by having said something.
    pub present: bool,
    /// Whole minutes online within the session (in its room, if it has one).
    pub minutes_online: i64,
    /// Whole minutes from the start to their first moment in it; `None` when
    /// absent.
    pub minutes_late: Option<i64>,
    /// Chat lines sent in the session (in its room, if it has one).
    pub messages: u64,
}

/// One student in one ISO week.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeekRow {
    /// `2026-W49`, in the class's time zone.
    pub week: String,
    /// The student's name.
    pub name: String,
    /// Their full name on the roster, if any.
    pub full_name: Option<String>,
    /// Sessions they were present at.
    pub attended: u64,
    /// Sessions held that week.
    pub sessions: u64,
    /// Chat lines sent that week.
    pub messages: u64,
    /// Words in them.
    pub words: u64,
}

/// The sessions, the students, and each student's record in each session.
struct Attendance {
    sessions: Vec<ClassSession>,
    students: Vec<Person>,
    /// `cells[student][session]`.
    cells: Vec<Vec<Cell>>,
    /// Per student: (week, messages, words) of their chat lines, by week.
    weeks: Vec<BTreeMap<String, (u64, u64)>>,
}

/// A student as attendance lists them.
struct Person {
    name: String,
    full_name: Option<String>,
    /// Index into the identities, for those the record knows.
    known: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Cell {
    present: bool,
    online_ms: i64,
    late_ms: Option<i64>,
    messages: u64,
}

/// One chat line or anonymous question, as attendance counts it (whose it is,
/// by the list it is kept in).
struct Line {
    ts: i64,
    room: String,
    words: u64,
    /// An `/ask`: saying something, not a message of the report's.
    question: bool,
}

/// Prints attendance `by` session or week in `format`.
pub fn write_attendance(
    records: &dyn RecordRead,
    filter: &Filter,
    class: &ClassConfig,
    by: By,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let attendance = attendance(records, filter, class)?;
    match by {
        By::Session => {
            let rows = attendance.session_rows(class);
            write_rows(&rows, format, out, |r| {
                vec![
                    r.session.clone(),
                    r.name.clone(),
                    r.full_name.clone().unwrap_or_default(),
                    if r.present { "yes" } else { "no" }.to_owned(),
                    r.minutes_online.to_string(),
                    r.minutes_late.map(|m| m.to_string()).unwrap_or_default(),
                    r.messages.to_string(),
                ]
            })
        }
        By::Week => {
            let rows = attendance.week_rows(class);
            write_rows(&rows, format, out, |r| {
                vec![
                    r.week.clone(),
                    r.name.clone(),
                    r.full_name.clone().unwrap_or_default(),
                    r.attended.to_string(),
                    r.sessions.to_string(),
                    r.messages.to_string(),
                    r.words.to_string(),
                ]
            })
        }
    }
}

/// Attendance as the instructor page draws it: students × sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grid {
    /// The sessions' labels, as the gradebook's columns name them.
    pub sessions: Vec<String>,
    /// One row per student.
    pub students: Vec<GridRow>,
}

/// One student's row of the [`Grid`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GridRow {
    /// The student's name.
    pub name: String,
    /// Their full name on the roster, if any.
    pub full_name: Option<String>,
    /// Present at each session, in the grid's order.
    pub present: Vec<bool>,
}

/// The attendance grid of the filter's sessions and students.
pub fn attendance_grid(
    records: &dyn RecordRead,
    filter: &Filter,
    class: &ClassConfig,
) -> Result<Grid, ReportError> {
    let attendance = attendance(records, filter, class)?;
    Ok(Grid {
        sessions: attendance
            .sessions
            .iter()
            .map(|s| label(class, s))
            .collect(),
        students: attendance
            .students
            .iter()
            .zip(&attendance.cells)
            .map(|(person, cells)| GridRow {
                name: person.name.clone(),
                full_name: person.full_name.clone(),
                present: cells.iter().map(|c| c.present).collect(),
            })
            .collect(),
    })
}

/// Prints the gradebook: a CSV with one row per student and one column per
/// session, 1 for present and 0 for absent, then the total attended.
pub fn write_gradebook(
    records: &dyn RecordRead,
    filter: &Filter,
    class: &ClassConfig,
    out: &mut dyn Write,
) -> Result<(), ReportError> {
    let attendance = attendance(records, filter, class)?;
    let mut csv = csv::Writer::from_writer(out);
    let mut header = vec!["name".to_owned(), "full_name".to_owned()];
    header.extend(attendance.sessions.iter().map(|s| label(class, s)));
    header.push("attended".to_owned());
    csv.write_record(header.iter().map(|c| formula_guard(c).into_owned()))?;
    for (person, cells) in attendance.students.iter().zip(&attendance.cells) {
        let mut row = vec![
            person.name.clone(),
            person.full_name.clone().unwrap_or_default(),
        ];
        row.extend(cells.iter().map(|c| u8::from(c.present).to_string()));
        row.push(cells.iter().filter(|c| c.present).count().to_string());
        csv.write_record(row.iter().map(|c| formula_guard(c).into_owned()))?;
    }
    Ok(csv.flush()?)
}

/// A session as a column names it: `2026-11-30 10:00 Lecture #lecture`.
fn label(class: &ClassConfig, session: &ClassSession) -> String {
    let mut label = class.timezone.minute_of(session.start_ms);
    if let Some(title) = &session.title {
        label = format!("{label} {title}");
    }
    if let Some(room) = &session.room {
        label = format!("{label} #{room}");
    }
    label
}

impl Attendance {
    fn session_rows(&self, class: &ClassConfig) -> Vec<SessionRow> {
        let mut rows = Vec::new();
        for (s, session) in self.sessions.iter().enumerate() {
            let label = label(class, session);
            for (person, cells) in self.students.iter().zip(&self.cells) {
                let cell = cells[s];
                rows.push(SessionRow {
                    session: label.clone(),
                    name: person.name.clone(),
                    full_name: person.full_name.clone(),
                    present: cell.present,
                    minutes_online: cell.online_ms / MINUTE,
                    minutes_late: cell.late_ms.map(|ms| ms / MINUTE),
                    messages: cell.messages,
                });
            }
        }
        rows
    }

    fn week_rows(&self, class: &ClassConfig) -> Vec<WeekRow> {
        let session_weeks: Vec<Option<String>> = self
            .sessions
            .iter()
            .map(|s| iso_week(class, s.start_ms))
            .collect();
        let mut held: BTreeMap<String, u64> = BTreeMap::new();
        for week in session_weeks.iter().flatten() {
            *held.entry(week.clone()).or_default() += 1;
        }
        let mut weeks: Vec<String> = held.keys().cloned().collect();
        weeks.extend(self.weeks.iter().flat_map(|w| w.keys().cloned()));
        weeks.sort();
        weeks.dedup();
        let mut rows = Vec::new();
        for week in &weeks {
            for (i, person) in self.students.iter().enumerate() {
                let attended = self.cells[i]
                    .iter()
                    .zip(&session_weeks)
                    .filter(|(c, w)| c.present && w.as_ref() == Some(week))
                    .count() as u64;
                let (messages, words) = self.weeks[i].get(week).copied().unwrap_or_default();
                rows.push(WeekRow {
                    week: week.clone(),
                    name: person.name.clone(),
                    full_name: person.full_name.clone(),
                    attended,
                    sessions: held.get(week).copied().unwrap_or_default(),
                    messages,
                    words,
                });
            }
        }
        rows
    }
}

/// Reads the record once for the sessions staff ran and the chat lines, and
/// works out every student's record in every session.
fn attendance(
    records: &dyn RecordRead,
    filter: &Filter,
    class: &ClassConfig,
) -> Result<Attendance, ReportError> {
    let _snapshot = records.snapshot()?;
    let ids = load_identities(records)?;
    let members = records.members()?;
    let only = match &filter.user {
        Some(user) => match ids.find(user) {
            Some(student) => Some(student),
            None => return Ok(Attendance::empty()),
        },
        None => None,
    };
    let mut span = (i64::MAX, i64::MIN);
    let mut started: Vec<Started> = Vec::new();
    // Each student's lines apart, in time order: a cell looks at one student's
    // lines in one session's window, not at the whole term's.
    let mut lines: HashMap<usize, Vec<Line>> = HashMap::new();
    // Every event counts for the span and the sessions, whatever the room: a
    // scheduled session is the whole class's unless it names a room.
    let selection = crate::store::Selection {
        room: None,
        in_order: true,
        skip_erase: true,
        ..window(filter)
    };
    records.each_event(&selection, &mut |event| {
        span = (span.0.min(event.ts_ms), span.1.max(event.ts_ms));
        match event.kind() {
            Some(EventKind::Session) => {
                let text = event.text.unwrap_or_default();
                if let Some(rest) = text.strip_prefix("start") {
                    let title = rest.strip_prefix(": ").map(str::to_owned);
                    started.push(Started {
                        room: event.room.to_owned(),
                        start: event.ts_ms,
                        end: None,
                        title,
                    });
                } else if text == "end" {
                    let last = started.iter_mut().rev().find(|s| s.room == event.room);
                    if let Some(s) = last.filter(|s| s.end.is_none()) {
                        s.end = Some(event.ts_ms);
                    }
                }
            }
            Some(kind @ (EventKind::Chat | EventKind::Action | EventKind::Ask)) => {
                if let Some(student) = ids.by_session.get(&event.session) {
                    lines.entry(*student).or_default().push(Line {
                        ts: event.ts_ms,
                        room: event.room.to_owned(),
                        words: event.text.unwrap_or("").split_whitespace().count() as u64,
                        question: kind == EventKind::Ask,
                    });
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    if span.0 > span.1 {
        return Ok(Attendance::empty());
    }
    for own in lines.values_mut() {
        own.sort_by_key(|l| l.ts);
    }
    let sessions = sessions(class, filter, span, started);
    let students = people(&ids, &members, only);
    let room = room_of(filter);
    let mut cells = Vec::with_capacity(students.len());
    let mut weeks = Vec::with_capacity(students.len());
    for person in &students {
        let own = person
            .known
            .and_then(|student| lines.get(&student))
            .map_or(&[][..], Vec::as_slice);
        let mut row = Vec::with_capacity(sessions.len());
        for session in &sessions {
            row.push(cell(&ids, person, session, own, class.present_percent));
        }
        cells.push(row);
        let mut by_week: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for line in own.iter().filter(|l| !l.question) {
            if room.as_ref().is_some_and(|r| *r != line.room) {
                continue;
            }
            let Some(week) = iso_week(class, line.ts) else {
                continue;
            };
            let entry = by_week.entry(week).or_default();
            (entry.0, entry.1) = (entry.0 + 1, entry.1 + line.words);
        }
        weeks.push(by_week);
    }
    Ok(Attendance {
        sessions,
        students,
        cells,
        weeks,
    })
}

impl Attendance {
    fn empty() -> Attendance {
        Attendance {
            sessions: Vec::new(),
            students: Vec::new(),
            cells: Vec::new(),
            weeks: Vec::new(),
        }
    }
}

/// A session staff started, as the record tells it.
struct Started {
    room: String,
    start: i64,
    end: Option<i64>,
    title: Option<String>,
}

/// The scheduled sessions that began within the record's span and the ones
/// staff ran, those of the filter's room (or of every room), in order.
fn sessions(
    class: &ClassConfig,
    filter: &Filter,
    (first, last): (i64, i64),
    started: Vec<Started>,
) -> Vec<ClassSession> {
    let mut sessions = class.scheduled_between(first, last.saturating_add(1));
    for (i, s) in started.iter().enumerate() {
        // Never ended: until the room's next start, or the record's end.
        let next = started[i + 1..].iter().find(|n| n.room == s.room);
        let end = s.end.or(next.map(|n| n.start)).unwrap_or(last).max(s.start);
        sessions.push(ClassSession {
            start_ms: s.start,
            end_ms: end,
            room: Some(s.room.clone()),
            title: s.title.clone(),
        });
    }
    let room = room_of(filter);
    sessions.retain(|s| {
        s.end_ms > s.start_ms
            && room
                .as_ref()
                .is_none_or(|room| s.room.as_ref().is_none_or(|r| r == room))
            && filter.until.is_none_or(|until| s.start_ms < until)
            && filter.since.is_none_or(|since| s.end_ms > since)
    });
    sessions.sort_by_key(|s| (s.start_ms, s.room.clone()));
    sessions
}

/// The students: those the record knows and the roster's students who never
/// came, without staff, sorted by name.
fn people(ids: &Identities, members: &[crate::roster::Member], only: Option<usize>) -> Vec<Person> {
    let role_of: HashMap<String, RosterRole> = members
        .iter()
        .map(|m| (m.name.to_ascii_lowercase(), m.role))
        .collect();
    let mut people = Vec::new();
    for (i, student) in ids.students.iter().enumerate() {
        let rostered_staff = student
            .account()
            .and_then(|a| role_of.get(a))
            .is_some_and(|role| *role != RosterRole::Student);
        if rostered_staff || student.was_instructor() || only.is_some_and(|o| o != i) {
            continue;
        }
        people.push(Person {
            name: student.name().to_owned(),
            full_name: student.full_name().map(str::to_owned),
            known: Some(i),
        });
    }
    if only.is_none() {
        for member in members.iter().filter(|m| m.role == RosterRole::Student) {
            if ids.find(&member.name).is_none() {
                people.push(Person {
                    name: member.name.clone(),
                    full_name: member.full_name.clone().filter(|f| !f.is_empty()),
                    known: None,
                });
            }
        }
    }
    people.sort_by_cached_key(|p| (p.name.to_ascii_lowercase(), p.name.clone()));
    people
}

/// `2026-W49`: the ISO week of the moment `ms` in the class's time zone.
fn iso_week(class: &ClassConfig, ms: i64) -> Option<String> {
    let week = chrono::Datelike::iso_week(&class.timezone.date_of(ms)?);
    Some(format!("{}-W{:02}", week.year(), week.week()))
}

/// One student's record in one session; `own` are their lines in time order.
fn cell(
    ids: &Identities,
    person: &Person,
    session: &ClassSession,
    own: &[Line],
    present_percent: u32,
) -> Cell {
    let Some(student) = person.known else {
        return Cell::default();
    };
    let within = Filter {
        room: session.room.clone(),
        user: None,
        since: Some(session.start_ms),
        until: Some(session.end_ms),
    };
    let spans = ids.students[student].online_within(&within);
    let online_ms: i64 = spans.iter().map(|(from, to)| to - from).sum();
    let from = own.partition_point(|l| l.ts < session.start_ms);
    let said: Vec<&Line> = own[from..]
        .iter()
        .take_while(|l| l.ts < session.end_ms)
        .filter(|l| session.room.as_ref().is_none_or(|r| *r == l.room))
        .collect();
    let length = session.end_ms - session.start_ms;
    let present = online_ms * 100 >= i64::from(present_percent) * length || !said.is_empty();
    let first = spans
        .first()
        .map(|s| s.0)
        .into_iter()
        .chain(said.first().map(|l| l.ts))
        .min();
    Cell {
        present,
        online_ms,
        late_ms: first
            .filter(|_| present)
            .map(|first| (first - session.start_ms).max(0)),
        messages: said.iter().filter(|l| !l.question).count() as u64,
    }
}

/// Prints `rows` as a table, CSV or JSON, with the columns `cells` gives.
fn write_rows<T: Serialize + HasHeader>(
    rows: &[T],
    format: Format,
    out: &mut dyn Write,
    cells: impl Fn(&T) -> Vec<String>,
) -> Result<(), ReportError> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut *out);
            csv.write_record(T::CSV_HEADER)?;
            for row in rows {
                csv.write_record(cells(row).iter().map(|c| formula_guard(c).into_owned()))?;
            }
            csv.flush()?;
        }
        Format::Table => {
            let mut lines = vec![T::TABLE_HEADER.iter().map(|h| h.to_string()).collect()];
            lines.extend(rows.iter().map(&cells));
            super::output::print_aligned(&lines, T::RIGHT_ALIGNED, out)?;
            if rows.is_empty() {
                writeln!(out, "(no sessions or students match)")?;
            }
        }
    }
    Ok(out.flush()?)
}

/// The column names of a kind of row.
trait HasHeader {
    const CSV_HEADER: &'static [&'static str];
    const TABLE_HEADER: &'static [&'static str];
    /// The columns that hold numbers.
    const RIGHT_ALIGNED: &'static [usize];
}

impl HasHeader for SessionRow {
    const CSV_HEADER: &'static [&'static str] = &[
        "session",
        "name",
        "full_name",
        "present",
        "minutes_online",
        "minutes_late",
        "messages",
    ];
    const TABLE_HEADER: &'static [&'static str] = &[
        "session",
        "name",
        "full name",
        "present",
        "online",
        "late",
        "messages",
    ];
    const RIGHT_ALIGNED: &'static [usize] = &[4, 5, 6];
}

impl HasHeader for WeekRow {
    const CSV_HEADER: &'static [&'static str] = &[
        "week",
        "name",
        "full_name",
        "attended",
        "sessions",
        "messages",
        "words",
    ];
    const TABLE_HEADER: &'static [&'static str] = &[
        "week",
        "name",
        "full name",
        "attended",
        "sessions",
        "messages",
        "words",
    ];
    const RIGHT_ALIGNED: &'static [usize] = &[3, 4, 5, 6];
}
