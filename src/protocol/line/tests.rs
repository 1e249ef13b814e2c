use proptest::prelude::*;

use super::*;

fn name(s: &str) -> Name {
    s.into()
}

/// One of every kind and variant, as the server sends them.
fn examples() -> Vec<ServerLine> {
    let notices = vec![
        Notice::Connected {
            server: "CS 101 chat".into(),
        },
        Notice::Recorded,
        Notice::AskName,
        Notice::AskCode(CodeKind::JoinCode),
        Notice::AskCode(CodeKind::Personal),
        Notice::AskCode(CodeKind::Password),
        Notice::Welcome {
            nick: name("amy"),
            room: name("lobby"),
            others: 1,
        },
        Notice::Joined {
            nick: name("amy"),
            room: name("lab"),
        },
        Notice::Left {
            nick: name("amy"),
            room: name("lab"),
            reason: LeaveReason::Quit(Some("bye (for now)".into())),
        },
        Notice::Left {
            nick: name("amy"),
            room: name("lab"),
            reason: LeaveReason::Moved(name("lobby")),
        },
        Notice::Left {
            nick: name("amy"),
            room: name("lab"),
            reason: LeaveReason::TooSlow,
        },
        Notice::Crowd {
            room: name("lecture"),
            joined: true,
            count: 37,
            names: vec![name("ana"), name("ben"), name("cy")],
        },
        Notice::Crowd {
            room: name("lecture"),
            joined: false,
            count: 1,
            names: vec![name("ana")],
        },
        Notice::Moved {
            room: name("lab"),
            others: 0,
        },
        Notice::Renamed {
            old: name("amy"),
            new: name("amelia"),
        },
        Notice::Goodbye { nick: name("amy") },
        Notice::ShuttingDown,
        Notice::HistoryStart {
            room: name("lobby"),
            count: 20,
        },
        Notice::HistoryStart {
            room: name("lab"),
            count: 1,
        },
        Notice::HistoryEnd,
        Notice::NowInstructor,
        Notice::Kicked {
            by: name("prof"),
            reason: None,
        },
        Notice::Kicked {
            by: name("prof"),
            reason: Some("spam: again".into()),
        },
        Notice::KickDone { nick: name("amy") },
        Notice::Muted {
            by: name("prof"),
            minutes: Some(1.0),
        },
        Notice::Muted {
            by: name("prof"),
            minutes: Some(2.5),
        },
        Notice::Muted {
            by: name("prof"),
            minutes: None,
        },
        Notice::MuteDone {
            nick: name("amy"),
            minutes: Some(10.0),
        },
        Notice::Unmuted { by: name("prof") },
        Notice::UnmuteDone { nick: name("amy") },
        Notice::Announcement {
            from: name("prof"),
            text: "quiz: at 10".into(),
        },
        Notice::Quiet(true),
        Notice::Quiet(false),
        Notice::AwaySet(true),
        Notice::AwaySet(false),
        Notice::AwayChanged {
            nick: name("amy"),
            text: Some("lunch: back at 1".into()),
        },
        Notice::AwayChanged {
            nick: name("amy"),
            text: None,
        },
        Notice::IsAway {
            nick: name("amy"),
            text: "lunch".into(),
        },
    ];
    let mut lines: Vec<ServerLine> = notices.into_iter().map(ServerLine::Notice).collect();
    lines.extend([
        ServerLine::Chat {
            from: name("amy"),
            text: "a: b] c".into(),
        },
        ServerLine::PmFrom {
            from: name("bob"),
            text: "psst".into(),
        },
        ServerLine::PmTo {
            to: name("bob"),
            text: "[x] y".into(),
        },
        ServerLine::Error("No such user: dave".into()),
        ServerLine::Answer(Answer::Who {
            room: name("lobby"),
            members: vec![
                WhoEntry {
                    nick: name("Amy"),
                    role: None,
                    away: false,
                },
                WhoEntry {
                    nick: name("prof"),
                    role: Some(Role::Instructor),
                    away: false,
                },
                WhoEntry {
                    nick: name("visitor"),
                    role: Some(Role::Guest),
                    away: false,
                },
            ],
        }),
        ServerLine::Answer(Answer::Rooms(vec![(name("lab"), 2), (name("lobby"), 0)])),
        ServerLine::Answer(Answer::Help(
            "/who               who is in your room".into(),
        )),
    ]);
    lines
}

#[test]
fn every_kind_parses_back_to_itself() {
    for line in examples() {
        let body = line.render_body();
        assert_eq!(ServerLine::parse(&body), Ok(line.clone()), "{body}");
    }
}

#[test]
fn the_wording_of_spec_section_2() {
    let bodies: Vec<String> = examples().iter().map(ServerLine::render_body).collect();
    for expected in [
        "* Welcome, amy! You are in #lobby with 1 other. Type /help for commands.",
        "* amy has joined #lab",
        "* amy has left #lab (Quit: bye (for now))",
        "* amy has left #lab (joined #lobby)",
        "* You are now in #lab with 0 others.",
        "* amy is now known as amelia",
        "* amy is away: lunch",
        "* Last 20 messages in #lobby:",
        "* End of history.",
        "* You have been muted by prof for 1 minute.",
        "amy: a: b] c",
        "[PM from bob] psst",
        "[PM to bob] [x] y",
        "! No such user: dave",
        "= #lobby (3): Amy, prof [instructor], visitor [guest]",
        "= Rooms: #lab (2), #lobby (0)",
    ] {
        assert!(bodies.iter().any(|b| b == expected), "{expected}");
    }
}

#[test]
fn a_stamped_line_renders_once_per_format() {
    let clock = Clock::new("%H:%M:%S", true);
    let line = Stamped::new(1_764_011_103_123, ServerLine::Notice(Notice::HistoryEnd));
    assert_eq!(&line.wire(&clock)[..], b"[19:05:03] * End of history.\n");
    assert!(std::ptr::eq(line.wire(&clock), line.wire(&clock)));
}

#[test]
fn a_line_without_a_kind_is_unrecognized() {
    assert!(ServerLine::parse("hello").is_err());
    assert!(ServerLine::parse("[PM from bob").is_err());
    assert_eq!(
        ServerLine::parse("* Welcome, class! Enjoy."),
        Ok(ServerLine::Notice(Notice::Text(
            "Welcome, class! Enjoy.".into()
        )))
    );
}

fn nick() -> impl Strategy<Value = Name> {
    "[A-Za-z][A-Za-z0-9_-]{0,15}".prop_map(|s| Name::from(s.as_str()))
}

fn room() -> impl Strategy<Value = Name> {
    "[a-z0-9_-]{1,32}".prop_map(|s| Name::from(s.as_str()))
}

fn text() -> impl Strategy<Value = String> {
    "[^\n\r]{1,40}"
        .prop_map(|s| s.trim().to_owned())
        .prop_filter("empty", |s| !s.is_empty())
}

fn any_line() -> impl Strategy<Value = ServerLine> {
    prop_oneof![
        (nick(), text()).prop_map(|(from, text)| ServerLine::Chat {
            from,
            text: text.into()
        }),
        (nick(), text()).prop_map(|(from, text)| ServerLine::PmFrom {
            from,
            text: text.into()
        }),
        (nick(), text()).prop_map(|(to, text)| ServerLine::PmTo {
            to,
            text: text.into()
        }),
        text().prop_map(ServerLine::Error),
        (nick(), room(), 0usize..10_000).prop_map(|(nick, room, others)| {
            ServerLine::Notice(Notice::Welcome { nick, room, others })
        }),
        (nick(), room(), text()).prop_map(|(nick, room, why)| {
            ServerLine::Notice(Notice::Left {
                nick,
                room,
                reason: LeaveReason::Quit(Some(why)),
            })
        }),
        (nick(), nick()).prop_map(|(old, new)| ServerLine::Notice(Notice::Renamed { old, new })),
        (nick(), 1u32..100_000).prop_map(|(by, tenths)| {
            ServerLine::Notice(Notice::Muted {
                by,
                minutes: Some(f64::from(tenths) / 10.0),
            })
        }),
        (nick(), text())
            .prop_map(|(from, text)| { ServerLine::Notice(Notice::Announcement { from, text }) }),
        (
            room(),
            proptest::collection::vec((nick(), any::<bool>()), 0..5)
        )
            .prop_map(|(room, members)| ServerLine::Answer(Answer::Who {
                room,
                members: members
                    .into_iter()
                    .map(|(nick, teacher)| WhoEntry {
                        nick,
                        role: teacher.then_some(Role::Instructor),
                        away: false,
                    })
                    .collect(),
            })),
        proptest::collection::vec((room(), 0usize..500), 0..5)
            .prop_map(|rooms| ServerLine::Answer(Answer::Rooms(rooms))),
    ]
}

proptest! {
    #[test]
    fn rendered_lines_parse_back(line in any_line()) {
        let body = line.render_body();
        let parsed = ServerLine::parse(&body).unwrap();
        prop_assert_eq!(parsed.render_body(), body);
        prop_assert_eq!(parsed.kind(), line.kind());
    }

    #[test]
    fn whatever_parses_renders_to_what_was_read(body in "[^\n]{0,80}") {
        if let Ok(line) = ServerLine::parse(&body) {
            prop_assert_eq!(line.render_body(), body);
        }
    }
}

#[test]
fn a_handshake_timeout_names_what_was_asked_for() {
    use crate::protocol::LoginError;
    let said = |asking| ServerLine::Error(LoginError::timed_out(30, asking).to_string());
    assert_eq!(
        said(None).to_string(),
        "! No username given within 30 seconds; goodbye."
    );
    assert_eq!(
        said(Some(CodeKind::JoinCode)).to_string(),
        "! No code given within 30 seconds; goodbye."
    );
    assert_eq!(
        said(Some(CodeKind::Personal)).to_string(),
        "! No code given within 30 seconds; goodbye."
    );
    assert_eq!(
        LoginError::timed_out(1, Some(CodeKind::Password)).to_string(),
        "No password given within 1 second; goodbye."
    );
}

#[test]
fn counts_of_one_are_singular() {
    let history = |count| {
        ServerLine::Notice(Notice::HistoryStart {
            room: name("lab"),
            count,
        })
        .to_string()
    };
    assert_eq!(history(1), "* Last 1 message in #lab:");
    assert_eq!(history(2), "* Last 2 messages in #lab:");
    assert_eq!(
        ServerLine::parse("* Last 1 message in #lab:"),
        Ok(ServerLine::Notice(Notice::HistoryStart {
            room: name("lab"),
            count: 1
        }))
    );
    use crate::protocol::{CommandError, LoginError, NickError};
    assert_eq!(
        CommandError::SlowDown(1).to_string(),
        "Slow down (at most 1 line a second); that message was not sent."
    );
    assert_eq!(
        NickError::TooLong(1).to_string(),
        "Username too long (max 1 character)"
    );
    assert_eq!(
        LoginError::Full(1).to_string(),
        "Server is full (1 user); try again later."
    );
}
