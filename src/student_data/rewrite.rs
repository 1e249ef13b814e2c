//! Erased words out of the transcript files: each line of an erased event is
//! replaced by the line [`format_line`] makes of it now that its text is
//! [`ERASED`](super::ERASED).
//!
//! Lines are found by what precedes the words (time to the millisecond, room,
//! kind, sender and recipient), which the transcript and the record share, so a
//! line is matched to its event without trusting anything the student typed.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::event::{Event, EventKind};
use crate::transcript::format_line;

use crate::transcript::is_transcript_file;

/// The lines to replace, by their leading timestamp.
#[derive(Debug, Default)]
pub struct Rewrites {
    /// Timestamp → (the line up to the words, whether it ends with `)`, the new line).
    by_time: HashMap<String, Vec<(String, bool, String)>>,
}

impl Rewrites {
    /// The replacements for these events (already erased: their text is the
    /// replacement); events of other kinds than chat, action, pm and leave are skipped.
    pub fn of(erased: &[Event]) -> Rewrites {
        let mut rewrites = Rewrites::default();
        for event in erased {
            let closing = match event.kind {
                EventKind::Chat
                | EventKind::Action
                | EventKind::Private
                | EventKind::Ask
                | EventKind::Hand => false,
                EventKind::Leave => true,
                _ => continue,
            };
            let empty = Event {
                text: Some(String::new()),
                ..event.clone()
            };
            let mut prefix = format_line(&empty);
            if closing {
                prefix.pop();
            }
            let time = prefix.split(' ').next().unwrap_or_default().to_owned();
            rewrites
                .by_time
                .entry(time)
                .or_default()
                .push((prefix, closing, format_line(event)));
        }
        rewrites
    }

    /// Whether there is nothing to replace.
    pub fn is_empty(&self) -> bool {
        self.by_time.is_empty()
    }

    /// `text` with the erased lines replaced, and how many were.
    pub fn apply(&self, text: &str) -> (String, usize) {
        let mut out = String::with_capacity(text.len());
        let mut changed = 0;
        for line in text.split_inclusive('\n') {
            let (body, end) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            let time = body.split(' ').next().unwrap_or_default();
            let replacement = self.by_time.get(time).and_then(|candidates| {
                candidates.iter().find(|(prefix, closing, _)| {
                    body.starts_with(prefix.as_str()) && (!closing || body.ends_with(')'))
                })
            });
            match replacement {
                Some((_, _, new)) if new != body => {
                    out.push_str(new);
                    out.push_str(end);
                    changed += 1;
                }
                _ => out.push_str(line),
            }
        }
        (out, changed)
    }

    /// Rewrites every transcript file in `dir` that holds an erased line, in place
    /// (the same file, truncated and written again: an appender that holds it open
    /// goes on appending to it). Returns each file changed, with how many lines.
    pub fn rewrite_dir(&self, dir: &Path) -> io::Result<Vec<(PathBuf, usize)>> {
        let mut changed = Vec::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(changed),
            Err(err) => return Err(err),
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| is_transcript_file(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let bytes = std::fs::read(&file)?;
            let text = String::from_utf8_lossy(&bytes);
            let (new, lines) = self.apply(&text);
            if lines > 0 {
                std::fs::write(&file, new)?;
                changed.push((file, lines));
            }
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind, sender: &str, recipient: Option<&str>, text: &str) -> Event {
        Event {
            ts_ms: 1_800_000_000_123,
            kind,
            room: "lobby".into(),
            sender: sender.into(),
            recipient: recipient.map(Into::into),
            text: Some(text.into()),
            session: 1,
            account: None,
        }
    }

    #[test]
    fn only_the_erased_lines_change() {
        let said = [
            event(EventKind::Chat, "amy", None, "secret: plans (x)"),
            event(EventKind::Private, "amy", Some("bo"), "psst"),
            event(EventKind::Leave, "amy", None, "Quit: bye (now)"),
        ];
        let kept = [
            event(EventKind::Chat, "bo", None, "hello"),
            event(EventKind::Private, "bo", Some("amy"), "hi amy"),
        ];
        let text: String = said
            .iter()
            .chain(&kept)
            .map(|e| format_line(e) + "\n")
            .collect();
        let erased: Vec<Event> = said
            .iter()
            .map(|e| Event {
                text: Some(crate::student_data::ERASED.into()),
                ..e.clone()
            })
            .collect();
        let (new, changed) = Rewrites::of(&erased).apply(&text);
        assert_eq!(changed, 3);
        assert!(!new.contains("secret") && !new.contains("psst") && !new.contains("bye"));
        assert!(new.contains("hello") && new.contains("hi amy"), "{new}");
        assert!(new.contains("leave amy ([erased])"), "{new}");
        assert_eq!(Rewrites::of(&erased).apply(&new).1, 0);
    }
}
