//! What a client's line means: sanitising, parsing into chat or a command, and the
//! rules for names and rooms.

use std::borrow::Cow;

use super::codec::Inbound;
use super::error::{CommandError, NickError};

/// The one decode path for a client's line, in the handshake and after: its text,
/// sanitised, or why it cannot be used.
pub fn read_line(inbound: Inbound, max_line_bytes: usize) -> Result<String, CommandError> {
    match inbound {
        Inbound::TooLong => Err(CommandError::TooLong(max_line_bytes)),
        Inbound::Line(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(sanitize(text).into_owned()),
            Err(_) => Err(CommandError::InvalidUtf8),
        },
    }
}

/// Removes what must never reach another terminal or the logs: C0 controls, DEL,
/// C1 controls and whole escape sequences (CSI such as `ESC [ 31 m`, OSC such as a
/// window title, and two-byte escapes), bidirectional overrides and isolates
/// (U+202A–U+202E, U+2066–U+2069), which would make a line read backwards in
/// everyone's window, and the line and paragraph separators (U+2028, U+2029),
/// which some clients show as a new line: a forged line from someone else. TAB
/// becomes a space. Trailing white space is trimmed.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    // 0xc2 leads the C1 controls; 0xe2 the separators and bidi controls.
    let clean = text
        .bytes()
        .all(|b| b >= 0x20 && b != 0x7f && b != 0xc2 && b != 0xe2);
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
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}' => {}
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// `/dm everyone|staff|off` (staff): who students may send private messages to.
    Dm(DmPolicy),
    /// `/hand [TEXT]`: raise a hand in the room's queue, or lower it.
    Hand(Option<String>),
    /// `/hands` (staff): the room's queue.
    Hands,
    /// `/next` (staff): call on the first hand in the queue.
    Next,
    /// `/poll QUESTION | CHOICE | CHOICE...` (staff): open a poll in the room.
    Poll {
        /// What is asked.
        question: String,
        /// The answers to choose from, numbered from 1.
        choices: Vec<String>,
    },
    /// `/poll close` (staff): close the room's poll and show its counts.
    ClosePoll,
    /// `/vote N`: an answer to the room's poll, changeable while it is open.
    Vote(usize),
    /// `/ask TEXT`: a question shown to the room without its author.
    Ask(String),
    /// `/session start [TITLE]` (staff): a class session begins in the room.
    StartSession(Option<String>),
    /// `/session end` (staff): the room's session ends.
    EndSession,
    /// `/me TEXT`: an action, `* sam waves` (IRC's CTCP `ACTION`).
    Me(String),
    /// `/away [TEXT]`: marked away with why, or back without (IRC's `AWAY`).
    Away(Option<String>),
}

/// Who students may send private messages to (`access.private_messages`, `/dm`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Anyone.
    #[default]
    Everyone,
    /// Only staff; messages between students are refused.
    Staff,
    /// Nobody: students send no private messages (staff still do).
    Off,
}

impl DmPolicy {
    /// The policy named `everyone`, `staff` or `off` (any case).
    pub fn parse(word: &str) -> Option<DmPolicy> {
        match word.to_ascii_lowercase().as_str() {
            "everyone" => Some(DmPolicy::Everyone),
            "staff" => Some(DmPolicy::Staff),
            "off" => Some(DmPolicy::Off),
            _ => None,
        }
    }

    /// Its name, as `/dm` and the configuration spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            DmPolicy::Everyone => "everyone",
            DmPolicy::Staff => "staff",
            DmPolicy::Off => "off",
        }
    }
}

/// How many choices a poll may have.
pub const POLL_CHOICES: std::ops::RangeInclusive<usize> = 2..=9;

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
    command(name, rest).map(Input::Command)
}

/// The command `name` (without its `/`, any case) with its arguments `rest`: the
/// one grammar of every command's arguments, whichever front end they came from.
pub fn command(name: &str, rest: &str) -> Result<Command, CommandError> {
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
        "dm" => Command::Dm(
            first_word
                .and_then(DmPolicy::parse)
                .ok_or(CommandError::Usage("/dm everyone|staff|off"))?,
        ),
        "hand" => Command::Hand(non_empty(rest)),
        "hands" => Command::Hands,
        "next" => Command::Next,
        "poll" if rest.eq_ignore_ascii_case("close") => Command::ClosePoll,
        "poll" => {
            const USAGE: CommandError =
                CommandError::Usage("/poll QUESTION | CHOICE | CHOICE... (2 to 9), or /poll close");
            let mut parts = rest.split('|').map(str::trim);
            let question = parts.next().filter(|q| !q.is_empty()).ok_or(USAGE)?;
            let choices: Vec<String> = parts.map(str::to_owned).collect();
            if !POLL_CHOICES.contains(&choices.len()) || choices.iter().any(String::is_empty) {
                return Err(USAGE);
            }
            Command::Poll {
                question: question.to_owned(),
                choices,
            }
        }
        "vote" => Command::Vote(
            first_word
                .and_then(|n| n.parse().ok())
                .ok_or(CommandError::Usage("/vote N"))?,
        ),
        "ask" => Command::Ask(non_empty(rest).ok_or(CommandError::Usage("/ask TEXT"))?),
        "session" => {
            let (action, title) = rest.split_once(' ').unwrap_or((rest, ""));
            match action.to_ascii_lowercase().as_str() {
                "start" => Command::StartSession(non_empty(title.trim())),
                "end" if title.is_empty() => Command::EndSession,
                _ => {
                    return Err(CommandError::Usage(
                        "/session start [TITLE], or /session end",
                    ))
                }
            }
        }
        "me" => Command::Me(non_empty(rest).ok_or(CommandError::Usage("/me TEXT"))?),
        "away" => Command::Away(non_empty(rest)),
        _ => return Err(CommandError::Unknown(name.to_owned())),
    };
    Ok(command)
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

    #[test]
    fn strips_controls_and_escapes() {
        assert_eq!(sanitize("plain text  "), "plain text");
        assert_eq!(sanitize("a\tb"), "a b");
        assert_eq!(sanitize("\x1b[31mred\x1b[0m"), "red");
        assert_eq!(sanitize("x\x1b]0;title\x07y"), "xy");
        assert_eq!(sanitize("a\x1b(Bb\x1b7c"), "abc");
        assert_eq!(sanitize("bell\x07 del\x7f c1\u{85}"), "bell del c1");
        assert_eq!(sanitize("é ünïcode ok"), "é ünïcode ok");
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "eviltxt.exe");
        assert_eq!(sanitize("a\u{2066}b\u{2069}c\u{202a}d"), "abcd");
        assert_eq!(
            sanitize("one\u{2028}[12:00] prof: two\u{2029}"),
            "one[12:00] prof: two"
        );
        assert_eq!(sanitize("quotes “ok” — fine"), "quotes “ok” — fine");
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
        assert_eq!(
            parse("/session START  Week 3 lab"),
            Ok(Input::Command(Command::StartSession(Some(
                "Week 3 lab".into()
            ))))
        );
        assert_eq!(
            parse("/session start"),
            Ok(Input::Command(Command::StartSession(None)))
        );
        assert_eq!(
            parse("/session end"),
            Ok(Input::Command(Command::EndSession))
        );
        let usage = Err(CommandError::Usage(
            "/session start [TITLE], or /session end",
        ));
        assert_eq!(parse("/session end now"), usage);
        assert_eq!(parse("/session"), usage);
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
