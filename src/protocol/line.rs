//! Every line the server sends, as a type: [`ServerLine`], rendered to the wire text
//! of SPEC section 2 by [`ServerLine::render_body`] and read back by
//! [`ServerLine::parse`]. No other module words a server line; the client reads the
//! server through the same parser, so a changed wording cannot silently break it.
//!
//! A body's first characters tell its kind apart: `*` a notice, `!` an error, `=` a
//! command's answer, `[PM ` a private message, anything else `NICK: TEXT`.

use std::fmt::{self, Write};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::clock::Clock;

use super::error::{Asked, CommandError};
use super::input::DmPolicy;

/// A name (nick or room) as the hub shares it between lines and events.
pub type Name = Arc<str>;

/// One line from the server, without its timestamp.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerLine {
    /// `NICK: TEXT`: a chat line in your room.
    Chat {
        /// Who said it.
        from: Name,
        /// What was said.
        text: Arc<str>,
    },
    /// `[PM from NICK] TEXT`
    PmFrom {
        /// The sender.
        from: Name,
        /// The message.
        text: Arc<str>,
    },
    /// `[PM to NICK] TEXT`: your copy of a private message you sent.
    PmTo {
        /// The addressee.
        to: Name,
        /// The message.
        text: Arc<str>,
    },
    /// `* ...`
    Notice(Notice),
    /// `= ...`
    Answer(Answer),
    /// `! TEXT`: your last line was refused, and why (as the client reads it).
    Error(String),
    /// `! TEXT`: a request of yours was refused, with what it asked for, so
    /// that each front end can word it its own way (IRC: the numeric, and the
    /// channel or nick it is about). Rendered as [`ServerLine::Error`].
    Refused {
        /// Why.
        error: CommandError,
        /// What was asked.
        asked: Asked,
    },
}

/// Why a member left, as shown in `* NICK has left #ROOM (REASON)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LeaveReason {
    /// `/quit`, with the reason given.
    Quit(Option<String>),
    /// `/join` of another room.
    Moved(Name),
    /// The client closed the connection.
    Closed,
    /// The connection failed (reset, broken pipe), or its node went away.
    Lost,
    /// No line within `limits.idle_timeout_secs`.
    TimedOut,
    /// Its outgoing queue filled up.
    TooSlow,
    /// The server is stopping.
    Shutdown,
    /// An instructor removed them, with the reason given.
    Kicked(Option<String>),
    /// The same person logged in again on another connection, which took the name.
    Replaced,
    /// Their roster entry was removed or their code reissued.
    Revoked,
}

/// Whose code a login prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// The class's `access.join_code`.
    JoinCode,
    /// A roster member's personal code.
    Personal,
    /// The instructor password, for a reserved instructor name.
    Password,
}

/// A role shown beside a name in `/who`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `[instructor]`
    Instructor,
    /// `[assistant]`: a teaching assistant.
    Assistant,
    /// `[guest]`: not on the class roster.
    Guest,
}

/// One raised hand in a room's queue, as `/hands` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Hand {
    /// Whose.
    pub nick: Name,
    /// Whole minutes it has been up.
    pub minutes: u64,
    /// What about, if they said.
    pub text: Option<String>,
}

/// The `*` lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The greeting's first line.
    Connected {
        /// `server.name`.
        server: String,
    },
    /// The greeting's notice that everything is recorded.
    Recorded,
    /// The username prompt.
    AskName,
    /// The code prompt after a name.
    AskCode(CodeKind),
    /// You are in.
    Welcome {
        /// Your name.
        nick: Name,
        /// Your room.
        room: Name,
        /// How many others are there.
        others: usize,
    },
    /// Someone entered your room.
    Joined {
        /// Who.
        nick: Name,
        /// The room.
        room: Name,
    },
    /// Someone left your room.
    Left {
        /// Who.
        nick: Name,
        /// The room.
        room: Name,
        /// Why.
        reason: LeaveReason,
    },
    /// People entered or left a big room since the last summary (SPEC 2: above
    /// `limits.announce_joins_up_to` members, one line every few seconds instead
    /// of one per person).
    Crowd {
        /// The room.
        room: Name,
        /// Whether they joined (else they left).
        joined: bool,
        /// How many.
        count: usize,
        /// The first few of them, in order.
        names: Vec<Name>,
    },
    /// Staff changed whom students may message privately.
    DmPolicy {
        /// Who.
        by: Name,
        /// The new policy.
        policy: DmPolicy,
    },
    /// Your hand is up, at this place in the room's queue.
    HandUp {
        /// 1 for the first.
        place: usize,
    },
    /// Your hand is down.
    HandDown,
    /// (To staff.) A student raised a hand.
    HandRaised {
        /// Who.
        nick: Name,
        /// What about, if they said.
        text: Option<String>,
    },
    /// (To staff, on `/hands`.) The room's queue, first first.
    Hands {
        /// The room.
        room: Name,
        /// The hands up.
        queue: Vec<Hand>,
    },
    /// Staff called on a student (and took their hand down).
    CalledOn {
        /// The staff member.
        by: Name,
        /// The student.
        nick: Name,
    },
    /// A poll opened in your room.
    PollOpened {
        /// Its number, counted over the server's life.
        number: u32,
        /// The question.
        question: String,
        /// The choices, numbered from 1.
        choices: Vec<String>,
    },
    /// Your vote was taken.
    Voted {
        /// The poll.
        number: u32,
        /// The choice, from 1.
        choice: usize,
        /// Its text.
        text: String,
    },
    /// A poll closed: each choice with its votes.
    PollClosed {
        /// The poll.
        number: u32,
        /// The question.
        question: String,
        /// Each choice and how many chose it.
        results: Vec<(String, usize)>,
    },
    /// Staff started a class session in your room.
    SessionStarted {
        /// The staff member.
        by: Name,
        /// What the session is, if they said.
        title: Option<String>,
    },
    /// Staff ended your room's class session.
    SessionEnded {
        /// The staff member.
        by: Name,
        /// What the session was, if said at its start.
        title: Option<String>,
        /// How long it ran, in whole minutes.
        minutes: u64,
    },
    /// An anonymous question; staff's copy names its author.
    Question {
        /// The question.
        text: String,
        /// Who asked, on staff's copy only.
        from: Option<Name>,
    },
    /// You moved to another room.
    Moved {
        /// The new room.
        room: Name,
        /// How many others are there.
        others: usize,
    },
    /// A name change in your room (yours included).
    Renamed {
        /// The old name.
        old: Name,
        /// The new name.
        new: Name,
    },
    /// The answer to `/quit`.
    Goodbye {
        /// Your name.
        nick: Name,
    },
    /// The server is stopping and will close the connection.
    ShuttingDown,
    /// You logged in again elsewhere with the same name and code; this
    /// connection closes.
    Replaced,
    /// Your roster entry was removed or your code reissued; the connection closes.
    CodeChanged,
    /// The start of a room's history.
    HistoryStart {
        /// The room.
        room: Name,
        /// How many lines follow.
        count: usize,
    },
    /// The end of a room's history.
    HistoryEnd,
    /// You are an instructor now.
    NowInstructor,
    /// An instructor removed you; the connection closes.
    Kicked {
        /// The instructor.
        by: Name,
        /// Why, if they said.
        reason: Option<String>,
    },
    /// Your `/kick` worked.
    KickDone {
        /// Who was removed.
        nick: Name,
    },
    /// An instructor muted you.
    Muted {
        /// The instructor.
        by: Name,
        /// For how long, if not until `/unmute`.
        minutes: Option<f64>,
    },
    /// Your `/mute` worked.
    MuteDone {
        /// Who is muted.
        nick: Name,
        /// For how long, if not until `/unmute`.
        minutes: Option<f64>,
    },
    /// An instructor unmuted you.
    Unmuted {
        /// The instructor.
        by: Name,
    },
    /// Your `/unmute` worked.
    UnmuteDone {
        /// Who may talk again.
        nick: Name,
    },
    /// `/announce`, to every room.
    Announcement {
        /// The instructor.
        from: Name,
        /// The text.
        text: String,
    },
    /// Quiet mode turned on or off.
    Quiet(bool),
    /// Your `/away`: marked away (`true`) or back.
    AwaySet(bool),
    /// Someone in your room went away (with why) or came back. Only IRC clients
    /// that asked for `away-notify` are sent it (IRC's `AWAY`).
    AwayChanged {
        /// Who.
        nick: Name,
        /// Why they are away; `None` when they are back.
        text: Option<String>,
    },
    /// The one you sent a private message to is away (IRC's `301`).
    IsAway {
        /// Who.
        nick: Name,
        /// Why.
        text: String,
    },
    /// `/me TEXT` in your room: `* sam waves`. Read back it is a [`Notice::Text`]:
    /// an action is worded as freely as any notice.
    Action {
        /// Who acts.
        nick: Name,
        /// What they do.
        text: Arc<str>,
    },
    /// Any other notice: the message of the day.
    Text(String),
}

/// One member of a `/who` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoEntry {
    /// The name.
    pub nick: Name,
    /// A mark shown beside it.
    pub role: Option<Role>,
    /// Marked away (`/away`): IRC's `WHO` shows `G`, not `H`. The line port's
    /// `/who` does not show it.
    pub away: bool,
}

/// The `=` lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `/who`: `= #ROOM (N): a, b, c`.
    Who {
        /// Your room.
        room: Name,
        /// Its members, sorted case-insensitively.
        members: Vec<WhoEntry>,
    },
    /// `/rooms`: `= Rooms: #lab (2), #lobby (3)`.
    Rooms(Vec<(Name, usize)>),
    /// One line of `/help`.
    Help(String),
}

/// One line of the `/help` answer per command.
pub const HELP: &[&str] = &[
    "Commands:",
    "/nick NEW          change your name",
    "/msg NICK TEXT     private message to NICK (any room)",
    "/who               who is in your room",
    "/join ROOM         go to ROOM (created if new)",
    "/rooms             list the rooms",
    "/help              this list",
    "/hand [TEXT]       raise your hand (again: lower it)",
    "/vote N            answer the room's poll",
    "/ask TEXT          ask the room a question without your name",
    "/me TEXT           an action: * NAME TEXT",
    "/away [TEXT]       say you are away (and why); without TEXT: back",
    "/quit [REASON]     leave the server",
    "Any other line is sent to your room; start it with // to send a line that begins with /.",
];

/// The extra `/help` lines an instructor sees.
pub const INSTRUCTOR_HELP: &[&str] = &[
    "Instructor commands:",
    "/kick NICK [REASON]    remove NICK from the server",
    "/mute NICK [MINUTES]   refuse NICK's lines (until /unmute if no minutes)",
    "/unmute NICK           let NICK talk again",
    "/announce TEXT         a notice to every room",
    "/quiet on|off          only instructors can chat while on",
    "/dm everyone|staff|off whom students may message privately",
    "/hands                 the room's raised hands, first first",
    "/next                  call on the first raised hand",
    "/poll Q | A | B...     open a poll in the room (2 to 9 choices)",
    "/poll close            close it and show the counts",
    "/session start [TITLE] a class session begins here (attendance)",
    "/session end           it ends",
];

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::Quit(Some(reason)) => write!(f, "Quit: {reason}"),
            LeaveReason::Quit(None) => f.write_str("Quit"),
            LeaveReason::Moved(room) => write!(f, "joined #{room}"),
            LeaveReason::Closed => f.write_str("Connection closed"),
            LeaveReason::Lost => f.write_str("Connection lost"),
            LeaveReason::TimedOut => f.write_str("Timed out"),
            LeaveReason::TooSlow => f.write_str("Too slow"),
            LeaveReason::Shutdown => f.write_str("Server shutting down"),
            LeaveReason::Kicked(Some(reason)) => write!(f, "Kicked: {reason}"),
            LeaveReason::Kicked(None) => f.write_str("Kicked"),
            LeaveReason::Replaced => f.write_str("Logged in again"),
            LeaveReason::Revoked => f.write_str("Code changed"),
        }
    }
}

impl LeaveReason {
    /// The reason back from its text.
    pub fn parse(text: &str) -> Option<LeaveReason> {
        Some(match text {
            "Quit" => LeaveReason::Quit(None),
            "Connection closed" => LeaveReason::Closed,
            "Connection lost" => LeaveReason::Lost,
            "Timed out" => LeaveReason::TimedOut,
            "Too slow" => LeaveReason::TooSlow,
            "Server shutting down" => LeaveReason::Shutdown,
            "Kicked" => LeaveReason::Kicked(None),
            "Logged in again" => LeaveReason::Replaced,
            "Code changed" => LeaveReason::Revoked,
            _ => {
                if let Some(reason) = text.strip_prefix("Quit: ") {
                    LeaveReason::Quit(Some(reason.to_owned()))
                } else if let Some(reason) = text.strip_prefix("Kicked: ") {
                    LeaveReason::Kicked(Some(reason.to_owned()))
                } else {
                    LeaveReason::Moved(text.strip_prefix("joined #")?.into())
                }
            }
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Instructor => "[instructor]",
            Role::Assistant => "[assistant]",
            Role::Guest => "[guest]",
        })
    }
}

/// "0 others", "1 other", "2 others".
struct Others(usize);

impl fmt::Display for Others {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("1 other"),
            n => write!(f, "{n} others"),
        }
    }
}

/// A count and its noun, singular for one: `1 message`, `20 messages`, `0 users`.
/// The nouns it is given have a plural in `s`.
pub(crate) struct Count<'a>(pub u64, pub &'a str);

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => write!(f, "1 {}", self.1),
            n => write!(f, "{n} {}s", self.1),
        }
    }
}

/// " for N minutes", or nothing for a mute until `/unmute`.
struct ForMinutes(Option<f64>);

impl fmt::Display for ForMinutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(1.0) => f.write_str(" for 1 minute"),
            Some(m) => write!(f, " for {m} minutes"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Connected { server } => write!(f, "Connected to {server}."),
            Notice::Recorded => {
                f.write_str("Everything said here is recorded with your name and the time.")
            }
            Notice::AskName => f.write_str("Please enter a username:"),
            Notice::AskCode(CodeKind::JoinCode) => {
                f.write_str("This class needs a join code. Please enter the code:")
            }
            Notice::AskCode(CodeKind::Personal) => f.write_str("Please enter your personal code:"),
            Notice::AskCode(CodeKind::Password) => f.write_str(
                "This name is an instructor's. Please enter the instructor password as your code:",
            ),
            Notice::Welcome { nick, room, others } => write!(
                f,
                "Welcome, {nick}! You are in #{room} with {}. Type /help for commands.",
                Others(*others)
            ),
            Notice::Joined { nick, room } => write!(f, "{nick} has joined #{room}"),
            Notice::Left { nick, room, reason } => write!(f, "{nick} has left #{room} ({reason})"),
            Notice::Crowd {
                room,
                joined,
                count,
                names,
            } => {
                let people = if *count == 1 { "person" } else { "people" };
                let went = if *joined { "joined" } else { "left" };
                write!(f, "{count} {people} {went} #{room}: ")?;
                for (i, name) in names.iter().enumerate() {
                    let comma = if i == 0 { "" } else { ", " };
                    write!(f, "{comma}{name}")?;
                }
                match count.saturating_sub(names.len()) {
                    0 => Ok(()),
                    more => write!(f, " and {more} more"),
                }
            }
            Notice::DmPolicy { by, policy } => match policy {
                DmPolicy::Everyone => write!(f, "{by} opened private messages to everyone."),
                DmPolicy::Staff => write!(
                    f,
                    "{by} turned private messages between students off; students may still message staff."
                ),
                DmPolicy::Off => write!(f, "{by} turned private messages off for students."),
            },
            Notice::HandUp { place } => write!(
                f,
                "Your hand is up (number {place} in the queue); /hand again lowers it."
            ),
            Notice::HandDown => f.write_str("Your hand is down."),
            Notice::HandRaised { nick, text } => {
                write!(f, "{nick} raised a hand")?;
                match text {
                    Some(text) => write!(f, ": {text}"),
                    None => Ok(()),
                }
            }
            Notice::Hands { room, queue } if queue.is_empty() => {
                write!(f, "No hands are up in #{room}.")
            }
            Notice::Hands { room, queue } => {
                write!(f, "Hands up in #{room}:")?;
                for (i, hand) in queue.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma} {}) {} ({} min)", i + 1, hand.nick, hand.minutes)?;
                    if let Some(text) = &hand.text {
                        write!(f, ": {text}")?;
                    }
                }
                Ok(())
            }
            Notice::CalledOn { by, nick } => write!(f, "{by} calls on {nick}"),
            Notice::PollOpened {
                number,
                question,
                choices,
            } => {
                write!(f, "Poll {number}: {question} \u{2014}")?;
                for (i, choice) in choices.iter().enumerate() {
                    write!(f, " {}) {choice}", i + 1)?;
                }
                f.write_str("; answer with /vote N")
            }
            Notice::Voted {
                number,
                choice,
                text,
            } => write!(
                f,
                "Your vote in poll {number}: {choice}) {text}. /vote again to change it while the poll is open."
            ),
            Notice::PollClosed {
                number,
                question,
                results,
            } => {
                write!(f, "Poll {number} closed: {question} \u{2014}")?;
                for (i, (choice, votes)) in results.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma} {}) {choice}: {votes}", i + 1)?;
                }
                Ok(())
            }
            Notice::SessionStarted { by, title } => match title {
                Some(title) => write!(f, "{by} started the session: {title}"),
                None => write!(f, "{by} started a session"),
            },
            Notice::SessionEnded { by, title, minutes } => match title {
                Some(title) => write!(f, "{by} ended the session: {title} ({minutes} min)"),
                None => write!(f, "{by} ended the session ({minutes} min)"),
            },
            Notice::Question { text, from } => {
                write!(f, "Question: {text}")?;
                match from {
                    Some(from) => write!(f, " [from {from}]"),
                    None => Ok(()),
                }
            }
            Notice::Moved { room, others } => {
                write!(f, "You are now in #{room} with {}.", Others(*others))
            }
            Notice::Renamed { old, new } => write!(f, "{old} is now known as {new}"),
            Notice::Goodbye { nick } => write!(f, "Goodbye, {nick}."),
            Notice::ShuttingDown => f.write_str("Server is shutting down."),
            Notice::Replaced => {
                f.write_str("You logged in again from another connection; this one is closed.")
            }
            Notice::CodeChanged => f.write_str("Your code was changed; log in again."),
            Notice::HistoryStart { room, count } => {
                write!(f, "Last {} in #{room}:", Count(*count as u64, "message"))
            }
            Notice::HistoryEnd => f.write_str("End of history."),
            Notice::NowInstructor => {
                f.write_str("You are now an instructor. Type /help for your commands.")
            }
            Notice::Kicked { by, reason: None } => write!(f, "You have been kicked by {by}."),
            Notice::Kicked {
                by,
                reason: Some(why),
            } => write!(f, "You have been kicked by {by}: {why}"),
            Notice::KickDone { nick } => write!(f, "{nick} has been kicked."),
            Notice::Muted { by, minutes } => {
                write!(f, "You have been muted by {by}{}.", ForMinutes(*minutes))
            }
            Notice::MuteDone { nick, minutes } => {
                write!(f, "{nick} is muted{}.", ForMinutes(*minutes))
            }
            Notice::Unmuted { by } => write!(f, "{by} has unmuted you; you can talk again."),
            Notice::UnmuteDone { nick } => write!(f, "{nick} can talk again."),
            Notice::Announcement { from, text } => write!(f, "Announcement from {from}: {text}"),
            Notice::Quiet(true) => f.write_str("Quiet mode is on: only instructors can talk."),
            Notice::Quiet(false) => f.write_str("Quiet mode is off: everyone can talk again."),
            Notice::AwaySet(true) => f.write_str("You have been marked as being away"),
            Notice::AwaySet(false) => f.write_str("You are no longer marked as being away"),
            Notice::AwayChanged {
                nick,
                text: Some(text),
            } => write!(f, "{nick} is now away: {text}"),
            Notice::AwayChanged { nick, text: None } => write!(f, "{nick} is back"),
            Notice::IsAway { nick, text } => write!(f, "{nick} is away: {text}"),
            Notice::Action { nick, text } => write!(f, "{nick} {text}"),
            Notice::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Who { room, members } => {
                write!(f, "#{room} ({}): ", members.len())?;
                for (i, member) in members.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(&member.nick)?;
                    if let Some(role) = member.role {
                        write!(f, " {role}")?;
                    }
                }
                Ok(())
            }
            Answer::Rooms(rooms) => {
                f.write_str("Rooms: ")?;
                for (i, (room, count)) in rooms.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "#{room} ({count})")?;
                }
                Ok(())
            }
            Answer::Help(line) => f.write_str(line),
        }
    }
}

/// The body of a line: everything after `[TIMESTAMP] `.
impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerLine::Chat { from, text } => write!(f, "{from}: {text}"),
            ServerLine::PmFrom { from, text } => write!(f, "[PM from {from}] {text}"),
            ServerLine::PmTo { to, text } => write!(f, "[PM to {to}] {text}"),
            ServerLine::Notice(notice) => write!(f, "* {notice}"),
            ServerLine::Answer(answer) => write!(f, "= {answer}"),
            ServerLine::Error(text) => write!(f, "! {text}"),
            ServerLine::Refused { error, .. } => write!(f, "! {error}"),
        }
    }
}

/// A body that is none of the kinds of SPEC section 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a classchat server line: {0:?}")]
pub struct Unrecognized(pub String);

impl ServerLine {
    /// Renders the body (the text after `[TIMESTAMP] `).
    pub fn render_body(&self) -> String {
        self.to_string()
    }

    /// Reads a body back. Every body this module renders parses to a line that
    /// renders to the same text.
    pub fn parse(body: &str) -> Result<ServerLine, Unrecognized> {
        let bad = || Unrecognized(body.to_owned());
        if let Some(text) = body.strip_prefix("* ") {
            return Ok(ServerLine::Notice(Notice::parse(text)));
        }
        if let Some(text) = body.strip_prefix("= ") {
            return Ok(ServerLine::Answer(Answer::parse(text)));
        }
        if let Some(text) = body.strip_prefix("! ") {
            return Ok(ServerLine::Error(text.to_owned()));
        }
        if let Some(rest) = body.strip_prefix("[PM from ") {
            let (from, text) = rest.split_once("] ").ok_or_else(bad)?;
            return Ok(ServerLine::PmFrom {
                from: from.into(),
                text: text.into(),
            });
        }
        if let Some(rest) = body.strip_prefix("[PM to ") {
            let (to, text) = rest.split_once("] ").ok_or_else(bad)?;
            return Ok(ServerLine::PmTo {
                to: to.into(),
                text: text.into(),
            });
        }
        let (from, text) = body.split_once(": ").ok_or_else(bad)?;
        if from.is_empty() || from.contains(' ') || from.starts_with(['*', '!', '=', '[']) {
            return Err(bad());
        }
        Ok(ServerLine::Chat {
            from: from.into(),
            text: text.into(),
        })
    }

    /// The line's kind, for colouring and for telling lines apart.
    pub fn kind(&self) -> LineKind {
        match self {
            ServerLine::Chat { .. } => LineKind::Chat,
            ServerLine::PmFrom { .. } | ServerLine::PmTo { .. } => LineKind::Private,
            ServerLine::Notice(_) => LineKind::Notice,
            ServerLine::Answer(_) => LineKind::Answer,
            ServerLine::Error(_) | ServerLine::Refused { .. } => LineKind::Error,
        }
    }
}

/// The five kinds of server line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// `NICK: TEXT`
    Chat,
    /// `[PM from|to NICK] TEXT`
    Private,
    /// `* TEXT`
    Notice,
    /// `= TEXT`
    Answer,
    /// `! TEXT`
    Error,
}

/// Reads the word after `prefix` up to `end`; `None` if it holds a space.
fn word<'a>(text: &'a str, prefix: &str, end: &str) -> Option<(&'a str, &'a str)> {
    let (word, rest) = text.strip_prefix(prefix)?.split_once(end)?;
    (!word.is_empty() && !word.contains(' ')).then_some((word, rest))
}

fn parse_others(text: &str) -> Option<usize> {
    match text {
        "1 other" => Some(1),
        _ => text.strip_suffix(" others")?.parse().ok(),
    }
}

/// `37 people joined #lecture: ana, ben, cy and 34 more` (names never start with a
/// digit, so nothing else reads as one).
fn parse_crowd(text: &str) -> Option<Notice> {
    let (count, rest) = text.split_once(' ')?;
    let count: usize = count.parse().ok()?;
    let rest = rest
        .strip_prefix("people ")
        .or_else(|| rest.strip_prefix("person "))?;
    let (joined, rest) = match rest.strip_prefix("joined #") {
        Some(rest) => (true, rest),
        None => (false, rest.strip_prefix("left #")?),
    };
    let (room, names) = rest.split_once(": ")?;
    let names = match names.rsplit_once(" and ") {
        Some((names, more)) if more.ends_with(" more") => names,
        _ => names,
    };
    Some(Notice::Crowd {
        room: room.into(),
        joined,
        count,
        names: names.split(", ").map(Name::from).collect(),
    })
}

fn parse_minutes(text: &str) -> Option<Option<f64>> {
    if text.is_empty() {
        return Some(None);
    }
    let text = text.strip_prefix(" for ")?;
    if text == "1 minute" {
        return Some(Some(1.0));
    }
    let minutes: f64 = text.strip_suffix(" minutes")?.parse().ok()?;
    (minutes != 1.0 && minutes.is_finite()).then_some(Some(minutes))
}

impl Notice {
    /// Reads the text after `* `; what matches no known notice is [`Notice::Text`].
    pub fn parse(text: &str) -> Notice {
        // A text that only resembles a notice (a number written "01") stays text, so
        // that every parsed line renders to exactly what was read.
        Notice::parse_known(text)
            .filter(|notice| notice.to_string() == text)
            .unwrap_or_else(|| Notice::Text(text.to_owned()))
    }

    fn parse_known(text: &str) -> Option<Notice> {
        let fixed = [
            Notice::Recorded,
            Notice::AskName,
            Notice::AskCode(CodeKind::JoinCode),
            Notice::AskCode(CodeKind::Personal),
            Notice::AskCode(CodeKind::Password),
            Notice::ShuttingDown,
            Notice::Replaced,
            Notice::CodeChanged,
            Notice::HistoryEnd,
            Notice::NowInstructor,
            Notice::Quiet(true),
            Notice::Quiet(false),
            Notice::AwaySet(true),
            Notice::AwaySet(false),
        ];
        if let Some(notice) = fixed.into_iter().find(|n| n.to_string() == text) {
            return Some(notice);
        }
        if let Some(server) = text
            .strip_prefix("Connected to ")
            .and_then(|t| t.strip_suffix('.'))
        {
            return Some(Notice::Connected {
                server: server.to_owned(),
            });
        }
        if let Some((nick, rest)) = word(text, "Welcome, ", "! You are in #") {
            let (room, rest) = rest.split_once(" with ")?;
            let others = parse_others(rest.strip_suffix(". Type /help for commands.")?)?;
            return Some(Notice::Welcome {
                nick: nick.into(),
                room: room.into(),
                others,
            });
        }
        if let Some((room, rest)) = word(text, "You are now in #", " with ") {
            let others = parse_others(rest.strip_suffix('.')?)?;
            return Some(Notice::Moved {
                room: room.into(),
                others,
            });
        }
        if let Some((count, room)) =
            word(text, "Last ", " messages in #").or_else(|| word(text, "Last ", " message in #"))
        {
            return Some(Notice::HistoryStart {
                room: room.strip_suffix(':')?.into(),
                count: count.parse().ok()?,
            });
        }
        if let Some(nick) = text
            .strip_prefix("Goodbye, ")
            .and_then(|t| t.strip_suffix('.'))
        {
            return Some(Notice::Goodbye { nick: nick.into() });
        }
        if let Some(rest) = text.strip_prefix("You have been kicked by ") {
            return Some(match rest.split_once(": ") {
                Some((by, why)) => Notice::Kicked {
                    by: by.into(),
                    reason: Some(why.to_owned()),
                },
                None => Notice::Kicked {
                    by: rest.strip_suffix('.')?.into(),
                    reason: None,
                },
            });
        }
        if let Some(rest) = text
            .strip_prefix("You have been muted by ")
            .and_then(|t| t.strip_suffix('.'))
        {
            let (by, minutes) = rest.split_at(rest.find(' ').unwrap_or(rest.len()));
            let minutes = parse_minutes(minutes)?;
            return Some(Notice::Muted {
                by: by.into(),
                minutes,
            });
        }
        if let Some((from, text)) = word(text, "Announcement from ", ": ") {
            return Some(Notice::Announcement {
                from: from.into(),
                text: text.to_owned(),
            });
        }
        if let Some(crowd) = parse_crowd(text) {
            return Some(crowd);
        }
        // The rest begin with a name.
        let (nick, rest) = text.split_once(' ')?;
        let nick: Name = nick.into();
        if let Some(room) = rest.strip_prefix("has joined #") {
            return (!room.contains(' ')).then(|| Notice::Joined {
                nick,
                room: room.into(),
            });
        }
        if let Some((room, reason)) = rest.strip_prefix("has left #").and_then(|r| {
            let (room, reason) = r.split_once(" (")?;
            Some((room, reason.strip_suffix(')')?))
        }) {
            return Some(Notice::Left {
                nick,
                room: room.into(),
                reason: LeaveReason::parse(reason)?,
            });
        }
        if let Some(new) = rest.strip_prefix("is now known as ") {
            return (!new.contains(' ')).then(|| Notice::Renamed {
                old: nick,
                new: new.into(),
            });
        }
        if rest == "has been kicked." {
            return Some(Notice::KickDone { nick });
        }
        if let Some(minutes) = rest
            .strip_prefix("is muted")
            .and_then(|r| r.strip_suffix('.'))
        {
            return Some(Notice::MuteDone {
                nick,
                minutes: parse_minutes(minutes)?,
            });
        }
        if rest == "has unmuted you; you can talk again." {
            return Some(Notice::Unmuted { by: nick });
        }
        if rest == "can talk again." {
            return Some(Notice::UnmuteDone { nick });
        }
        if let Some(text) = rest.strip_prefix("is now away: ") {
            let text = Some(text.to_owned());
            return Some(Notice::AwayChanged { nick, text });
        }
        if rest == "is back" {
            return Some(Notice::AwayChanged { nick, text: None });
        }
        if let Some(text) = rest.strip_prefix("is away: ") {
            let text = text.to_owned();
            return Some(Notice::IsAway { nick, text });
        }
        None
    }
}

impl Answer {
    /// Reads the text after `= `; what matches no list is a [`Answer::Help`] line.
    pub fn parse(text: &str) -> Answer {
        Answer::parse_list(text)
            .filter(|answer| answer.to_string() == text)
            .unwrap_or_else(|| Answer::Help(text.to_owned()))
    }

    fn parse_list(text: &str) -> Option<Answer> {
        if let Some(list) = text.strip_prefix("Rooms: ") {
            let rooms = split_list(list)
                .map(|item| {
                    let (room, count) = item.strip_prefix('#')?.split_once(" (")?;
                    Some((room.into(), count.strip_suffix(')')?.parse().ok()?))
                })
                .collect::<Option<Vec<_>>>()?;
            return Some(Answer::Rooms(rooms));
        }
        let (room, rest) = word(text, "#", " (")?;
        let (count, list) = rest.split_once("): ")?;
        let count: usize = count.parse().ok()?;
        let members = split_list(list)
            .map(|item| {
                let (nick, role) = match item.split_once(' ') {
                    None => (item, None),
                    Some((nick, "[instructor]")) => (nick, Some(Role::Instructor)),
                    Some((nick, "[assistant]")) => (nick, Some(Role::Assistant)),
                    Some((nick, "[guest]")) => (nick, Some(Role::Guest)),
                    Some(_) => return None,
                };
                Some(WhoEntry {
                    nick: nick.into(),
                    role,
                    away: false,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        (members.len() == count).then(|| Answer::Who {
            room: room.into(),
            members,
        })
    }
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(", ").filter(|item| !item.is_empty())
}

/// Splits a wire line into its `[TIMESTAMP]` and its parsed body. A line without a
/// stamp is read as all body.
pub fn parse_wire(line: &str) -> (&str, Result<ServerLine, Unrecognized>) {
    let (stamp, body) = split_stamp(line);
    (stamp, ServerLine::parse(body))
}

/// Splits `[TIMESTAMP] BODY`; a line without a stamp is all body.
pub fn split_stamp(line: &str) -> (&str, &str) {
    match line.find("] ") {
        Some(end) if line.starts_with('[') => (&line[..=end], &line[end + 2..]),
        _ => ("", line),
    }
}

/// A line at the moment it happened, as queued for every recipient. Each wire
/// format renders it at most once, however many members it goes to.
#[derive(Debug)]
pub struct Stamped {
    /// When it happened, UTC milliseconds.
    pub ts_ms: i64,
    /// What it says.
    pub line: ServerLine,
    line_wire: OnceLock<Bytes>,
    /// IRC bytes without and with the `@time=` tag: clients that asked for
    /// server-time and clients that did not share a broadcast.
    irc_wire: [OnceLock<Bytes>; 2],
}

impl Stamped {
    /// A line stamped with `ts_ms`.
    pub fn new(ts_ms: i64, line: ServerLine) -> Arc<Stamped> {
        Arc::new(Stamped {
            ts_ms,
            line,
            line_wire: OnceLock::new(),
            irc_wire: [OnceLock::new(), OnceLock::new()],
        })
    }

    /// The IRC front end's bytes for this line, rendered by `render` on first use
    /// and shared by every recipient after that, one copy `tagged` with `@time=`
    /// and one without. Only for lines whose IRC form is the same for everyone
    /// they are queued for; the caller decides which those are.
    pub fn irc_wire(&self, tagged: bool, render: impl FnOnce() -> Bytes) -> &Bytes {
        self.irc_wire[usize::from(tagged)].get_or_init(render)
    }

    /// `[TIMESTAMP] BODY\n`, the line protocol's bytes.
    pub fn wire(&self, clock: &Clock) -> &Bytes {
        self.line_wire.get_or_init(|| {
            let mut text = String::with_capacity(64);
            text.push('[');
            clock.write_timestamp(&mut text, self.ts_ms);
            text.push_str("] ");
            let _ = write!(text, "{}", self.line);
            text.push('\n');
            Bytes::from(text)
        })
    }
}

#[cfg(test)]
mod tests;
