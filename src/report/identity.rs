//! Who is who: one pass over the events finds each session's names, and a
//! union-find over sessions and lower-cased names groups them into students.

use std::collections::HashMap;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::tally::{Tally, Where};
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
    /// (session, first event ms, last event ms)
    sessions: Vec<(i64, i64, i64)>,
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
        let ids: Vec<String> = self.sessions.iter().map(|s| s.0.to_string()).collect();
        let marks = vec!["?"; self.lower_names.len()].join(", ");
        let clause = format!(
            "(session IN ({}) OR (kind IN ('pm', 'kick', 'mute', 'unmute') \
             AND recipient COLLATE NOCASE IN ({marks})))",
            ids.join(", ")
        );
        sql.push(clause, self.lower_names.iter().cloned().map(Value::Text));
    }

    pub(super) fn row(&self, tally: Tally, filter: &Filter) -> StudentRow {
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
