//! Who may come in, under which name: the login rules every front end shares.
//!
//! A client offers a name, then (where asked) a code. [`Login::offer`] takes each
//! answer in turn and says what comes next. It decides only; the front end asks
//! in its own way (a `*` prompt, an IRC numeric) and registers the admitted name
//! with the switchboard, which has the last word on whether it is free.
//!
//! - With a roster (SPEC 6) a roster name needs its personal code, and is an
//!   instructor or a student as the roster says; another name is refused, or
//!   comes in as a guest where `access.guests` allows (and gives the join code if
//!   there is one).
//! - Without one, a name in `access.instructors` needs the instructor password,
//!   so nobody else can take it; other names give the join code if there is one.
//! - A name proven by its code or password is asked for it even while someone
//!   holds the name: the holder can only be the same person on a connection that
//!   died unnoticed, and the switchboard hands the name over.
//!
//! Every wrong code counts against the address ([`crate::access`]).

use std::net::IpAddr;

use super::Context;
use crate::hub::Identity;
use crate::protocol::{CodeKind, LoginError, NickError};
use crate::roster::{self, RosterRole};

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

/// A name that may come in, and who it is.
#[derive(Debug, PartialEq, Eq)]
pub struct Admitted {
    /// The name, as given (or as on the roster).
    pub name: String,
    /// Who the member is.
    pub identity: Identity,
}

/// A name waiting for its code.
#[derive(Debug)]
struct Waiting {
    name: String,
    kind: CodeKind,
    /// What to check the code against: the roster's hash, the instructor
    /// password's hash, or the join code itself.
    expected: String,
    identity: Identity,
}

/// One connection's login; see the module docs.
#[derive(Debug, Default)]
pub struct Login {
    waiting: Option<Waiting>,
    /// The join code was right once: a refused name need not give it again.
    join_code_accepted: bool,
    wrong_codes: u32,
}

impl Login {
    /// What the client is being asked for: a code of some kind, or else a name.
    pub fn asking(&self) -> Option<CodeKind> {
        self.waiting.as_ref().map(|w| w.kind)
    }

    /// Takes the client's next answer: a name, or the code asked for after it.
    pub async fn offer(&mut self, cx: &Context, peer: Option<IpAddr>, text: &str) -> Step {
        match self.waiting.take() {
            None => self.name(cx, peer, text),
            Some(waiting) => self.code(cx, peer, waiting, text).await,
        }
    }

    /// The switchboard refused an admitted name (someone took it meanwhile).
    pub fn refused(&mut self, error: NickError) -> Step {
        self.waiting = None;
        Step::Retry(error.into())
    }

    fn name(&mut self, cx: &Context, peer: Option<IpAddr>, text: &str) -> Step {
        if let Err(err) = cx.board.check_name(text) {
            return Step::Retry(err.into());
        }
        // A name that needs its own code is kept out by name only: a classmate
        // behind the kicked student's address still logs in with theirs.
        let proven = cx.roster.current().is_some_and(|r| r.get(text).is_some())
            || (cx.config.access.instructors.iter()).any(|name| name.eq_ignore_ascii_case(text));
        if let Some(minutes) = cx.board.kicked(text, peer, proven) {
            return Step::GiveUp(LoginError::Kicked(minutes));
        }
        let access = &cx.config.access;
        let Some(roster) = cx.roster.current() else {
            return Step::GiveUp(LoginError::RosterUnread);
        };
        if !roster.is_empty() {
            if let Some(member) = roster.get(text) {
                return self.ask(Waiting {
                    name: member.name.clone(),
                    kind: CodeKind::Personal,
                    expected: member.code_hash.clone(),
                    identity: Identity {
                        account: Some(member.name.as_str().into()),
                        instructor: member.role == RosterRole::Instructor,
                        assistant: member.role == RosterRole::Assistant,
                        guest: false,
                        rostered: true,
                        address: peer,
                    },
                });
            }
            if !access.guests {
                return Step::Retry(LoginError::NotOnRoster(text.to_owned()));
            }
            if !cx.board.is_name_free(text) {
                return Step::Retry(NickError::Taken(text.to_owned()).into());
            }
            let guest = Identity {
                guest: true,
                rostered: true,
                address: peer,
                ..Identity::default()
            };
            return self.join_code(cx, text, guest);
        }
        let reserved = access
            .instructors
            .iter()
            .any(|name| name.eq_ignore_ascii_case(text));
        if reserved {
            if access.instructor_password.is_empty() {
                return Step::Retry(NickError::Reserved(text.to_owned()).into());
            }
            return self.ask(Waiting {
                name: text.to_owned(),
                kind: CodeKind::Password,
                expected: access.instructor_password.clone(),
                identity: Identity {
                    instructor: true,
                    address: peer,
                    ..Identity::default()
                },
            });
        }
        if !cx.board.is_name_free(text) {
            return Step::Retry(NickError::Taken(text.to_owned()).into());
        }
        let identity = Identity {
            address: peer,
            ..Identity::default()
        };
        self.join_code(cx, text, identity)
    }

    /// Admits `name` now, or first asks for the join code if the class has one.
    fn join_code(&mut self, cx: &Context, name: &str, identity: Identity) -> Step {
        let join_code = &cx.config.access.join_code;
        if join_code.is_empty() || self.join_code_accepted {
            return admit(name, identity);
        }
        self.ask(Waiting {
            name: name.to_owned(),
            kind: CodeKind::JoinCode,
            expected: join_code.clone(),
            identity,
        })
    }

    fn ask(&mut self, waiting: Waiting) -> Step {
        let kind = waiting.kind;
        self.waiting = Some(waiting);
        Step::Ask(kind)
    }

    async fn code(
        &mut self,
        cx: &Context,
        peer: Option<IpAddr>,
        waiting: Waiting,
        text: &str,
    ) -> Step {
        let what = match waiting.kind {
            CodeKind::JoinCode => "wrong join code",
            CodeKind::Personal => "wrong personal code",
            CodeKind::Password => "wrong instructor password",
        };
        let (kind, given, expected) = (waiting.kind, text.to_owned(), waiting.expected.clone());
        let checked = cx
            .codes
            .check(peer, &waiting.name, what, move || {
                matches(kind, &given, &expected)
            })
            .await;
        match checked {
            Err(locked) => return Step::GiveUp(LoginError::AddressLocked(locked.retry_secs)),
            Ok(true) => {
                if waiting.kind == CodeKind::JoinCode {
                    self.join_code_accepted = true;
                }
                return admit(&waiting.name, waiting.identity);
            }
            Ok(false) => self.wrong_codes += 1,
        }
        let left = cx
            .config
            .access
            .max_code_attempts
            .saturating_sub(self.wrong_codes);
        if left == 0 {
            return Step::GiveUp(LoginError::TooManyCodes);
        }
        self.waiting = Some(waiting);
        Step::Retry(LoginError::WrongCode { left })
    }
}

/// Checks a code. The hashed kinds cost an argon2 check each, on purpose: the
/// [`CodeGuard`](crate::access::CodeGuard) runs this on the blocking pool, away
/// from everyone else's chat.
fn matches(kind: CodeKind, given: &str, expected: &str) -> bool {
    match kind {
        CodeKind::JoinCode => codes_match(given, expected),
        CodeKind::Personal => roster::verify(given, expected),
        CodeKind::Password => crate::password::verify(given, expected),
    }
}

fn admit(name: &str, identity: Identity) -> Step {
    Step::Admit(Admitted {
        name: name.to_owned(),
        identity,
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
