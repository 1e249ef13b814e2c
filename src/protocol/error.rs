//! Why a client's line was refused. Each `Display` is exactly the text the client
//! gets after `! `.

use super::input::Command;
use super::line::{CodeKind, Count};

/// What a refused request asked for (see [`ServerLine::Refused`](super::ServerLine::Refused)).
#[derive(Debug, Clone, PartialEq)]
pub enum Asked {
    /// A line as a whole (its length, the rate limit), nothing in particular.
    Line,
    /// To log in under this name.
    LogIn(String),
    /// To say something in one's room.
    Chat,
    /// A command.
    Command(Command),
}

/// Why a line was refused. `Display` is exactly the text after `! `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// No such command.
    #[error("Unknown command: /{0} (try /help)")]
    Unknown(String),
    /// A line over `limits.max_line_bytes`.
    #[error("Line too long (max {0} bytes); it was not sent.")]
    TooLong(usize),
    /// A line that is not UTF-8.
    #[error("Invalid UTF-8; the line was not sent.")]
    InvalidUtf8,
    /// More lines than `limits.messages_per_sec` allows.
    #[error("Slow down (at most {} a second); that message was not sent.", Count(u64::from(*.0), "line"))]
    SlowDown(u32),
    /// A command with missing arguments.
    #[error("Usage: {0}")]
    Usage(&'static str),
    /// A `/join` target that is not a room name.
    #[error("Invalid room name: rooms are 1-32 of a-z 0-9 _ -")]
    BadRoom,
    /// `/msg` to someone not on the server.
    #[error("No such user: {0}")]
    NoSuchUser(String),
    /// `/join` beyond `limits.max_rooms`.
    #[error("Too many rooms (max {0}); join an existing one (see /rooms)")]
    TooManyRooms(usize),
    /// `/join` of the room one is in.
    #[error("You are already in #{0}")]
    AlreadyInRoom(String),
    /// A refused name.
    #[error("{0}")]
    Nick(#[from] NickError),
    /// An instructor command from a student.
    #[error("Permission denied")]
    PermissionDenied,
    /// `/op` with the wrong password.
    #[error("Wrong password")]
    WrongPassword,
    /// `/op` after too many wrong codes and passwords from this address.
    #[error("Too many wrong codes from your address; try again in {0} s.")]
    TooManyCodes(u64),
    /// `/nick` to the name one already has.
    #[error("You are already {0}")]
    SameNick(String),
    /// A line from a muted user; holds the minutes left, if the mute ends.
    #[error("You are muted{}; that message was not sent.", minutes_left(*.0))]
    Muted(Option<u64>),
    /// `/nick` in a rostered class.
    #[error("Names come from the class roster.")]
    RosterNames,
    /// `/nick` while muted.
    #[error("You are muted.")]
    MutedNoNick,
    /// A student's `/nick` while quiet mode is on.
    #[error("The room is in quiet mode.")]
    QuietNoNick,
    /// `/join` of a new room while muted or in quiet mode.
    #[error("New rooms cannot be made now; join an existing one (see /rooms)")]
    NoNewRooms,
    /// A student's line while quiet mode is on.
    #[error("The room is in quiet mode; only instructors can talk.")]
    QuietMode,
    /// The record is too far behind (`storage.max_backlog`): nothing is delivered
    /// that might never be recorded.
    #[error("Messages cannot be recorded right now; try again shortly.")]
    NotRecorded,
    /// A cluster node cannot reach NATS, so nothing it sends can be ordered.
    #[error("Messages cannot be delivered right now; try again shortly.")]
    Undeliverable,
    /// `/unmute` of someone who is not muted.
    #[error("{0} is not muted")]
    NotMuted(String),
    /// A student's `/msg` to another student while `/dm staff` holds.
    #[error("Private messages between students are off in this class.")]
    StudentMessagesOff,
    /// A student's `/msg` while `/dm off` holds.
    #[error("Private messages are off in this class.")]
    PrivateMessagesOff,
    /// `/vote` or `/poll close` with no poll open in the room.
    #[error("There is no open poll in #{0}.")]
    NoPoll(String),
    /// `/vote` with a number that is not one of the poll's choices.
    #[error("Vote with a number from 1 to {0}.")]
    NoSuchChoice(usize),
    /// `/poll` while the room's poll is still open.
    #[error("Poll {0} is still open; close it first with /poll close.")]
    PollOpen(u32),
    /// `/session start` while the room's session runs.
    #[error("A session is already running in #{0}; end it first with /session end.")]
    SessionRunning(String),
    /// `/session end` with no session running in the room.
    #[error("No session is running in #{0}.")]
    NoSession(String),
    /// `/next` with nobody in the queue.
    #[error("No hands are up in #{0}.")]
    NoHands(String),
}

fn minutes_left(minutes: Option<u64>) -> String {
    match minutes {
        None => String::new(),
        Some(0 | 1) => " for less than a minute more".to_owned(),
        Some(n) => format!(" for {n} more minutes"),
    }
}

/// Why a username was refused. `Display` is the text after `! `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NickError {
    /// Longer than `limits.max_nick_len`.
    #[error("Username too long (max {})", Count(*.0 as u64, "character"))]
    TooLong(usize),
    /// Does not start with an ASCII letter.
    #[error("Username must start with a letter")]
    BadStart,
    /// Has a character other than ASCII letters, digits, `_` and `-`.
    #[error("Username may contain only letters, digits, _ and -")]
    BadChar,
    /// One of `server.reserved_nicks`.
    #[error("Username {0} is reserved")]
    Reserved(String),
    /// Someone else has it (compared case-insensitively).
    #[error("Username {0} is already taken")]
    Taken(String),
}

/// Why a login step was refused, or the connection closed before a login.
/// `Display` is the text after `! `.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// The line itself was bad (too long, not UTF-8).
    #[error("{0}")]
    Line(#[from] CommandError),
    /// The name was refused.
    #[error("{0}")]
    Nick(#[from] NickError),
    /// A wrong join code, personal code or password.
    #[error("Wrong code ({left} {} left).", if *.left == 1 { "attempt" } else { "attempts" })]
    WrongCode {
        /// Tries left on this connection.
        left: u32,
    },
    /// `access.max_code_attempts` wrong codes on this connection.
    #[error("Too many wrong codes; goodbye.")]
    TooManyCodes,
    /// `access.code_attempts_per_minute` wrong codes from this address.
    #[error("Too many wrong codes from your address; try again in {0} s.")]
    AddressLocked(u64),
    /// No valid name within `limits.handshake_timeout_secs`.
    #[error("No username given within {}; goodbye.", seconds(*.0))]
    Timeout(u64),
    /// A name was given, but not the code (or password) asked for after it, within
    /// `limits.handshake_timeout_secs`.
    #[error("No {} given within {}; goodbye.", code_word(*.kind), seconds(*.secs))]
    CodeTimeout {
        /// The handshake's time limit.
        secs: u64,
        /// What was asked for.
        kind: CodeKind,
    },
    /// `limits.max_clients` users are logged in.
    #[error("Server is full ({}); try again later.", Count(*.0 as u64, "user"))]
    Full(usize),
    /// A name not on the roster of a class without guests.
    #[error("{0} is not on the class roster.")]
    NotOnRoster(String),
    /// The handshake budget (`limits.max_pending`, `limits.max_pending_per_ip`) is
    /// spent.
    #[error("Server is busy; try again shortly.")]
    Busy,
    /// The class roster could not be read yet (a cluster node whose PostgreSQL
    /// is out of reach), so nobody can be told apart.
    #[error("The class list cannot be read right now; try again shortly.")]
    RosterUnread,
    /// `limits.connects_per_minute_per_ip` new connections from this address.
    #[error("Too many connections from your address; try again in {0} s.")]
    TooManyConnects(u64),
    /// Kicked by an instructor less than `access.kick_minutes` ago.
    #[error("You were kicked; you can log in again in {}.", Count(*.0, "minute"))]
    Kicked(u64),
    /// `limits.max_per_ip` connections from this address.
    #[error("Too many connections from your address (max {0}).")]
    TooManyFromAddress(usize),
}

impl LoginError {
    /// The handshake's time ran out while the client was `asking`: for a code of
    /// some kind, or else (`None`) for a name. Says which, since a student who gave
    /// their name would be puzzled to hear that they had not.
    pub fn timed_out(secs: u64, asking: Option<CodeKind>) -> LoginError {
        match asking {
            None => LoginError::Timeout(secs),
            Some(kind) => LoginError::CodeTimeout { secs, kind },
        }
    }
}

/// `1 second`, `30 seconds`.
fn seconds(secs: u64) -> Count<'static> {
    Count(secs, "second")
}

/// What the code prompt asked for, as the refusal names it.
fn code_word(kind: CodeKind) -> &'static str {
    match kind {
        CodeKind::JoinCode | CodeKind::Personal => "code",
        CodeKind::Password => "password",
    }
}
