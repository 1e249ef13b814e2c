//! Each room's last chat lines, in memory, for replay on join.
//!
//! Loaded from the record at start-up and kept current by the hub as lines are
//! said, so a replay never waits for the disk and always includes a line said just
//! before the join, even one still on its way to the database.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::event::HistoryLine;
use crate::protocol::Name;

/// The tails of every room that has history; see the module docs.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct History {
    /// Lines kept per room.
    keep: usize,
    rooms: HashMap<Name, VecDeque<HistoryLine>>,
}

impl History {
    /// Empty tails of at most `keep` lines each (0 keeps nothing).
    pub fn new(keep: usize) -> History {
        History {
            keep,
            rooms: HashMap::new(),
        }
    }

    /// Tails loaded from the record: each room's lines, oldest first.
    pub fn loaded(
        keep: usize,
        rooms: impl IntoIterator<Item = (Name, Vec<HistoryLine>)>,
    ) -> History {
        let mut history = History::new(keep);
        for (room, lines) in rooms {
            for line in lines {
                history.push(&room, line);
            }
        }
        history
    }

    /// Keeps at most `keep` lines per room from now on (a snapshot taken under
    /// another `history.replay_lines`).
    pub fn limit(&mut self, keep: usize) {
        self.keep = keep;
        self.rooms.retain(|_, tail| {
            while tail.len() > keep {
                tail.pop_front();
            }
            !tail.is_empty()
        });
    }

    /// Adds the newest line of `room`, forgetting the oldest beyond the limit.
    pub fn push(&mut self, room: &Name, line: HistoryLine) {
        if self.keep == 0 {
            return;
        }
        let tail = self.rooms.entry(room.clone()).or_default();
        if tail.len() == self.keep {
            tail.pop_front();
        }
        tail.push_back(line);
    }

    /// The last `count` lines of `room`, oldest first.
    pub fn last(&self, room: &str, count: usize) -> Vec<HistoryLine> {
        let Some(tail) = self.rooms.get(room) else {
            return Vec::new();
        };
        tail.iter()
            .skip(tail.len().saturating_sub(count))
            .cloned()
            .collect()
    }

    /// Forgets the lines whose `(room, ts_ms, sender)` is in `erased`: words erased
    /// from the record (SPEC 12) are not replayed to the next joiner either.
    /// Returns how many lines were removed.
    pub fn forget(&mut self, erased: &HashSet<(String, i64, String)>) -> usize {
        let mut removed = 0;
        for (room, tail) in &mut self.rooms {
            let before = tail.len();
            tail.retain(|line| {
                !erased.contains(&(room.to_string(), line.ts_ms, line.sender.to_string()))
            });
            removed += before - tail.len();
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts_ms: i64, sender: &str) -> HistoryLine {
        HistoryLine {
            ts_ms,
            sender: sender.into(),
            text: "words".into(),
            action: false,
        }
    }

    #[test]
    fn forget_removes_only_the_erased_lines() {
        let (lobby, lab): (Name, Name) = ("lobby".into(), "lab".into());
        let mut history = History::loaded(
            10,
            [
                (
                    lobby.clone(),
                    vec![line(1, "amy"), line(2, "bo"), line(3, "amy")],
                ),
                (lab.clone(), vec![line(1, "amy")]),
            ],
        );
        // amy's line at 1 in the lobby and at 3; the same name and time in the
        // lab is another line, not erased.
        let erased: HashSet<(String, i64, String)> = [
            ("lobby".into(), 1, "amy".into()),
            ("lobby".into(), 3, "amy".into()),
        ]
        .into();
        assert_eq!(history.forget(&erased), 2);
        assert_eq!(history.last("lobby", 10), [line(2, "bo")]);
        assert_eq!(history.last("lab", 10), [line(1, "amy")]);
        assert_eq!(history.forget(&erased), 0);
    }
}
