//! The wire protocol: framing of client lines, their parsing into chat or commands,
//! the naming rules, and the format of every line the server sends.
//!
//! Everything here is pure (no I/O, no shared state), so it is tested without sockets.

use std::borrow::Cow;

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

/// One framed unit of client input. Recoverable problems are items, not decoder
/// errors, because a `FramedRead` ends the stream after its decoder's first error.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A complete line, without `\n` and without a `\r` before it.
    Line(BytesMut),
    /// A line longer than the limit; its bytes are discarded up to the next `\n`.
    TooLong,
}

/// Splits client bytes into lines of at most `max_len` bytes.
#[derive(Debug)]
pub struct LineCodec {
    max_len: usize,
    /// Where to resume the search for `\n`, so a slow line is not rescanned.
    scanned: usize,
    /// Inside a too-long line: drop bytes until its end.
    discarding: bool,
}

impl LineCodec {
    /// A codec for lines of at most `max_len` bytes (line ending not counted).
    pub fn new(max_len: usize) -> Self {
        LineCodec {
            max_len,
            scanned: 0,
            discarding: false,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        loop {
            let newline = buf[self.scanned..].iter().position(|&b| b == b'\n');
            match (newline, self.discarding) {
                (Some(offset), true) => {
                    buf.advance(self.scanned + offset + 1);
                    self.scanned = 0;
                    self.discarding = false;
                }
                (None, true) => {
                    buf.clear();
                    self.scanned = 0;
                    return Ok(None);
                }
                (Some(offset), false) => {
                    let mut line = buf.split_to(self.scanned + offset + 1);
                    self.scanned = 0;
                    line.truncate(line.len() - 1);
                    if line.last() == Some(&b'\r') {
                        line.truncate(line.len() - 1);
                    }
                    if line.len() > self.max_len {
                        return Ok(Some(Inbound::TooLong));
                    }
                    return Ok(Some(Inbound::Line(line)));
                }
                (None, false) => {
                    // One byte of slack: a line of exactly max_len may still end in "\r\n".
                    if buf.len() > self.max_len + 1 {
                        buf.clear();
                        self.scanned = 0;
                        self.discarding = true;
                        return Ok(Some(Inbound::TooLong));
                    }
                    self.scanned = buf.len();
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if let Some(item) = self.decode(buf)? {
            return Ok(Some(item));
        }
        // A last line without its `\n` (an `nc` user pressing Ctrl-D mid-line) still counts.
        self.scanned = 0;
        if self.discarding || buf.is_empty() {
            buf.clear();
            return Ok(None);
        }
        let line = buf.split();
        Ok(Some(if line.len() > self.max_len {
            Inbound::TooLong
        } else {
            Inbound::Line(line)
        }))
    }
}

/// Removes what must never reach another terminal or the logs: C0 controls, DEL,
/// C1 controls and whole escape sequences (CSI such as `ESC [ 31 m`, OSC such as a
/// window title, and two-byte escapes). TAB becomes a space. Trailing white space
/// is trimmed.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    let clean = text.bytes().all(|b| b >= 0x20 && b != 0x7f && b != 0xc2);
    if clean {
        return Cow::Borrowed(text.trim_end());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\t' => out.push(' '),
            '\u{1b}' => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // `ESC ( B` and the like: intermediates, then one final byte.
                Some('\u{20}'..='\u{2f}') => {
                    while chars
                        .next_if(|c| ('\u{20}'..='\u{2f}').contains(c))
                        .is_some()
                    {}
                    chars.next();
                }
                _ => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    Cow::Owned(out)
}

/// Skips a CSI sequence's parameters and intermediates up to its final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            break;
        }
    }
}

/// Skips an OSC/DCS-style string up to BEL or ST (`ESC \` or U+009C).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

/// What a client's line asks for.
#[derive(Debug, PartialEq)]
pub enum Input {
    /// Nothing to do: the line was empty or only white space.
    Empty,
    /// A chat message to the current room.
    Chat(String),
    /// A command.
    Command(Command),
}

/// A parsed `/command`.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// `/nick NEW`
    Nick(String),
    /// `/msg NICK TEXT`
    Msg {
        /// The addressee, as typed.
        to: String,
        /// The message.
        text: String,
    },
    /// `/who`
    Who,
    /// `/join ROOM`, the room already normalized.
    Join(String),
    /// `/rooms`
    Rooms,
    /// `/help`
    Help,
    /// `/quit [REASON]`
    Quit(Option<String>),
    /// `/op PASSWORD`: become an instructor.
    Op(String),
    /// `/kick NICK [REASON]` (instructors).
    Kick {
        /// Who to remove.
        nick: String,
        /// Why, shown to them and the room.
        reason: Option<String>,
    },
    /// `/mute NICK [MINUTES]` (instructors); no minutes = until `/unmute`.
    Mute {
        /// Who to silence.
        nick: String,
        /// For how long.
        minutes: Option<f64>,
    },
    /// `/unmute NICK` (instructors).
    Unmute(String),
    /// `/announce TEXT` (instructors): a notice to every room.
    Announce(String),
    /// `/quiet on|off` (instructors): only instructors may chat while on.
    Quiet(bool),
}

/// Why a line was refused. `Display` is exactly the text after `! `.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
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
    #[error("Slow down (at most {0} lines a second); that message was not sent.")]
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
    /// `/op` after too many wrong passwords from this address.
    #[error("Too many wrong passwords; /op is disabled for your address")]
    TooManyPasswords,
    /// `/nick` to the name one already has.
    #[error("You are already {0}")]
    SameNick(String),
    /// A line from a muted user; holds the minutes left, if the mute ends.
    #[error("You are muted{}; that message was not sent.", minutes_left(*.0))]
    Muted(Option<u64>),
    /// A student's line while quiet mode is on.
    #[error("The room is in quiet mode; only instructors can talk.")]
    QuietMode,
    /// `/unmute` of someone who is not muted.
    #[error("{0} is not muted")]
    NotMuted(String),
}

fn minutes_left(minutes: Option<u64>) -> String {
    match minutes {
        None => String::new(),
        Some(0 | 1) => " for less than a minute more".to_owned(),
        Some(n) => format!(" for {n} more minutes"),
    }
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
];

/// The longest mute, in minutes: a week.
const MAX_MUTE_MINUTES: f64 = 7.0 * 24.0 * 60.0;

/// Turns one sanitized line into chat or a command.
pub fn parse(line: &str) -> Result<Input, CommandError> {
    if line.trim().is_empty() {
        return Ok(Input::Empty);
    }
    if let Some(escaped) = line.strip_prefix("//") {
        return Ok(Input::Chat(format!("/{escaped}")));
    }
    let Some(command_line) = line.strip_prefix('/') else {
        return Ok(Input::Chat(line.to_owned()));
    };
    let (name, rest) = match command_line.split_once(' ') {
        Some((name, rest)) => (name, rest.trim()),
        None => (command_line, ""),
    };
    let first_word = rest.split_whitespace().next();
    let command = match name.to_ascii_lowercase().as_str() {
        "nick" => Command::Nick(
            first_word
                .ok_or(CommandError::Usage("/nick NEW"))?
                .to_owned(),
        ),
        "msg" => {
            let (to, text) = rest
                .split_once(' ')
                .map(|(to, text)| (to, text.trim()))
                .filter(|(_, text)| !text.is_empty())
                .ok_or(CommandError::Usage("/msg NICK TEXT"))?;
            Command::Msg {
                to: to.to_owned(),
                text: text.to_owned(),
            }
        }
        "who" => Command::Who,
        "join" => {
            let room = first_word.ok_or(CommandError::Usage("/join ROOM"))?;
            Command::Join(normalize_room(room)?)
        }
        "rooms" => Command::Rooms,
        "help" => Command::Help,
        "quit" => Command::Quit(non_empty(rest)),
        "op" => Command::Op(non_empty(rest).ok_or(CommandError::Usage("/op PASSWORD"))?),
        "kick" => {
            let (nick, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            if nick.is_empty() {
                return Err(CommandError::Usage("/kick NICK [REASON]"));
            }
            Command::Kick {
                nick: nick.to_owned(),
                reason: non_empty(reason.trim()),
            }
        }
        "mute" => {
            const USAGE: CommandError = CommandError::Usage("/mute NICK [MINUTES]");
            let mut words = rest.split_whitespace();
            let nick = words.next().ok_or(USAGE)?.to_owned();
            let minutes = match words.next() {
                None => None,
                Some(m) => Some(
                    m.parse::<f64>()
                        .ok()
                        .filter(|m| *m > 0.0 && *m <= MAX_MUTE_MINUTES)
                        .ok_or(USAGE)?,
                ),
            };
            Command::Mute { nick, minutes }
        }
        "unmute" => Command::Unmute(
            first_word
                .ok_or(CommandError::Usage("/unmute NICK"))?
                .to_owned(),
        ),
        "announce" => {
            Command::Announce(non_empty(rest).ok_or(CommandError::Usage("/announce TEXT"))?)
        }
        "quiet" => match first_word.map(str::to_ascii_lowercase).as_deref() {
            Some("on") => Command::Quiet(true),
            Some("off") => Command::Quiet(false),
            _ => return Err(CommandError::Usage("/quiet on|off")),
        },
        _ => return Err(CommandError::Unknown(name.to_owned())),
    };
    Ok(Input::Command(command))
}

fn non_empty(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A room name as typed (`#Lab`, `lab`) in its one stored form (`lab`).
pub fn normalize_room(input: &str) -> Result<String, CommandError> {
    let name = input
        .strip_prefix('#')
        .unwrap_or(input)
        .to_ascii_lowercase();
    let valid = (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if valid {
        Ok(name)
    } else {
        Err(CommandError::BadRoom)
    }
}

/// Why a username was refused. `Display` is the text after `! `.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NickError {
    /// Longer than `limits.max_nick_len`.
    #[error("Username too long (max {0} characters)")]
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

/// Checks the form of a username: 1 to `max_len` ASCII letters, digits, `_` or `-`,
/// starting with a letter, and not reserved. Uniqueness is the room manager's job.
pub fn check_nick(name: &str, max_len: usize, reserved: &[String]) -> Result<(), NickError> {
    if name.len() > max_len {
        return Err(NickError::TooLong(max_len));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(NickError::BadStart);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(NickError::BadChar);
    }
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(NickError::Reserved(name.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut LineCodec, input: &[u8]) -> Vec<Inbound> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    fn line(s: &str) -> Inbound {
        Inbound::Line(BytesMut::from(s.as_bytes()))
    }

    #[test]
    fn frames_lines_and_drops_cr() {
        let mut codec = LineCodec::new(8);
        let items = decode_all(&mut codec, b"a\r\nbb\n\n");
        assert_eq!(items, vec![line("a"), line("bb"), line("")]);
    }

    #[test]
    fn too_long_line_is_reported_once_and_skipped() {
        let mut codec = LineCodec::new(4);
        assert_eq!(decode_all(&mut codec, b"abcdefgh"), vec![Inbound::TooLong]);
        assert_eq!(decode_all(&mut codec, b"ijkl"), vec![]);
        assert_eq!(decode_all(&mut codec, b"mn\nok\n"), vec![line("ok")]);
        assert_eq!(decode_all(&mut codec, b"12345\n"), vec![Inbound::TooLong]);
        assert_eq!(decode_all(&mut codec, b"1234\r\n"), vec![line("1234")]);
    }

    #[test]
    fn strips_controls_and_escapes() {
        assert_eq!(sanitize("plain text  "), "plain text");
        assert_eq!(sanitize("a\tb"), "a b");
        assert_eq!(sanitize("\x1b[31mred\x1b[0m"), "red");
        assert_eq!(sanitize("x\x1b]0;title\x07y"), "xy");
        assert_eq!(sanitize("a\x1b(Bb\x1b7c"), "abc");
        assert_eq!(sanitize("bell\x07 del\x7f c1\u{85}"), "bell del c1");
        assert_eq!(sanitize("é ünïcode ok"), "é ünïcode ok");
    }

    #[test]
    fn parses_chat_and_commands() {
        assert_eq!(parse("hi"), Ok(Input::Chat("hi".into())));
        assert_eq!(parse("//shrug"), Ok(Input::Chat("/shrug".into())));
        assert_eq!(parse("  "), Ok(Input::Empty));
        assert_eq!(parse("/WHO"), Ok(Input::Command(Command::Who)));
        assert_eq!(
            parse("/msg bob  hi there"),
            Ok(Input::Command(Command::Msg {
                to: "bob".into(),
                text: "hi there".into()
            }))
        );
        assert_eq!(
            parse("/msg bob"),
            Err(CommandError::Usage("/msg NICK TEXT"))
        );
        assert_eq!(
            parse("/join #Lab"),
            Ok(Input::Command(Command::Join("lab".into())))
        );
        assert_eq!(parse("/join a.b"), Err(CommandError::BadRoom));
        assert_eq!(parse("/quit"), Ok(Input::Command(Command::Quit(None))));
        assert_eq!(
            parse("/quit see you"),
            Ok(Input::Command(Command::Quit(Some("see you".into()))))
        );
        assert_eq!(parse("/foo"), Err(CommandError::Unknown("foo".into())));
        assert_eq!(
            parse("/kick bob spamming the room"),
            Ok(Input::Command(Command::Kick {
                nick: "bob".into(),
                reason: Some("spamming the room".into())
            }))
        );
        assert_eq!(
            parse("/mute bob 2.5"),
            Ok(Input::Command(Command::Mute {
                nick: "bob".into(),
                minutes: Some(2.5)
            }))
        );
        assert_eq!(
            parse("/mute bob -1"),
            Err(CommandError::Usage("/mute NICK [MINUTES]"))
        );
        assert_eq!(parse("/quiet ON"), Ok(Input::Command(Command::Quiet(true))));
        assert_eq!(
            parse("/quiet maybe"),
            Err(CommandError::Usage("/quiet on|off"))
        );
    }

    #[test]
    fn nick_rules() {
        let reserved = vec!["admin".to_owned()];
        assert_eq!(check_nick("alice_1-x", 16, &reserved), Ok(()));
        assert_eq!(
            check_nick("1alice", 16, &reserved),
            Err(NickError::BadStart)
        );
        assert_eq!(check_nick("", 16, &reserved), Err(NickError::BadStart));
        assert_eq!(check_nick("al ice", 16, &reserved), Err(NickError::BadChar));
        assert_eq!(check_nick("ålice", 16, &reserved), Err(NickError::BadStart));
        assert_eq!(
            check_nick("abcdefghijklmnopq", 16, &reserved),
            Err(NickError::TooLong(16))
        );
        assert_eq!(
            check_nick("ADMIN", 16, &reserved),
            Err(NickError::Reserved("ADMIN".into()))
        );
    }
}
