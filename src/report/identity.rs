//! Who is who: one pass over the events finds each session's names, and groups
//! sessions into students (SPEC 3): by roster account where the class has a
//! roster, else by the name given at log-in. A name taken later by someone else,
//! with `/nick` or a new connection, never merges two students; the names a
//! student went by are listed as their other names.

use std::collections::HashMap;
use std::ops::ControlFlow;

use super::tally::{room_of, Students, Tally};
use super::{Filter, ReportError, StudentRow};
use crate::store::{RecordRead, Selection, StudentKeys};

/// Every student in the database, with the sessions and names that make them up.
#[derive(Default)]
pub(super) struct Identities {
    pub(super) students: Vec<Student>,
    pub(super) by_session: HashMap<i64, usize>,
    by_name: HashMap<String, usize>,
}

/// One student's identity, independent of any filter.
#[derive(Default)]
pub(super) struct Student {
    name: String,
    /// The roster account (lower-cased), where the class has a roster.
    account: Option<String>,
    /// The account's full name on the roster.
    full_name: Option<String>,
    other_names: Vec<String>,
    lower_names: Vec<String>,
    sessions: Vec<SessionSpan>,
}

/// One connection of a student, as far as time online and the role go.
struct SessionSpan {
    id: i64,
    /// First and last event of the connection, UTC milliseconds.
    first: i64,
    last: i64,
    /// Whether the student became an instructor during this connection.
    opped: bool,
    /// Each stay in a room: (room, joined, left), left being the connection's last
    /// event when no leave was recorded.
    stays: Vec<(String, i64, i64)>,
}

/// When a spelling of a name was last used: (ts, id, 1 if it is a nick's new name).
type Recency = (i64, i64, u8);

impl Identities {
    pub(super) fn find(&self, name: &str) -> Option<usize> {
        self.by_name.get(&name.trim().to_ascii_lowercase()).copied()
    }
}

impl Students for Identities {
    fn of_session(&self, session: i64) -> Option<usize> {
        self.by_session.get(&session).copied()
    }

    fn named(&self, name: &str) -> Option<usize> {
        self.find(name)
    }
}

impl Student {
    /// Takes the student's key (account or login name, lower-cased) in its most
    /// recent spelling as the name, and every other name used, sorted, as other
    /// names.
    fn name_from(&mut self, names: HashMap<String, (Recency, &str)>, key: &str) {
        let mut others = Vec::new();
        for (lower, (_, spelling)) in names {
            if lower == key {
                self.name = spelling.to_owned();
            } else {
                others.push(spelling.to_owned());
            }
        }
        if self.name.is_empty() {
            self.name = key.to_owned();
        }
        others.sort_by_cached_key(|n| (n.to_ascii_lowercase(), n.clone()));
        self.other_names = others;
    }

    /// What selects the student's own events (from any of their sessions) and
    /// the events aimed at them (see [`Selection::student`]).
    pub(super) fn keys(&self) -> StudentKeys {
        StudentKeys {
            sessions: self.sessions.iter().map(|s| s.id).collect(),
            names: self.lower_names.clone(),
        }
    }

    /// Who the student is, for `export` and `erase`.
    pub(super) fn scope(&self) -> super::StudentScope {
        let mut names = self.lower_names.clone();
        names.sort();
        super::StudentScope {
            name: self.name.clone(),
            other_names: self.other_names.clone(),
            names,
            sessions: self.sessions.iter().map(|s| s.id).collect(),
        }
    }

    /// The name the report shows.
    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The roster account, lower-cased, where the class has a roster.
    pub(super) fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    /// The full name on the roster.
    pub(super) fn full_name(&self) -> Option<&str> {
        self.full_name.as_deref()
    }

    /// Whether the student was an instructor on any connection.
    pub(super) fn was_instructor(&self) -> bool {
        self.sessions.iter().any(|s| s.opped)
    }

    /// The stretches the student was online within the filter (in its room, if
    /// any), merged where connections overlap.
    pub(super) fn online_within(&self, filter: &Filter) -> Vec<(i64, i64)> {
        online(&self.sessions, filter)
    }

    /// Whether the student was online at all within the filter, which lists them
    /// even if they said nothing.
    pub(super) fn was_online(&self, filter: &Filter) -> bool {
        !online(&self.sessions, filter).is_empty()
    }

    /// The rooms the student stayed in for a while within the filter.
    fn rooms_online<'a>(&'a self, filter: &'a Filter) -> impl Iterator<Item = String> + 'a {
        let (since, until) = (
            filter.since.unwrap_or(i64::MIN),
            filter.until.unwrap_or(i64::MAX),
        );
        let room = room_of(filter);
        self.sessions
            .iter()
            .flat_map(|s| &s.stays)
            .filter(move |(r, from, to)| {
                room.as_ref().is_none_or(|room| room == r) && (*from).max(since) < (*to).min(until)
            })
            .map(|(r, _, _)| r.clone())
    }

    pub(super) fn row(&self, tally: Tally, filter: &Filter) -> StudentRow {
        let spans = online(&self.sessions, filter);
        let online_ms = spans.iter().map(|(from, to)| to - from).sum();
        // Seen = an event of theirs or a moment online, so online time always fits
        // between first and last seen.
        let first_seen_ms = spans
            .first()
            .map_or(tally.first_ms, |s| s.0.min(tally.first_ms));
        let last_seen_ms = spans
            .last()
            .map_or(tally.last_ms, |s| s.1.max(tally.last_ms));
        // A role lasts for the whole connection: an /op before the window (or
        // in another room) still marks what the student did within it.
        let counted = |s: &SessionSpan| {
            tally.sessions.contains(&s.id) || !online(std::slice::from_ref(s), filter).is_empty()
        };
        let instructor = tally.instructor || self.sessions.iter().any(|s| s.opped && counted(s));
        let mut rooms = tally.rooms;
        rooms.extend(self.rooms_online(filter));
        StudentRow {
            name: self.name.clone(),
            full_name: self.full_name.clone(),
            messages: tally.messages,
            private_messages: tally.private_messages,
            words: tally.words,
            rooms: rooms.into_iter().collect(),
            first_seen_ms,
            last_seen_ms,
            online_ms,
            instructor,
            moderation_actions: tally.moderation_actions,
            kicked: tally.kicked,
            muted: tally.muted,
            other_names: self.other_names.clone(),
            hands: tally.hands,
            questions: tally.questions,
            answers: tally
                .answers
                .iter()
                .map(|(poll, answer)| format!("{poll}: {answer}"))
                .collect(),
        }
    }
}

/// The stretches online within the filter, merged where connections overlap.
/// Without a room a stretch is a whole connection (its first to its last event);
/// with a room, each stay in that room (its join to its leave). The window cuts
/// them.
fn online(sessions: &[SessionSpan], filter: &Filter) -> Vec<(i64, i64)> {
    let (since, until) = (
        filter.since.unwrap_or(i64::MIN),
        filter.until.unwrap_or(i64::MAX),
    );
    let room = room_of(filter);
    let mut spans: Vec<(i64, i64)> = sessions
        .iter()
        .flat_map(|s| match &room {
            None => vec![(s.first, s.last)],
            Some(room) => s
                .stays
                .iter()
                .filter(|(r, _, _)| r == room)
                .map(|&(_, from, to)| (from, to))
                .collect(),
        })
        .map(|(from, to)| (from.max(since), to.min(until)))
        .filter(|(from, to)| from < to)
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(spans.len());
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

/// Groups sessions into students, from one pass over the table.
pub(super) fn load_identities(records: &dyn RecordRead) -> Result<Identities, ReportError> {
    let sessions = scan_sessions(records)?;
    let mut ids = Identities::default();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    // Per student: each lower-cased name it used, with its most recent spelling.
    let mut spellings: Vec<HashMap<String, (Recency, &str)>> = Vec::new();
    let mut order: Vec<(&i64, &SessionSeen)> = sessions.iter().collect();
    order.sort_unstable_by_key(|(session, _)| **session);
    for (&session, seen) in order {
        let key = seen
            .account
            .as_deref()
            .unwrap_or(&seen.login)
            .to_ascii_lowercase();
        let next = ids.students.len();
        let student = *by_key.entry(key).or_insert(next);
        if student == next {
            ids.students.push(Student::default());
            spellings.push(HashMap::new());
        }
        let mut stays = seen.stays.clone();
        for stay in stays.iter_mut().filter(|stay| stay.2 == i64::MIN) {
            stay.2 = seen.last;
        }
        ids.students[student].sessions.push(SessionSpan {
            id: session,
            first: seen.first,
            last: seen.last,
            opped: seen.opped,
            stays,
        });
        ids.by_session.insert(session, student);
        if let Some(account) = &seen.account {
            ids.students[student].account = Some(account.to_ascii_lowercase());
            // The roster's spelling names the student, above any later nick.
            let newest = (i64::MAX, i64::MAX, u8::MAX);
            spellings[student].insert(account.to_ascii_lowercase(), (newest, account));
        }
        for (name, when) in &seen.names {
            let used = spellings[student]
                .entry(name.to_ascii_lowercase())
                .or_insert((*when, name));
            if *when > used.0 {
                *used = (*when, name);
            }
        }
    }
    // `--user` finds a student by the name they are counted under first, then by
    // any other name they went by.
    for (student, names) in spellings.iter().enumerate() {
        for lower in names.keys() {
            ids.students[student].lower_names.push(lower.clone());
            if !by_key.contains_key(lower) {
                ids.by_name.entry(lower.clone()).or_insert(student);
            }
        }
    }
    let mut keys = vec![String::new(); ids.students.len()];
    for (key, student) in by_key {
        ids.by_name.insert(key.clone(), student);
        keys[student] = key;
    }
    for ((student, names), key) in ids.students.iter_mut().zip(spellings).zip(keys) {
        student.name_from(names, &key);
    }
    let full_names = roster_full_names(records)?;
    for student in &mut ids.students {
        student.full_name = student
            .account
            .as_ref()
            .and_then(|account| full_names.get(account).cloned());
    }
    Ok(ids)
}

/// The roster's full names by lower-cased account. A person removed from the
/// roster since keeps their rows, without a full name.
fn roster_full_names(records: &dyn RecordRead) -> Result<HashMap<String, String>, ReportError> {
    Ok(records
        .members()?
        .into_iter()
        .filter_map(|m| {
            let full_name = m.full_name.filter(|f| !f.is_empty())?;
            Some((m.name.to_ascii_lowercase(), full_name))
        })
        .collect())
}

/// One session as the identity pass saw it: its first and last event, its
/// log-in name and account, and each spelling used in it with when it was last
/// used.
struct SessionSeen {
    first: i64,
    last: i64,
    /// The name given at log-in: the sender of the session's first event.
    login: String,
    /// The roster account, where the class had a roster.
    account: Option<String>,
    names: Vec<(String, Recency)>,
    opped: bool,
    /// (room, joined, left); left is `i64::MIN` while no leave has been seen.
    stays: Vec<(String, i64, i64)>,
}

impl SessionSeen {
    fn saw(&mut self, name: &str, when: Recency) {
        match self.names.iter_mut().find(|(n, _)| n == name) {
            Some((_, last)) => *last = when.max(*last),
            None => self.names.push((name.to_owned(), when)),
        }
    }
}

/// Reads the whole record once, in its order, keeping only a few names per
/// session: much faster than a `GROUP BY` at a million rows. A session's events
/// are recorded in the order they happened, so its first is its log-in. An
/// `erase` is an operator's, from no session, so it is no one's.
fn scan_sessions(records: &dyn RecordRead) -> Result<HashMap<i64, SessionSeen>, ReportError> {
    let mut sessions: HashMap<i64, SessionSeen> = HashMap::new();
    let everything = Selection {
        skip_erase: true,
        in_order: true,
        ..Selection::default()
    };
    records.each_event(&everything, &mut |event| {
        let (session, ts, id) = (event.session, event.ts_ms, event.order);
        let sender = event.sender;
        let seen = sessions.entry(session).or_insert_with(|| SessionSeen {
            first: ts,
            last: ts,
            login: sender.to_owned(),
            account: None,
            names: Vec::new(),
            opped: false,
            stays: Vec::new(),
        });
        (seen.first, seen.last) = (seen.first.min(ts), seen.last.max(ts));
        if seen.account.is_none() {
            seen.account = event.account.filter(|a| !a.is_empty()).map(str::to_owned);
        }
        seen.saw(sender, (ts, id, 0));
        let room = event.room;
        match (event.kind, event.text) {
            ("nick", Some(new_name)) => {
                // The new name outranks the old one at the same instant.
                seen.saw(new_name, (ts, id, 1));
            }
            ("op", _) => seen.opped = true,
            ("join", _) => seen.stays.push((room.to_owned(), ts, i64::MIN)),
            ("leave", _) => {
                // A session's events are recorded in order, so the open stay is its last.
                let mut open = seen.stays.iter_mut().rev();
                if let Some(stay) = open.find(|s| s.2 == i64::MIN && s.0 == room) {
                    stay.2 = ts;
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    })?;
    Ok(sessions)
}
