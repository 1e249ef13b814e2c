//! Erasing a student's words (SPEC 12) on either back end: their chat lines,
//! the private messages they sent, the reasons they gave for leaving, and what
//! they asked with `/ask` or said raising a hand, from any of their
//! connections, replaced by [`ERASED`]. The rows stay, so a report
//! made before the erase is still explained by the record. The statements are
//! written once here; each back end runs them in its own transaction.

use std::fmt;

use super::read::RecordRead;
use super::DbError;
use crate::event::{Event, EventKind};

/// What erased words are replaced by.
pub const ERASED: &str = "[erased]";

/// Rows whose words an erase replaces (or replaced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Chat lines.
    pub chat: u64,
    /// Private messages the student sent.
    pub private: u64,
    /// Reasons given for leaving.
    pub reasons: u64,
    /// Questions asked with `/ask` and what was said raising a hand.
    pub questions: u64,
}

impl Counts {
    /// All rows.
    pub fn total(&self) -> u64 {
        self.chat + self.private + self.reasons + self.questions
    }

    /// The counts of `(kind, rows)` pairs as [`count_sql`] returns them.
    pub(crate) fn of<'a>(rows: impl IntoIterator<Item = (&'a str, i64)>) -> Counts {
        let mut counts = Counts::default();
        for (kind, n) in rows {
            let n = n.max(0) as u64;
            match EventKind::parse(kind) {
                // An action's words are said in the room like a chat line's.
                Some(EventKind::Chat | EventKind::Action) => counts.chat += n,
                Some(EventKind::Private) => counts.private += n,
                Some(EventKind::Ask | EventKind::Hand) => counts.questions += n,
                _ => counts.reasons += n,
            }
        }
        counts
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} chat lines, {} private messages, {} leave reasons",
            self.chat, self.private, self.reasons
        )?;
        match self.questions {
            0 => Ok(()),
            n => write!(f, ", {n} questions and raised hands"),
        }
    }
}

/// A record whose words can be erased.
pub trait RecordErase: RecordRead {
    /// What erasing the words of these connections would change now.
    fn count_words(&self, sessions: &[i64]) -> Result<Counts, DbError>;

    /// Replaces the words of these connections and records the `erase` event
    /// that `erase` makes of what changed, in one transaction, leaving no copy
    /// of the old words in the back end's free space.
    fn erase_words(
        &mut self,
        sessions: &[i64],
        erase: &dyn Fn(Counts) -> Event,
    ) -> Result<Counts, DbError>;
}

/// The rows holding the words of these connections not yet erased. Session ids
/// are integers and the rest is constant, so the statement has no parameters.
fn words_of(sessions: &[i64]) -> String {
    let sessions: Vec<String> = sessions.iter().map(i64::to_string).collect();
    let sessions = match sessions.is_empty() {
        true => "NULL".to_owned(),
        false => sessions.join(", "),
    };
    format!(
        "session IN ({sessions}) AND kind IN ('chat', 'action', 'pm', 'leave', 'ask', 'hand') \
         AND text IS NOT NULL AND text <> '{ERASED}'"
    )
}

/// `(kind, rows)` of the words [`RecordErase::erase_words`] would replace.
pub(crate) fn count_sql(sessions: &[i64]) -> String {
    format!(
        "SELECT kind, COUNT(*) FROM events WHERE {} GROUP BY kind",
        words_of(sessions)
    )
}

/// Replaces the words of these connections.
pub(crate) fn erase_sql(sessions: &[i64]) -> String {
    format!(
        "UPDATE events SET text = '{ERASED}' WHERE {}",
        words_of(sessions)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_by_kind() {
        let counts = Counts::of([("chat", 3), ("pm", 2), ("leave", 1)]);
        assert_eq!((counts.chat, counts.private, counts.reasons), (3, 2, 1));
        assert_eq!(counts.total(), 6);
        assert_eq!(
            counts.to_string(),
            "3 chat lines, 2 private messages, 1 leave reasons"
        );
        assert!(count_sql(&[]).contains("session IN (NULL)"));
        assert!(erase_sql(&[4, 7]).contains("session IN (4, 7)"));
    }
}
