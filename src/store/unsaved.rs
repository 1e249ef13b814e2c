//! Events that a failing database refused: `DATABASE.unsaved.jsonl`, one JSON
//! object a line, imported at the next start.
//!
//! The writer appends events to it as they wait for a locked or full database
//! ([`Spill`]), not only when the server stops, so a `kill -9` during a long lock
//! loses at most the events of one write attempt. The file's first line names its
//! generation; the database counts, in the same transactions as it takes them,
//! how many of that generation's events it has, and the next start imports only
//! the rest.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

use crate::event::Event;

/// The unsaved-events file of `database`, beside it.
pub fn unsaved_path(database: &Path) -> PathBuf {
    let mut name = OsString::from(database.as_os_str());
    name.push(".unsaved.jsonl");
    PathBuf::from(name)
}

/// Appends `events` to `path` and syncs it (and its folder, for a new file) before
/// returning: once this says yes, the server may exit.
pub fn save(path: &Path, events: &[Event]) -> io::Result<()> {
    let mut text = Vec::with_capacity(events.len() * 128);
    for event in events {
        serde_json::to_writer(&mut text, event)?;
        text.push(b'\n');
    }
    let existed = path.exists();
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(&text)?;
    file.sync_all()?;
    if !existed {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    Ok(())
}

/// What an unsaved-events file holds.
#[derive(Debug, Default)]
pub struct Saved {
    /// The generation named in its first line (none in a file written at
    /// shutdown only by an older version).
    pub generation: Option<String>,
    /// Its events, in order.
    pub events: Vec<Event>,
}

/// The first line of a file written while the server runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    unsaved_generation: String,
}

/// The events in `path`, in order; none if there is no such file. A line that is
/// not an event is an error naming it: guessing could lose or invent a grade.
pub fn load(path: &Path) -> io::Result<Saved> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(err) => return Err(err),
    };
    let mut saved = Saved::default();
    for (number, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if number == 0 {
            if let Ok(header) = serde_json::from_str::<Header>(&line) {
                saved.generation = Some(header.unsaved_generation);
                continue;
            }
        }
        let event = serde_json::from_str(&line).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {err}", number + 1),
            )
        })?;
        saved.events.push(event);
    }
    Ok(saved)
}

/// The writer's copy of the events the database has not taken yet, kept in the
/// unsaved-events file while the database refuses them.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    /// The file's generation, while this run has a file.
    generation: Option<String>,
    /// How many of the oldest pending events are in the file.
    in_file: usize,
}

impl Spill {
    /// No file yet; `path` is where one goes.
    pub fn new(path: PathBuf) -> Spill {
        Spill {
            path,
            generation: None,
            in_file: 0,
        }
    }

    /// Appends the events of `pending` not yet in the file, and syncs.
    pub fn keep(&mut self, pending: &[Event]) -> io::Result<()> {
        let Some(new) = pending.get(self.in_file..).filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        if self.generation.is_none() {
            let generation = format!("{:016x}", rand_u64());
            let header = Header {
                unsaved_generation: generation.clone(),
            };
            let mut line = serde_json::to_vec(&header)?;
            line.push(b'\n');
            // A file left by a run that could not even import it is kept: ours
            // goes after it, and the next start reads both.
            write_synced(&self.path, &line)?;
            self.generation = Some(generation);
        }
        save(&self.path, new)?;
        self.in_file = pending.len();
        Ok(())
    }

    /// What the next write of `count` events from the front of the pending ones
    /// takes from the file: its generation and how many of them it holds.
    pub fn taking(&self, count: usize) -> Option<(&str, usize)> {
        let generation = self.generation.as_deref()?;
        Some((generation, count.min(self.in_file)))
    }

    /// `count` events from the front were committed (with [`Spill::taking`]);
    /// once the file holds none that are not, it is removed.
    pub fn committed(&mut self, count: usize) {
        self.in_file -= count.min(self.in_file);
        if self.in_file == 0 && self.generation.take().is_some() {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::warn!(%err, path = %self.path.display(), "cannot remove the unsaved-events file; its events are marked as imported");
            }
        }
    }

    /// The events of `left` (the pending ones at shutdown) not in the file yet.
    pub fn rest<'a>(&self, left: &'a [Event]) -> &'a [Event] {
        left.get(self.in_file..).unwrap_or_default()
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn rand_u64() -> u64 {
    use argon2::password_hash::rand_core::{OsRng, RngCore};
    OsRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[test]
    fn events_round_trip_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = unsaved_path(&dir.path().join("chat.db"));
        assert_eq!(path, dir.path().join("chat.db.unsaved.jsonl"));
        assert!(load(&path).unwrap().events.is_empty());
        let events = vec![
            Event {
                ts_ms: 1,
                kind: EventKind::Private,
                room: "lobby".into(),
                sender: "alice".into(),
                recipient: Some("bob".into()),
                text: Some("a \"quoted\"\nline".into()),
                session: 7,
                account: None,
            },
            Event {
                ts_ms: 2,
                kind: EventKind::Join,
                room: "lab".into(),
                sender: "bob".into(),
                recipient: None,
                text: None,
                session: 8,
                account: None,
            },
        ];
        save(&path, &events[..1]).unwrap();
        save(&path, &events[1..]).unwrap();
        assert_eq!(load(&path).unwrap().events, events);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"kind\":\"pm\""), "{text}");
    }

    #[test]
    fn a_broken_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "{\"ts_ms\":1}\n").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
    }
}
