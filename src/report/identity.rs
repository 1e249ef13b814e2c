//! Who is who: one pass over the events finds each session's names, and a
//! union-find over sessions and lower-cased names groups them into students.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::tally::{room_of, Tally, Where};
use super::{text, Filter, ReportError, StudentRow};

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
    pub(super) fn push_user_clause(&self, sql: &mut Where) {
        let ids: Vec<String> = self.sessions.iter().map(|s| s.id.to_string()).collect();
        let marks = vec!["?"; self.lower_names.len()].join(", ");
        let clause = format!(
            "(session IN ({}) OR (kind IN ('pm', 'kick', 'mute', 'unmute') \
             AND recipient COLLATE NOCASE IN ({marks})))",
            ids.join(", ")
        );
        sql.push(clause, self.lower_names.iter().cloned().map(Value::Text));
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

/// Groups sessions and names into students, from one pass over the table.
pub(super) fn load_identities(conn: &Connection) -> Result<Identities, ReportError> {
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

/// Reads the whole table once, in storage order and without sorting, keeping only
/// a few names per session: much faster than a `GROUP BY` at a million rows.
fn scan_sessions(conn: &Connection) -> Result<HashMap<i64, SessionSeen>, ReportError> {
    let mut stmt =
        conn.prepare("SELECT session, ts_ms, id, sender, kind, text, room FROM events")?;
    let mut sessions: HashMap<i64, SessionSeen> = HashMap::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (session, ts, id): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let seen = sessions.entry(session).or_insert_with(|| SessionSeen {
            first: ts,
            last: ts,
            names: Vec::new(),
            opped: false,
            stays: Vec::new(),
        });
        (seen.first, seen.last) = (seen.first.min(ts), seen.last.max(ts));
        seen.saw(text(row, 3)?.unwrap_or(""), (ts, id, 0));
        let room = text(row, 6)?.unwrap_or("");
        match (text(row, 4)?, text(row, 5)?) {
            (Some("nick"), Some(new_name)) => {
                // The new name outranks the old one at the same instant.
                seen.saw(new_name, (ts, id, 1));
            }
            (Some("op"), _) => seen.opped = true,
            (Some("join"), _) => seen.stays.push((room.to_owned(), ts, i64::MIN)),
            (Some("leave"), _) => {
                // A session's events are stored in order, so the open stay is its last.
                let mut open = seen.stays.iter_mut().rev();
                if let Some(stay) = open.find(|s| s.2 == i64::MIN && s.0 == room) {
                    stay.2 = ts;
                }
            }
            _ => {}
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
