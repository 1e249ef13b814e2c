//! IRCv3 capabilities (SPEC 7, "What current IRC clients expect"): which ones
//! the server offers, and which a client turned on with `CAP REQ`.
//!
//! - `server-time`: an `@time=` tag on every line.
//! - `message-tags`: a `msgid` on every chat line, action and private message,
//!   the same for everyone it reaches and in the history, so a client can tell
//!   a line it already has.
//! - `echo-message`: the client's own chat lines, actions and private messages
//!   come back to it, with the `msgid` everyone else got.
//! - `batch`: the history on joining comes as a `chathistory` batch.
//! - `draft/chathistory`: the client asks for history (`CHATHISTORY`), so none is
//!   replayed on joining.
//! - `account-tag`: `account=` on lines from members with a roster account.
//! - `sasl`: `AUTHENTICATE PLAIN` logs in before `CAP END`.
//! - `multi-prefix`, `away-notify`: accepted; each member has one role, so one
//!   prefix is all of them, and nobody is shown as away.

/// One capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap(u16);

/// `server-time`.
pub const SERVER_TIME: Cap = Cap(1);
/// `message-tags`.
pub const MESSAGE_TAGS: Cap = Cap(1 << 1);
/// `echo-message`.
pub const ECHO_MESSAGE: Cap = Cap(1 << 2);
/// `batch`.
pub const BATCH: Cap = Cap(1 << 3);
/// `draft/chathistory`.
pub const CHATHISTORY: Cap = Cap(1 << 4);
/// `account-tag`.
pub const ACCOUNT_TAG: Cap = Cap(1 << 5);
/// `sasl`.
pub const SASL: Cap = Cap(1 << 6);
/// `multi-prefix`.
pub const MULTI_PREFIX: Cap = Cap(1 << 7);
/// `away-notify`.
pub const AWAY_NOTIFY: Cap = Cap(1 << 8);

/// Every capability offered: its name, and its value in `CAP LS 302`.
const OFFERED: &[(&str, Option<&str>, Cap)] = &[
    ("server-time", None, SERVER_TIME),
    ("message-tags", None, MESSAGE_TAGS),
    ("echo-message", None, ECHO_MESSAGE),
    ("batch", None, BATCH),
    ("draft/chathistory", None, CHATHISTORY),
    ("account-tag", None, ACCOUNT_TAG),
    ("sasl", Some("PLAIN"), SASL),
    ("multi-prefix", None, MULTI_PREFIX),
    ("away-notify", None, AWAY_NOTIFY),
];

/// The capabilities a client has on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps(u16);

impl Caps {
    /// Whether `cap` is on.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.0 != 0
    }

    /// Whether any tag but `time` may go on a line, so a broadcast cannot be
    /// shared with clients that want none.
    pub fn tags_beyond_time(self) -> bool {
        self.has(MESSAGE_TAGS) || self.has(ACCOUNT_TAG)
    }

    /// `CAP REQ :wanted`: all of them or, if one is unknown, none (`None`).
    pub fn request(self, wanted: &str) -> Option<Caps> {
        let mut caps = self;
        for name in wanted.split(' ').filter(|c| !c.is_empty()) {
            let (off, name) = match name.strip_prefix('-') {
                Some(name) => (true, name),
                None => (false, name),
            };
            let cap = OFFERED.iter().find(|(n, ..)| *n == name)?.2;
            caps.0 = match off {
                true => caps.0 & !cap.0,
                false => caps.0 | cap.0,
            };
        }
        Some(caps)
    }

    /// `CAP LIST`: the names of those on.
    pub fn list(self) -> String {
        let on = OFFERED.iter().filter(|(.., cap)| self.has(*cap));
        on.map(|(name, ..)| *name).collect::<Vec<_>>().join(" ")
    }
}

/// `CAP LS`: every capability, with values for clients that speak `302`.
pub fn offered(version_302: bool) -> String {
    let names = OFFERED.iter().map(|(name, value, _)| match value {
        Some(value) if version_302 => format!("{name}={value}"),
        _ => (*name).to_owned(),
    });
    names.collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_granted_whole_or_not_at_all() {
        let caps = Caps::default()
            .request("server-time echo-message draft/chathistory")
            .unwrap();
        assert!(caps.has(SERVER_TIME) && caps.has(ECHO_MESSAGE) && caps.has(CHATHISTORY));
        assert!(!caps.has(BATCH));
        assert_eq!(caps.list(), "server-time echo-message draft/chathistory");
        assert_eq!(caps.request("batch frobnicate"), None);
        let fewer = caps.request("-echo-message").unwrap();
        assert!(!fewer.has(ECHO_MESSAGE) && fewer.has(SERVER_TIME));
    }

    #[test]
    fn sasl_names_its_mechanism_to_302_clients() {
        assert!(offered(true).contains("sasl=PLAIN"));
        assert!(offered(false).split(' ').any(|c| c == "sasl"));
    }
}
