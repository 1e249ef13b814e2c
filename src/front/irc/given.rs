//! What each IRC user was already given of each room, for the server's run: an
//! IRC client keeps what it was shown, so a rejoin or a reconnect replays only
//! the lines it missed (SPEC 7), where the line port replays the last lines
//! whatever was seen.
//!
//! Kept by name, since a reconnect is a new connection under the same name,
//! and in memory only: after a restart everyone gets the replay again.

use std::collections::HashMap;
use std::sync::Mutex;

/// A line: when it was said, and its id (lines of one millisecond differ by it).
pub type Said = (i64, String);

/// The newest chat line (or action) each name was given in each room.
#[derive(Debug, Default)]
pub struct Given {
    newest: Mutex<HashMap<(String, String), Said>>,
}

impl Given {
    /// The newest line `nick` was given in `room`, if any was.
    pub fn newest(&self, nick: &str, room: &str) -> Option<Said> {
        let key = (nick.to_ascii_lowercase(), room.to_owned());
        self.lock().get(&key).cloned()
    }

    /// `nick` was given the lines of `room` up to `said`.
    pub fn record(&self, nick: &str, room: &str, said: Said) {
        let key = (nick.to_ascii_lowercase(), room.to_owned());
        let mut newest = self.lock();
        match newest.get(&key) {
            Some(kept) if kept.0 > said.0 => {}
            _ => {
                newest.insert(key, said);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Said>> {
        // A map of times: whatever a panic left in it is still a fine answer.
        self.newest.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_per_name_and_room() {
        let given = Given::default();
        given.record("Ann", "lobby", (5, "b".into()));
        given.record("ann", "lobby", (3, "a".into()));
        assert_eq!(given.newest("ANN", "lobby"), Some((5, "b".into())));
        assert_eq!(given.newest("ann", "lab"), None);
    }
}
