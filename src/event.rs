//! The unit of record: one thing that happened in the chat.
//!
//! The room manager creates an [`Event`] for everything worth keeping; the store
//! writes it to SQLite and to the transcript, and the report reads it back.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What kind of thing happened. The names are the `kind` column in SQLite and the
/// word in the transcript line, and in the unsaved-events file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A chat line to a room.
    Chat,
    /// A private message; `recipient` is set.
    #[serde(rename = "pm")]
    Private,
    /// Someone entered a room (log-in or `/join`).
    Join,
    /// Someone left a room; `text` is the reason.
    Leave,
    /// A name change; `sender` is the old name, `text` the new one.
    Nick,
    /// `sender` became an instructor with `/op`.
    Op,
    /// `sender` (an instructor) kicked `recipient`; `text` is the reason.
    Kick,
    /// `sender` muted `recipient`; `text` is the duration in minutes, if any.
    Mute,
    /// `sender` unmuted `recipient`.
    Unmute,
    /// `sender` announced `text` to every room.
    Announce,
    /// `sender` turned quiet mode `text` (`on` or `off`).
    Quiet,
    /// `sender` (an operator at the command line, not a chat user) erased the words
    /// of the student `recipient`; `text` says what was changed. Recorded with
    /// session 0, which belongs to no student.
    Erase,
    /// `sender` (staff) set who students may message privately: `text` is
    /// `everyone`, `staff` or `off`.
    Dm,
    /// `sender` raised a hand (`text`: what about, if said).
    Hand,
    /// `sender` lowered their hand.
    Lower,
    /// `sender` (staff) called on `recipient`, whose hand went down.
    Call,
    /// `sender` (staff) opened a poll: `text` is `N: QUESTION | CHOICE | ...`.
    Poll,
    /// `sender` voted in a poll: `text` is `N: CHOICE` (the choice's number, then
    /// its text); a changed vote is a later `vote` of the same poll.
    Vote,
    /// `sender` (staff) closed a poll: `text` is `N: CHOICE=VOTES | ...`.
    Close,
    /// `sender` asked the room `text` without their name on it.
    Ask,
    /// `sender` (staff) started (`text`: `start` or `start: TITLE`) or ended
    /// (`end`) the room's class session.
    Session,
    /// `sender` did `text` in the room (`/me`, IRC's CTCP `ACTION`): said, and
    /// counted as a message, but shown as `* sam waves`.
    Action,
}

impl EventKind {
    /// The stored name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Chat => "chat",
            EventKind::Private => "pm",
            EventKind::Join => "join",
            EventKind::Leave => "leave",
            EventKind::Nick => "nick",
            EventKind::Op => "op",
            EventKind::Kick => "kick",
            EventKind::Mute => "mute",
            EventKind::Unmute => "unmute",
            EventKind::Announce => "announce",
            EventKind::Quiet => "quiet",
            EventKind::Erase => "erase",
            EventKind::Dm => "dm",
            EventKind::Hand => "hand",
            EventKind::Lower => "lower",
            EventKind::Call => "call",
            EventKind::Poll => "poll",
            EventKind::Vote => "vote",
            EventKind::Close => "close",
            EventKind::Ask => "ask",
            EventKind::Session => "session",
            EventKind::Action => "action",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<EventKind> {
        Some(match name {
            "chat" => EventKind::Chat,
            "pm" => EventKind::Private,
            "join" => EventKind::Join,
            "leave" => EventKind::Leave,
            "nick" => EventKind::Nick,
            "op" => EventKind::Op,
            "kick" => EventKind::Kick,
            "mute" => EventKind::Mute,
            "unmute" => EventKind::Unmute,
            "announce" => EventKind::Announce,
            "quiet" => EventKind::Quiet,
            "erase" => EventKind::Erase,
            "dm" => EventKind::Dm,
            "hand" => EventKind::Hand,
            "lower" => EventKind::Lower,
            "call" => EventKind::Call,
            "poll" => EventKind::Poll,
            "vote" => EventKind::Vote,
            "close" => EventKind::Close,
            "ask" => EventKind::Ask,
            "session" => EventKind::Session,
            "action" => EventKind::Action,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded event. Names are shared (`Arc<str>`) because the room manager
/// hands the same room and nick to thousands of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, UTC milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// What happened.
    pub kind: EventKind,
    /// The room it happened in (for a private message: the sender's room).
    pub room: Arc<str>,
    /// Who did it (for a name change: the old name).
    pub sender: Arc<str>,
    /// The addressee of a private message.
    pub recipient: Option<Arc<str>>,
    /// The message, the leave reason or the new name.
    pub text: Option<String>,
    /// The connection it came from; unique across server restarts.
    pub session: i64,
    /// The roster account of whoever did it; `None` without a roster.
    #[serde(default)]
    pub account: Option<Arc<str>>,
}

/// One chat line of a room's history, as replayed on join.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HistoryLine {
    /// When it was said, UTC milliseconds.
    pub ts_ms: i64,
    /// Who said it.
    pub sender: Arc<str>,
    /// What was said.
    pub text: Arc<str>,
    /// Said with `/me`: replayed as `* sam waves`.
    pub action: bool,
}

/// Where the switchboard records events: the store in a single server. Recording
/// must never block; a sink that is far behind says so, and the chat refuses new
/// messages rather than deliver what might never be recorded.
pub trait EventSink: Send + Sync {
    /// Queues one event to be recorded.
    fn record(&self, event: Event);

    /// Whether so many events wait to be recorded that new messages must wait.
    fn backlogged(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialized_kind_is_the_stored_name() {
        let kinds = [
            EventKind::Chat,
            EventKind::Private,
            EventKind::Join,
            EventKind::Leave,
            EventKind::Nick,
            EventKind::Op,
            EventKind::Kick,
            EventKind::Mute,
            EventKind::Unmute,
            EventKind::Announce,
            EventKind::Quiet,
            EventKind::Erase,
            EventKind::Action,
        ];
        for kind in kinds {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EventKind>(&json).unwrap(), kind);
        }
    }
}
