//! CTCP, the requests IRC clients tuck into a `PRIVMSG` between `\x01`s: `ACTION`
//! is `/me` (SPEC 11); `VERSION`, `PING`, `TIME` and `CLIENTINFO` are answered
//! by the server itself, for any target, since classchat's own clients (the line
//! port, the web page) could never answer them and a question left hanging
//! looks like a broken server.

use chrono::{TimeZone, Utc};

/// The marker around a CTCP message.
pub const MARK: char = '\u{1}';

/// What the server answers, listed for `CLIENTINFO`.
const KNOWN: &str = "ACTION CLIENTINFO PING TIME VERSION";

/// A CTCP message: its command, upper case, and the rest.
#[derive(Debug, PartialEq, Eq)]
pub struct Ctcp<'a> {
    pub command: String,
    pub args: &'a str,
}

/// The CTCP message in a `PRIVMSG`'s text, if it is one. The closing `\x01` is
/// optional, as some clients leave it out.
pub fn parse(text: &str) -> Option<Ctcp<'_>> {
    let inner = text.strip_prefix(MARK)?;
    let inner = inner.strip_suffix(MARK).unwrap_or(inner);
    let (command, args) = inner.split_once(' ').unwrap_or((inner, ""));
    Some(Ctcp {
        command: command.to_ascii_uppercase(),
        args,
    })
}

/// The body of the server's reply to a request (`classchat 0.1.0` for
/// `VERSION`), or `None` for one nobody answers. `now_ms` is the server's time,
/// for `TIME`.
pub fn answer(request: &Ctcp<'_>, now_ms: i64) -> Option<String> {
    let body = match request.command.as_str() {
        "VERSION" => concat!("classchat ", env!("CARGO_PKG_VERSION")).to_owned(),
        // The token comes back as sent, so the client can time the round trip;
        // only what could end the line is dropped.
        "PING" => request.args.replace([MARK, '\r', '\n', '\0'], ""),
        "TIME" => {
            let now = Utc
                .timestamp_millis_opt(now_ms)
                .single()
                .unwrap_or_default();
            now.format("%a %b %d %H:%M:%S %Y UTC").to_string()
        }
        "CLIENTINFO" => KNOWN.to_owned(),
        _ => return None,
    };
    Some(wrap(&request.command, &body))
}

/// `\x01COMMAND body\x01`.
pub fn wrap(command: &str, body: &str) -> String {
    match body.is_empty() {
        true => format!("{MARK}{command}{MARK}"),
        false => format!("{MARK}{command} {body}{MARK}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_read_with_or_without_the_closing_mark() {
        let action = parse("\u{1}ACTION waves\u{1}").unwrap();
        assert_eq!((action.command.as_str(), action.args), ("ACTION", "waves"));
        let version = parse("\u{1}version").unwrap();
        assert_eq!((version.command.as_str(), version.args), ("VERSION", ""));
        assert_eq!(parse("plain words"), None);
    }

    #[test]
    fn the_server_answers_version_ping_time_and_clientinfo() {
        let ask = |text: &str| answer(&parse(text).unwrap(), 0);
        let version = ask("\u{1}VERSION\u{1}").unwrap();
        assert!(
            version.starts_with("\u{1}VERSION classchat "),
            "{version:?}"
        );
        assert_eq!(
            ask("\u{1}PING 123 456\u{1}").unwrap(),
            "\u{1}PING 123 456\u{1}"
        );
        assert_eq!(
            ask("\u{1}TIME\u{1}").unwrap(),
            "\u{1}TIME Thu Jan 01 00:00:00 1970 UTC\u{1}"
        );
        assert!(ask("\u{1}CLIENTINFO\u{1}").unwrap().contains("ACTION"));
        assert_eq!(ask("\u{1}DCC SEND x\u{1}"), None);
    }
}
