use super::output::{format_duration, CSV_HEADER};
use super::*;
use crate::event::EventKind;
use crate::store;
use rusqlite::Connection;
use serde_json::json;

/// 2026-11-24T19:00:00Z
const T0: i64 = 1_795_546_800_000;
const MIN: i64 = 60_000;

fn at(secs: i64) -> i64 {
    T0 + secs * 1000
}

/// For a pm, kick, mute or unmute, `text` is `recipient[:text]`.
fn ev(
    secs: i64,
    session: i64,
    kind: EventKind,
    room: &str,
    sender: &str,
    text: Option<&str>,
) -> Event {
    use EventKind::*;
    let (recipient, text) = match (kind, text) {
        (Private | Kick | Mute | Unmute, Some(t)) => match t.split_once(':') {
            Some((to, t)) => (Some(to.into()), Some(t.to_owned())),
            None => (Some(t.into()), None),
        },
        (_, t) => (None, t.map(String::from)),
    };
    Event {
        ts_ms: at(secs),
        kind,
        room: room.into(),
        sender: sender.into(),
        recipient,
        text,
        session,
        account: None,
    }
}

/// alice (session 1) renames to Alicia, moves to lab and quits; bob (session 2)
/// stays in the lobby until Prof (session 4, appended last so that the indexes
/// above stay put) ops, mutes, unmutes and kicks him, and mutes the gone Alicia;
/// she comes back as "Alice" (session 3) and times out.
fn script() -> Vec<Event> {
    use EventKind::*;
    vec![
        ev(0, 1, Join, "lobby", "alice", None),
        ev(5, 2, Join, "lobby", "bob", None),
        ev(10, 1, Chat, "lobby", "alice", Some("hello everyone")),
        ev(15, 2, Chat, "lobby", "bob", Some("hi alice")),
        ev(20, 1, Nick, "lobby", "alice", Some("Alicia")),
        ev(30, 1, Chat, "lobby", "Alicia", Some("my new name, same me")),
        ev(40, 1, Leave, "lobby", "Alicia", Some("joined #lab")),
        ev(40, 1, Join, "lab", "Alicia", None),
        ev(50, 1, Chat, "lab", "Alicia", Some("lab time")),
        ev(60, 1, Private, "lab", "Alicia", Some("bob:psst, bob")),
        ev(
            70,
            2,
            Private,
            "lobby",
            "bob",
            Some("Alicia:hey \"you\", hi"),
        ),
        ev(100, 1, Leave, "lab", "Alicia", Some("Quit: bye")),
        ev(160, 2, Leave, "lobby", "bob", Some("Kicked: spamming")),
        ev(3600, 3, Join, "lobby", "Alice", None),
        ev(
            3610,
            3,
            Chat,
            "lobby",
            "Alice",
            Some("back again, with commas"),
        ),
        ev(3725, 3, Leave, "lobby", "Alice", Some("Timed out")),
        ev(110, 4, Join, "lobby", "Prof", None),
        ev(115, 4, Op, "lobby", "Prof", None),
        ev(120, 4, Mute, "lobby", "Prof", Some("BOB:5")),
        ev(130, 4, Unmute, "lobby", "Prof", Some("bob")),
        ev(140, 4, Announce, "lobby", "Prof", Some("quiz in five")),
        ev(150, 4, Quiet, "lobby", "Prof", Some("on")),
        ev(155, 4, Mute, "lobby", "Prof", Some("alicia")),
        ev(160, 4, Kick, "lobby", "Prof", Some("bob:spamming")),
        // Nobody ever spoke as "ghost": an action of Prof's, aimed at no one.
        ev(165, 4, Kick, "lobby", "Prof", Some("ghost")),
        ev(170, 4, Quiet, "lobby", "Prof", Some("off")),
        ev(180, 4, Leave, "lobby", "Prof", Some("Quit: done")),
    ]
}

fn db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    store::migrate(&mut conn).unwrap();
    store::insert_events(&mut conn, &script()).unwrap();
    conn
}

fn alice() -> StudentRow {
    StudentRow {
        name: "Alice".into(),
        full_name: None,
        messages: 4,
        private_messages: 1,
        words: 15,
        rooms: vec!["lab".into(), "lobby".into()],
        first_seen_ms: at(0),
        last_seen_ms: at(3725),
        online_ms: 225_000,
        instructor: false,
        moderation_actions: 0,
        kicked: 0,
        muted: 1,
        other_names: vec!["Alicia".into()],
        hands: 0,
        questions: 0,
        answers: vec![],
    }
}

fn bob() -> StudentRow {
    StudentRow {
        name: "bob".into(),
        full_name: None,
        messages: 1,
        private_messages: 1,
        words: 5,
        rooms: vec!["lobby".into()],
        first_seen_ms: at(5),
        last_seen_ms: at(160),
        online_ms: 155_000,
        instructor: false,
        moderation_actions: 0,
        kicked: 1,
        muted: 1,
        other_names: vec![],
        hands: 0,
        questions: 0,
        answers: vec![],
    }
}

fn prof() -> StudentRow {
    StudentRow {
        name: "Prof".into(),
        full_name: None,
        messages: 0,
        private_messages: 0,
        words: 0,
        rooms: vec!["lobby".into()],
        first_seen_ms: at(110),
        last_seen_ms: at(180),
        online_ms: 70_000,
        instructor: true,
        moderation_actions: 8,
        kicked: 0,
        muted: 0,
        other_names: vec![],
        hands: 0,
        questions: 0,
        answers: vec![],
    }
}

fn rows(filter: Filter) -> Vec<StudentRow> {
    student_rows(&db(), &filter).unwrap()
}

fn output(filter: Filter, format: Option<Format>) -> String {
    let mut out = Vec::new();
    match format {
        Some(format) => write_report(&db(), &filter, format, &mut out).unwrap(),
        None => write_transcript(&db(), &filter, &mut out).unwrap(),
    }
    String::from_utf8(out).unwrap()
}

fn user(name: &str) -> Filter {
    Filter {
        user: Some(name.into()),
        ..Filter::default()
    }
}

#[test]
fn one_row_per_student_across_nicks_and_reconnections() {
    assert_eq!(rows(Filter::default()), vec![alice(), bob(), prof()]);
}

#[test]
fn table_is_aligned_and_readable() {
    let expected = "\
name   messages  pms  words  rooms      first seen           last seen            online  moderation             other names
Alice         4    1     15  lab lobby  2026-11-24 19:00:00  2026-11-24 20:02:05  3m 45s  muted 1                Alicia
bob           1    1      5  lobby      2026-11-24 19:00:05  2026-11-24 19:02:40  2m 35s  kicked 1, muted 1
Prof          0    0      0  lobby      2026-11-24 19:01:50  2026-11-24 19:03:00  1m 10s  instructor, 8 actions
";
    assert_eq!(output(Filter::default(), Some(Format::Table)), expected);
}

#[test]
fn csv_parses_back_with_every_field() {
    let text = output(Filter::default(), Some(Format::Csv));
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    assert_eq!(reader.headers().unwrap(), &CSV_HEADER[..]);
    let records: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    let expected = [
        [
            "Alice",
            "",
            "4",
            "1",
            "15",
            "lab lobby",
            "2026-11-24T19:00:00.000Z",
            "2026-11-24T20:02:05.000Z",
            "225",
            "false",
            "0",
            "0",
            "1",
            "Alicia",
            "0",
            "0",
            "",
        ],
        [
            "bob",
            "",
            "1",
            "1",
            "5",
            "lobby",
            "2026-11-24T19:00:05.000Z",
            "2026-11-24T19:02:40.000Z",
            "155",
            "false",
            "0",
            "1",
            "1",
            "",
            "0",
            "0",
            "",
        ],
        [
            "Prof",
            "",
            "0",
            "0",
            "0",
            "lobby",
            "2026-11-24T19:01:50.000Z",
            "2026-11-24T19:03:00.000Z",
            "70",
            "true",
            "8",
            "0",
            "0",
            "",
            "0",
            "0",
            "",
        ],
    ];
    assert_eq!(records, expected.map(|r| r.map(String::from).to_vec()));
}

#[test]
fn json_parses_back_with_every_field() {
    let text = output(Filter::default(), Some(Format::Json));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let expected = json!([
        {"name": "Alice", "full_name": null, "messages": 4, "private_messages": 1, "words": 15, "rooms": ["lab", "lobby"],
         "first_seen": "2026-11-24T19:00:00.000Z", "last_seen": "2026-11-24T20:02:05.000Z",
         "online_secs": 225, "instructor": false, "moderation_actions": 0, "kicked": 0,
         "muted": 1, "other_names": ["Alicia"], "hands": 0, "questions": 0, "answers": []},
        {"name": "bob", "full_name": null, "messages": 1, "private_messages": 1, "words": 5, "rooms": ["lobby"],
         "first_seen": "2026-11-24T19:00:05.000Z", "last_seen": "2026-11-24T19:02:40.000Z",
         "online_secs": 155, "instructor": false, "moderation_actions": 0, "kicked": 1,
         "muted": 1, "other_names": [], "hands": 0, "questions": 0, "answers": []},
        {"name": "Prof", "full_name": null, "messages": 0, "private_messages": 0, "words": 0, "rooms": ["lobby"],
         "first_seen": "2026-11-24T19:01:50.000Z", "last_seen": "2026-11-24T19:03:00.000Z",
         "online_secs": 70, "instructor": true, "moderation_actions": 8, "kicked": 0,
         "muted": 0, "other_names": [], "hands": 0, "questions": 0, "answers": []},
    ]);
    // The keys come in column order, moderation right before other_names.
    let first = &text[..text.find('}').unwrap()];
    let at = |key: &&str| first.find(&format!("\"{key}\":")).unwrap();
    assert_eq!(value, expected);
    assert!(CSV_HEADER.iter().map(at).is_sorted(), "{first}");
}

#[test]
fn empty_results_in_every_format() {
    let none = || user("nobody");
    assert_eq!(
        output(none(), Some(Format::Table)).lines().nth(1),
        Some("(no students match)")
    );
    assert_eq!(
        output(none(), Some(Format::Csv)),
        format!("{}\n", CSV_HEADER.join(","))
    );
    assert_eq!(output(none(), Some(Format::Json)), "[]\n");
    assert_eq!(output(none(), None), "");
}

#[test]
fn room_filter_counts_only_that_room() {
    // Time online in #lab is her stay there, from her join at 40 s to her /quit
    // at 100 s, not her whole connection.
    let lab = StudentRow {
        messages: 1,
        words: 4,
        rooms: vec!["lab".into()],
        first_seen_ms: at(40),
        last_seen_ms: at(100),
        online_ms: 60_000,
        // Prof muted her in the lobby, not in the lab.
        muted: 0,
        ..alice()
    };
    assert_eq!(
        rows(Filter {
            room: Some("#LAB".into()),
            ..Filter::default()
        }),
        vec![lab]
    );
    // 0-40 s before she moved to #lab, then 3600-3725 s on her second connection.
    let lobby = StudentRow {
        messages: 3,
        private_messages: 0,
        words: 11,
        rooms: vec!["lobby".into()],
        online_ms: 165_000,
        ..alice()
    };
    assert_eq!(
        rows(Filter {
            room: Some("lobby".into()),
            ..Filter::default()
        }),
        vec![lobby, bob(), prof()]
    );
}

#[test]
fn user_filter_finds_the_student_by_any_name() {
    assert_eq!(rows(user("ALICIA")), vec![alice()]);
    assert_eq!(rows(user("alice")), vec![alice()]);
    // Prof's kick and mute of bob count for bob without listing Prof.
    assert_eq!(rows(user("Bob")), vec![bob()]);
    assert_eq!(rows(user("prof")), vec![prof()]);
    assert_eq!(rows(user("nobody")), vec![]);
    assert_eq!(rows(user("ghost")), vec![]);
}

#[test]
fn moderation_counts_for_the_instructor_and_the_target() {
    let window = |since, until| Filter {
        since: Some(at(since)),
        until: Some(at(until)),
        ..Filter::default()
    };
    // An op, a mute, an unmute and an announcement: no messages, no words. Both
    // were online until the window's end, so they were last seen there.
    let opped = StudentRow {
        last_seen_ms: at(145),
        online_ms: 35_000,
        moderation_actions: 3,
        ..prof()
    };
    // bob said nothing in the window but was there: listed, with the mute aimed
    // at him.
    let present = StudentRow {
        messages: 0,
        private_messages: 0,
        words: 0,
        first_seen_ms: at(110),
        last_seen_ms: at(145),
        online_ms: 35_000,
        kicked: 0,
        ..bob()
    };
    assert_eq!(rows(window(110, 145)), vec![present, opped]);
    // Prof's /op at 115 s is before this window: he is still the instructor in it.
    let acting = StudentRow {
        first_seen_ms: at(120),
        last_seen_ms: at(135),
        online_ms: 15_000,
        moderation_actions: 2,
        ..prof()
    };
    let muted_then = StudentRow {
        messages: 0,
        private_messages: 0,
        words: 0,
        first_seen_ms: at(120),
        last_seen_ms: at(135),
        online_ms: 15_000,
        kicked: 0,
        ..bob()
    };
    assert_eq!(rows(window(120, 135)), vec![muted_then.clone(), acting]);
    let bob_then = Filter {
        user: Some("bob".into()),
        ..window(120, 135)
    };
    assert_eq!(rows(bob_then), vec![muted_then]);
    // The kick and bob's own "Kicked" leave fall in the same window; his
    // connection ends at the leave, so no time online is left in it.
    let kicked = StudentRow {
        messages: 0,
        private_messages: 0,
        words: 0,
        first_seen_ms: at(160),
        online_ms: 0,
        muted: 0,
        ..bob()
    };
    let kicking = StudentRow {
        first_seen_ms: at(160),
        last_seen_ms: at(166),
        online_ms: 6_000,
        moderation_actions: 2,
        ..prof()
    };
    assert_eq!(rows(window(160, 166)), vec![kicked, kicking]);
}

#[test]
fn the_instructor_mark_follows_the_connection_not_the_filter() {
    // The /op was in the lobby at 115 s; a window after it, or a room filter that
    // leaves the op out, still shows Prof as the instructor he was.
    let after = Filter {
        since: Some(at(170)),
        ..Filter::default()
    };
    let rows_after = rows(after);
    assert!(rows_after.iter().any(|r| r.name == "Prof" && r.instructor));
    // Nobody else ever used /op.
    assert!(rows(Filter::default())
        .iter()
        .all(|r| r.instructor == (r.name == "Prof")));
}

#[test]
fn online_time_fits_between_first_and_last_seen_under_every_filter() {
    let mut filters = vec![Filter::default()];
    for room in [None, Some("lobby"), Some("lab")] {
        for (since, until) in [(0, 15), (5, 15), (45, 3650), (110, 145), (3600, 4000)] {
            filters.push(Filter {
                room: room.map(String::from),
                since: Some(at(since)),
                until: Some(at(until)),
                ..Filter::default()
            });
        }
    }
    for filter in filters {
        for row in rows(filter.clone()) {
            let seen = row.last_seen_ms - row.first_seen_ms;
            assert!(row.online_ms <= seen, "{filter:?}: {row:?}");
            if let Some(since) = filter.since {
                assert!(row.first_seen_ms >= since, "{filter:?}: {row:?}");
            }
            if let Some(until) = filter.until {
                assert!(row.last_seen_ms <= until, "{filter:?}: {row:?}");
            }
        }
    }
}

#[test]
fn overlapping_connections_count_once() {
    use EventKind::*;
    let mut conn = Connection::open_in_memory().unwrap();
    store::migrate(&mut conn).unwrap();
    // carol logs in from a laptop at 0 s and from a phone at 30 s; both end at 60 s.
    let events = vec![
        ev(0, 1, Join, "lobby", "carol", None),
        ev(30, 2, Join, "lobby", "carol", None),
        ev(60, 1, Leave, "lobby", "carol", Some("Quit")),
        ev(60, 2, Leave, "lobby", "carol", Some("Quit")),
    ];
    store::insert_events(&mut conn, &events).unwrap();
    let rows = student_rows(&conn, &Filter::default()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].online_ms, 60_000);
}

#[test]
fn time_filters_cut_events_and_online_time() {
    let since = Filter {
        since: Some(at(3600)),
        ..Filter::default()
    };
    let back = StudentRow {
        messages: 1,
        private_messages: 0,
        words: 4,
        rooms: vec!["lobby".into()],
        first_seen_ms: at(3600),
        online_ms: 125_000,
        muted: 0,
        ..alice()
    };
    assert_eq!(rows(since), vec![back]);
    // since is inclusive, until exclusive: bob's join at 5 s is in, his chat at
    // 15 s is out; both connections count only from 5 s to 15 s, and both
    // students were there, so seen, for the whole window.
    let window = Filter {
        since: Some(at(5)),
        until: Some(at(15)),
        ..Filter::default()
    };
    let early = StudentRow {
        messages: 1,
        private_messages: 0,
        words: 2,
        rooms: vec!["lobby".into()],
        first_seen_ms: at(5),
        last_seen_ms: at(15),
        online_ms: 10_000,
        muted: 0,
        ..alice()
    };
    let silent = StudentRow {
        messages: 0,
        private_messages: 0,
        words: 0,
        last_seen_ms: at(15),
        online_ms: 10_000,
        kicked: 0,
        muted: 0,
        ..bob()
    };
    assert_eq!(rows(window), vec![early, silent]);
}

#[test]
fn transcript_prints_filtered_lines_in_order() {
    let lines = |keep: &dyn Fn(usize, &Event) -> bool| -> String {
        let events = script()
            .into_iter()
            .enumerate()
            .filter(|(i, e)| keep(*i, e));
        events
            .map(|(_, e)| transcript::format_line(&e) + "\n")
            .collect()
    };
    assert_eq!(output(Filter::default(), None), lines(&|_, _| true));
    let to = |e: &Event, names: &[&str]| {
        let to = e.recipient.as_deref().unwrap_or("");
        names.iter().any(|n| n.eq_ignore_ascii_case(to))
    };
    // bob's own events, and what was aimed at him: Alicia's private message and
    // Prof's mute, unmute and kick.
    let bob = output(user("BOB"), None);
    assert_eq!(bob, lines(&|_, e| e.session == 2 || to(e, &["bob"])));
    assert!(bob.contains("kick Prof -> bob (spamming)"), "{bob}");
    // alice under every name, bob's private message to Alicia and Prof's mute.
    assert_eq!(
        output(user("alice"), None),
        lines(&|_, e| matches!(e.session, 1 | 3) || to(e, &["alice", "alicia"]))
    );
    // Prof's own events only: the kick of "ghost" is an action, not a target.
    assert_eq!(output(user("prof"), None), lines(&|_, e| e.session == 4));
    let lab = Filter {
        room: Some("lab".into()),
        ..Filter::default()
    };
    assert_eq!(output(lab, None), lines(&|_, e| &*e.room == "lab"));
    let window = Filter {
        since: Some(at(10)),
        until: Some(at(40)),
        ..Filter::default()
    };
    assert_eq!(output(window, None), lines(&|i, _| (2..6).contains(&i)));
}

#[test]
fn parse_time_accepts_the_documented_forms() {
    assert_eq!(parse_time("2026-11-24T19:00:00Z").unwrap(), T0);
    assert_eq!(parse_time("2026-11-24T20:00:00+01:00").unwrap(), T0);
    assert_eq!(parse_time("2026-11-24T19:00:00.250Z").unwrap(), T0 + 250);
    assert_eq!(parse_time("2026-11-24").unwrap(), T0 - 19 * 60 * MIN);
    assert_eq!(parse_time("2026-11-24 19:05").unwrap(), T0 + 5 * MIN);
    assert_eq!(parse_time("2026-11-24T19:05").unwrap(), T0 + 5 * MIN);
    assert_eq!(parse_time(" 2026-11-24 19:05:03 ").unwrap(), at(303));
    assert_eq!(parse_time("2026-11-24T19:05:03").unwrap(), at(303));
    for bad in ["last week", "2026-13-01", "2026-11-24 25:00", "25:00", ""] {
        let err = parse_time(bad).unwrap_err();
        assert!(
            matches!(&err, ReportError::BadTime(v) if v == bad.trim()),
            "{bad}"
        );
        assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn today_yesterday_and_a_time_of_day_are_local() {
    // 2026-11-24 10:30 in a place an hour ahead of UTC: its midnight is 23:00 UTC.
    let zone = chrono::FixedOffset::east_opt(3600).unwrap();
    let now = zone.with_ymd_and_hms(2026, 11, 24, 10, 30, 0).unwrap();
    let midnight = T0 - 20 * 60 * MIN;
    assert_eq!(parse_time_at("today", &now).unwrap(), midnight);
    assert_eq!(
        parse_time_at(" Yesterday ", &now).unwrap(),
        midnight - 24 * 60 * MIN
    );
    assert_eq!(parse_time_at("20:05", &now).unwrap(), T0 + 5 * MIN);
    assert_eq!(parse_time_at("20:05:03", &now).unwrap(), at(303));
    // Full dates stay UTC, whatever the zone.
    assert_eq!(
        parse_time_at("2026-11-24 19:05", &now).unwrap(),
        T0 + 5 * MIN
    );
}

#[test]
fn durations_read_naturally() {
    assert_eq!(format_duration(0), "0s");
    assert_eq!(format_duration(12_999), "12s");
    assert_eq!(format_duration(125_000), "2m 05s");
    assert_eq!(format_duration(3_723_000), "1h 02m 03s");
}

struct Closed(io::ErrorKind);

impl Write for Closed {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(self.0.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(self.0.into())
    }
}

#[test]
fn broken_pipe_is_its_own_error() {
    let (conn, all) = (db(), Filter::default());
    for format in [Format::Table, Format::Csv, Format::Json] {
        let err = write_report(&conn, &all, format, &mut Closed(io::ErrorKind::BrokenPipe));
        assert!(
            matches!(err, Err(ReportError::BrokenPipe)),
            "{format:?}: {err:?}"
        );
        let err = write_report(&conn, &all, format, &mut Closed(io::ErrorKind::Other));
        assert!(
            matches!(err, Err(ReportError::Io(_))),
            "{format:?}: {err:?}"
        );
    }
    let err = write_transcript(&conn, &all, &mut Closed(io::ErrorKind::BrokenPipe));
    assert!(matches!(err, Err(ReportError::BrokenPipe)), "{err:?}");
}

#[test]
fn csv_cells_never_run_as_formulas() {
    use super::output::formula_guard;
    for cell in ["=1+1", "+a", "-1-1", "@SUM(A1)", "\tx", "\rx"] {
        assert_eq!(formula_guard(cell), format!("'{cell}"));
    }
    for cell in ["lab", "12", "a-1", "'x"] {
        assert_eq!(formula_guard(cell), cell);
    }
}

#[test]
fn full_names_come_from_the_roster_in_every_format() {
    use EventKind::*;
    let mut conn = Connection::open_in_memory().unwrap();
    store::migrate(&mut conn).unwrap();
    conn.execute_batch(
        "INSERT INTO roster (name, role, full_name, code_hash, added_ms)
         VALUES ('Amy', 'student', 'Amy Pond', 'x', 0), ('rory', 'student', NULL, 'x', 0);",
    )
    .unwrap();
    let on = |account: &str, e: Event| Event {
        account: Some(account.into()),
        ..e
    };
    let events = vec![
        on("amy", ev(0, 1, Join, "lobby", "amy", None)),
        on("amy", ev(5, 1, Chat, "lobby", "amy", Some("hello"))),
        on("rory", ev(6, 2, Join, "lobby", "rory", None)),
        // A guest, not on the roster: no account. The roster's "Amy" is "amy" here.
        ev(7, 3, Join, "lobby", "visitor", None),
    ];
    store::insert_events(&mut conn, &events).unwrap();
    let full_names: Vec<_> = student_rows(&conn, &Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.full_name))
        .collect();
    assert_eq!(
        full_names,
        [
            ("amy".to_owned(), Some("Amy Pond".to_owned())),
            ("rory".to_owned(), None),
            ("visitor".to_owned(), None),
        ]
    );
    let print = |format| {
        let mut out = Vec::new();
        write_report(&conn, &Filter::default(), format, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    };
    let table = print(Format::Table);
    assert!(table.starts_with("name     full name  messages"), "{table}");
    assert!(table.contains("\namy      Amy Pond          1"), "{table}");
    let csv = print(Format::Csv);
    assert!(csv.starts_with("name,full_name,messages,"), "{csv}");
    assert!(csv.contains("\namy,Amy Pond,1,"), "{csv}");
    assert!(csv.contains("\nrory,,0,"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&print(Format::Json)).unwrap();
    assert_eq!(json[0]["full_name"], "Amy Pond");
    assert_eq!(json[1]["full_name"], serde_json::Value::Null);
}

#[test]
fn an_action_counts_as_a_message_with_its_words_and_reads_as_one() {
    use EventKind::*;
    let mut conn = Connection::open_in_memory().unwrap();
    store::migrate(&mut conn).unwrap();
    let events = [
        ev(0, 1, Join, "lobby", "sam", None),
        ev(5, 1, Chat, "lobby", "sam", Some("hello")),
        ev(6, 1, Action, "lobby", "sam", Some("waves at everyone")),
    ];
    store::insert_events(&mut conn, &events).unwrap();
    let rows = student_rows(&conn, &Filter::default()).unwrap();
    assert_eq!((rows[0].messages, rows[0].words), (2, 4));
    let mut out = Vec::new();
    write_transcript(&conn, &Filter::default(), &mut out).unwrap();
    let transcript = String::from_utf8(out).unwrap();
    assert!(
        transcript.contains("#lobby action * sam waves at everyone"),
        "{transcript}"
    );
}
