//! Who may come in, under which name: the login rules every front end shares.
//!
//! A client offers a name, then (where asked) a code. [`Login::offer`] takes each
//! answer in turn and says what comes next. It decides only; the front end asks
//! in its own way (a `*` prompt, an IRC numeric) and registers the admitted name
//! with the switchboard, which has the last word on whether it is free.

use std::net::IpAddr;
use std::time::Instant;

use super::Context;
use crate::protocol::{CodeKind, LoginError, NickError};

/// What comes after an answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// In: register this name.
    Admit(Admitted),
    /// Ask for a code of this kind.
    Ask(CodeKind),
    /// The answer was refused: say why and ask again for [`Login::asking`].
    Retry(LoginError),
    /// Say why and close the connection.
    GiveUp(LoginError),
}

/// A name that may come in.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The name, as given.
    pub name: String,
}

/// One connection's login; see the module docs.
#[derive(Debug, Default)]
pub struct Login {
    /// A valid, free name waiting for its code.
    name: Option<String>,
    /// The code being asked for.
    code: Option<CodeKind>,
    /// The join code was right once: a refused name need not give it again.
    code_accepted: bool,
    wrong_codes: u32,
}

impl Login {
    /// What the client is being asked for: a code of some kind, or else a name.
    pub fn asking(&self) -> Option<CodeKind> {
        self.code
    }

    /// Takes the client's next answer: a name, or the code asked for after it.
    pub fn offer(&mut self, cx: &Context, peer: Option<IpAddr>, text: &str) -> Step {
        match self.name.take() {
            None => self.name(cx, text),
            Some(name) => self.code(cx, peer, name, text),
        }
    }

    /// The switchboard refused an admitted name (someone took it meanwhile).
    pub fn refused(&mut self, error: NickError) -> Step {
        self.name = None;
        self.code = None;
        Step::Retry(error.into())
    }

    fn name(&mut self, cx: &Context, text: &str) -> Step {
        if let Err(err) = cx.board.check_name(text) {
            return Step::Retry(err.into());
        }
        if cx.config.access.join_code.is_empty() || self.code_accepted {
            return admit(text);
        }
        if !cx.board.is_name_free(text) {
            return Step::Retry(NickError::Taken(text.to_owned()).into());
        }
        self.name = Some(text.to_owned());
        self.code = Some(CodeKind::JoinCode);
        Step::Ask(CodeKind::JoinCode)
    }

    fn code(&mut self, cx: &Context, peer: Option<IpAddr>, name: String, text: &str) -> Step {
        if let Some(ip) = peer {
            if let Err(locked) = cx.codes.check(ip, Instant::now()) {
                return Step::GiveUp(LoginError::AddressLocked(locked.retry_secs));
            }
        }
        let access = &cx.config.access;
        if codes_match(text, &access.join_code) {
            self.code_accepted = true;
            self.code = None;
            return admit(&name);
        }
        self.wrong_codes += 1;
        if let Some(ip) = peer {
            cx.codes.failed(ip, "wrong join code", Instant::now());
        }
        let left = access.max_code_attempts.saturating_sub(self.wrong_codes);
        if left == 0 {
            return Step::GiveUp(LoginError::TooManyCodes);
        }
        self.name = Some(name);
        Step::Retry(LoginError::WrongCode { left })
    }
}

fn admit(name: &str) -> Step {
    Step::Admit(Admitted {
        name: name.to_owned(),
    })
}

/// Compares codes as people say them aloud: ignoring case and surrounding spaces,
/// and without an early exit, so timing does not tell how much of a guess was
/// right.
pub fn codes_match(given: &str, expected: &str) -> bool {
    let given = given.trim().to_lowercase();
    let expected = expected.trim().to_lowercase();
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::codes_match;

    #[test]
    fn codes_match_as_said_aloud() {
        assert!(codes_match(" owl-42 ", "OWL-42"));
        assert!(!codes_match("owl-43", "OWL-42"));
        assert!(!codes_match("owl-4", "OWL-42"));
    }
}
