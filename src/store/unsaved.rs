//! Events that a failing database refused until the server stopped:
//! `DATABASE.unsaved.jsonl`, one JSON object a line, imported at the next start.

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

/// The events in `path`, in order; none if there is no such file. A line that is
/// not an event is an error naming it: guessing could lose or invent a grade.
pub fn load(path: &Path) -> io::Result<Vec<Event>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut events = Vec::new();
    for (number, line) in io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {}: {err}", number + 1),
            )
        })?;
        events.push(event);
    }
    Ok(events)
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
        assert!(load(&path).unwrap().is_empty());
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
        assert_eq!(load(&path).unwrap(), events);
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
