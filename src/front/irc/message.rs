//! IRC messages on the wire: `[@tags] [:source] VERB [params...] [:trailing]`,
//! read from a client ([`decode`], [`parse`]) and written to one ([`write`](fn@write)).
//!
//! Limits follow the IRCv3 message-tags spec: the tags may take [`MAX_TAGS`] bytes
//! (the `@` and the space after them included) and the rest of the line
//! [`MAX_BODY`] bytes without its `\r\n`, the 512 bytes of RFC 1459. A client's
//! tags are read past and ignored: classchat understands none of them.

use std::fmt::Write;

use chrono::{TimeZone, Utc};

/// Bytes of tags a line may carry, `@` and the space after them included.
pub const MAX_TAGS: usize = 8191;

/// Bytes of a line after its tags, without `\r\n`.
pub const MAX_BODY: usize = 510;

/// Longest line the framing accepts; [`parse`] then checks each part.
pub const MAX_LINE: usize = MAX_TAGS + MAX_BODY;

/// Parameters a message may have (RFC 2812): the fifteenth takes the rest of the
/// line, spaces and all.
const MAX_PARAMS: usize = 15;

/// The host part of every user's source, `nick!nick@classchat`, and the server's
/// own source.
pub const HOST: &str = "classchat";

/// One message from a client, borrowing from its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// Whoever the client says it is; servers ignore it.
    pub source: Option<&'a str>,
    /// The command as sent; compare it case-insensitively.
    pub verb: &'a str,
    /// The parameters, the trailing one without its `:`.
    pub params: Vec<&'a str>,
}

impl<'a> Message<'a> {
    /// The `i`-th parameter, if present.
    pub fn param(&self, i: usize) -> Option<&'a str> {
        self.params.get(i).copied()
    }

    /// The `i`-th parameter, if present and not empty.
    pub fn word(&self, i: usize) -> Option<&'a str> {
        self.param(i).filter(|p| !p.is_empty())
    }
}

/// Why a line is not a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Longer than [`MAX_TAGS`] + [`MAX_BODY`] allow; answered with `417`.
    TooLong,
    /// Not UTF-8; answered with a `NOTICE`.
    InvalidUtf8,
}

/// A client's line, framed, to a message: `Ok(None)` for a line with nothing in
/// it, which IRC servers ignore.
pub fn decode(bytes: &[u8]) -> Result<Option<Message<'_>>, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refusal::InvalidUtf8)?;
    parse(text)
}

/// Reads one line (without `\r\n`); see [`decode`].
pub fn parse(line: &str) -> Result<Option<Message<'_>>, Refusal> {
    let mut rest = line;
    if let Some(tagged) = rest.strip_prefix('@') {
        let (tags, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
        if tags.len() + 2 > MAX_TAGS {
            return Err(Refusal::TooLong);
        }
        rest = after;
    }
    let rest = rest.trim_start_matches(' ');
    if rest.len() > MAX_BODY {
        return Err(Refusal::TooLong);
    }
    let mut rest = rest;
    let mut source = None;
    if let Some(sourced) = rest.strip_prefix(':') {
        let (from, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
        source = Some(from);
        rest = after.trim_start_matches(' ');
    }
    let (verb, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
    if verb.is_empty() {
        return Ok(None);
    }
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            break;
        }
        if let Some(trailing) = rest.strip_prefix(':') {
            params.push(trailing);
            break;
        }
        if params.len() == MAX_PARAMS - 1 {
            params.push(rest);
            break;
        }
        let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
        params.push(param);
        rest = after;
    }
    Ok(Some(Message {
        source,
        verb,
        params,
    }))
}

/// Who a line from the server comes from.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// The server itself.
    Server,
    /// A user, written `nick!nick@classchat`.
    User(&'a str),
}

/// The tags a line from the server may carry. Their values are the server's own
/// (times, hex ids, names of letters and digits): none needs escaping.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tags<'a> {
    /// `time=`, UTC milliseconds (server-time).
    pub time: Option<i64>,
    /// `msgid=` (message-tags).
    pub msgid: Option<&'a str>,
    /// `batch=`, the batch the line belongs to.
    pub batch: Option<&'a str>,
    /// `account=`, the sender's roster account (account-tag).
    pub account: Option<&'a str>,
}

/// Only a time, or none: what most lines carry.
impl From<Option<i64>> for Tags<'_> {
    fn from(time: Option<i64>) -> Self {
        Tags {
            time,
            ..Tags::default()
        }
    }
}

impl Tags<'_> {
    fn write(&self, out: &mut String) {
        let mut sep = '@';
        let mut tag = |out: &mut String, name: &str, value: &str| {
            out.push(sep);
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            sep = ';';
        };
        if let Some(batch) = self.batch {
            tag(out, "batch", batch);
        }
        if let Some(msgid) = self.msgid {
            tag(out, "msgid", msgid);
        }
        if let Some(account) = self.account {
            tag(out, "account", account);
        }
        if let Some(ms) = self.time {
            let at = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
            let at = at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            tag(out, "time", &at);
        }
        if sep == ';' {
            out.push(' ');
        }
    }
}

/// A message's id, the same wherever and whenever it is rendered: when it was
/// said (hex milliseconds), then a hash (FNV-1a, 64 bits) of that time, by whom,
/// what, and whether as an action. Lines the hub sends carry no id of their
/// own, and the history keeps none; two lines alike in all of these are the
/// same line to a reader anyway. The time in front lets a `CHATHISTORY`
/// reference to a line no longer in memory be found in the record
/// ([`msgid_time`]).
pub fn msgid(ts_ms: i64, sender: &str, text: &str, action: bool) -> String {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let bytes = ts_ms.to_be_bytes();
    let kind = [u8::from(action)];
    let parts = [&bytes[..], sender.as_bytes(), &kind, text.as_bytes()];
    for byte in parts.into_iter().flatten() {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{ts_ms:x}-{hash:016x}")
}

/// When the line with id `id` ([`msgid`]) was said, if it is one of ours.
pub fn msgid_time(id: &str) -> Option<i64> {
    let (time, hash) = id.split_once('-')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(time) && hash.len() == 16 && hex(hash))
        .then(|| i64::from_str_radix(time, 16).ok())
        .flatten()
}

/// Appends one line: its tags (`@time=` when a time is given), the source, the
/// verb and the parameters, the last one always as trailing (`:`), then `\r\n`.
/// Callers keep each parameter free of `\r`, `\n` and NUL; sanitised text is.
pub fn write<'t>(
    out: &mut String,
    tags: impl Into<Tags<'t>>,
    source: Source<'_>,
    verb: &str,
    params: &[&str],
) {
    tags.into().write(out);
    write_source(out, source);
    out.push_str(verb);
    if let Some((last, middle)) = params.split_last() {
        for param in middle {
            out.push(' ');
            out.push_str(param);
        }
        out.push_str(" :");
        out.push_str(last);
    }
    out.push_str("\r\n");
}

/// Appends `text` to `target` as one or more `verb` (`PRIVMSG`, `NOTICE`) lines,
/// split at character boundaries so that none exceeds [`MAX_BODY`]: a line-protocol
/// user may say more in one line than an IRC line holds.
pub fn write_text<'t>(
    out: &mut String,
    tags: impl Into<Tags<'t>>,
    source: Source<'_>,
    verb: &str,
    target: &str,
    text: &str,
) {
    write_pieces(out, tags.into(), source, verb, target, text, None);
}

/// As [`write_text`], each piece a CTCP `command` (`\x01ACTION piece\x01`): a
/// long action stays an action on every line it takes.
pub fn write_ctcp_text<'t>(
    out: &mut String,
    tags: impl Into<Tags<'t>>,
    source: Source<'_>,
    (verb, target): (&str, &str),
    command: &str,
    text: &str,
) {
    write_pieces(out, tags.into(), source, verb, target, text, Some(command));
}

fn write_pieces(
    out: &mut String,
    time: Tags<'_>,
    source: Source<'_>,
    verb: &str,
    target: &str,
    text: &str,
    ctcp: Option<&str>,
) {
    let source_len = match source {
        Source::Server => HOST.len(),
        Source::User(nick) => 2 * nick.len() + 2 + HOST.len(),
    };
    // "\x01COMMAND " and "\x01" around each piece.
    let wrapping = ctcp.map_or(0, |command| command.len() + 3);
    // ":SOURCE VERB TARGET :TEXT"
    let room =
        MAX_BODY.saturating_sub(1 + source_len + 1 + verb.len() + 1 + target.len() + 2 + wrapping);
    let room = room.max(16);
    let mut rest = text;
    loop {
        let mut cut = rest.len().min(room);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (piece, after) = rest.split_at(cut);
        match ctcp {
            Some(command) => {
                let wrapped = super::ctcp::wrap(command, piece);
                write(out, time, source, verb, &[target, &wrapped]);
            }
            None => write(out, time, source, verb, &[target, piece]),
        }
        if after.is_empty() {
            break;
        }
        rest = after;
    }
}

fn write_source(out: &mut String, source: Source<'_>) {
    out.push(':');
    match source {
        Source::Server => out.push_str(HOST),
        Source::User(nick) => {
            let _ = write!(out, "{nick}!{nick}@{HOST}");
        }
    }
    out.push(' ');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg<'a>(source: Option<&'a str>, verb: &'a str, params: &[&'a str]) -> Message<'a> {
        Message {
            source,
            verb,
            params: params.to_vec(),
        }
    }

    #[test]
    fn reads_the_parts_of_a_message() {
        assert_eq!(parse("NICK alice"), Ok(Some(msg(None, "NICK", &["alice"]))));
        assert_eq!(
            parse("@label=1;+x=y :alice!a@h PRIVMSG #lobby :hello  there"),
            Ok(Some(msg(
                Some("alice!a@h"),
                "PRIVMSG",
                &["#lobby", "hello  there"]
            )))
        );
        assert_eq!(
            parse("USER a 0 * :Alice A"),
            Ok(Some(msg(None, "USER", &["a", "0", "*", "Alice A"])))
        );
        assert_eq!(parse("PING :"), Ok(Some(msg(None, "PING", &[""]))));
        assert_eq!(parse("  "), Ok(None));
        assert_eq!(parse("@a=b"), Ok(None));
        assert_eq!(parse(":only-a-source"), Ok(None));
        let fifteen = "V 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16";
        let parsed = parse(fifteen).unwrap().unwrap();
        assert_eq!(parsed.params.len(), 15);
        assert_eq!(parsed.params[14], "15 16");
    }

    #[test]
    fn limits_tags_and_body_separately() {
        let body = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY - 12));
        assert_eq!(body.len(), MAX_BODY);
        assert!(parse(&body).unwrap().is_some());
        assert_eq!(parse(&format!("{body}x")), Err(Refusal::TooLong));
        let tags = format!("@a={}", "t".repeat(MAX_TAGS - 4));
        assert!(parse(&format!("{tags} {body}")).unwrap().is_some());
        assert_eq!(parse(&format!("{tags}t {body}")), Err(Refusal::TooLong));
        assert_eq!(decode(b"PRIVMSG #a :\xff"), Err(Refusal::InvalidUtf8));
    }

    #[test]
    fn writes_lines_with_and_without_time() {
        let mut out = String::new();
        write(
            &mut out,
            Some(1_764_011_103_123),
            Source::User("bob"),
            "PRIVMSG",
            &["#lobby", "hi there"],
        );
        write(&mut out, None, Source::Server, "001", &["bob", "Welcome"]);
        assert_eq!(
            out,
            "@time=2025-11-24T19:05:03.123Z :bob!bob@classchat PRIVMSG #lobby :hi there\r\n\
             :classchat 001 bob :Welcome\r\n"
        );
    }

    #[test]
    fn long_text_is_split_into_lines_that_fit() {
        let text = "é".repeat(600);
        let mut out = String::new();
        write_text(
            &mut out,
            None,
            Source::User("bob"),
            "PRIVMSG",
            "#lobby",
            &text,
        );
        let lines: Vec<&str> = out.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), 3);
        let mut joined = String::new();
        for line in lines {
            assert!(line.len() <= MAX_BODY, "{}", line.len());
            let parsed = parse(line).unwrap().unwrap();
            joined.push_str(parsed.params[1]);
        }
        assert_eq!(joined, text);
    }

    proptest! {
        /// Any bytes at all: no panic, and every line is a message, nothing, or a
        /// refusal the connection answers.
        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
            match decode(&bytes) {
                Ok(None) | Err(Refusal::InvalidUtf8) => {}
                Err(Refusal::TooLong) => prop_assert!(bytes.len() > MAX_BODY),
                Ok(Some(message)) => {
                    prop_assert!(!message.verb.is_empty());
                    prop_assert!(!message.verb.contains(' '));
                    prop_assert!(message.params.len() <= MAX_PARAMS);
                    let (_, middle) = message.params.split_last().unwrap_or((&"", &[]));
                    for param in middle {
                        prop_assert!(!param.is_empty() && !param.contains(' ') && !param.starts_with(':'));
                    }
                }
            }
        }

        /// What the server writes, a client reads back as the same parameters.
        #[test]
        fn written_lines_read_back(
            verb in "[A-Z]{1,8}",
            middle in proptest::collection::vec("[#a-z0-9_-]{1,10}", 0..5),
            last in "[^\r\n\0]{0,200}",
        ) {
            let mut params: Vec<&str> = middle.iter().map(String::as_str).collect();
            params.push(&last);
            let mut out = String::new();
            write(&mut out, Some(0), Source::User("bob"), &verb, &params);
            let line = out.strip_suffix("\r\n").unwrap();
            let parsed = parse(line).unwrap().unwrap();
            prop_assert_eq!(parsed.verb, verb.as_str());
            prop_assert_eq!(parsed.source, Some("bob!bob@classchat"));
            prop_assert_eq!(parsed.params, params);
        }
    }
}
