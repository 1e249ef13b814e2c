//! Attendance (SPEC 11) from outside: a term's timetable in a time zone other
//! than the machine's, sessions staff run with `/session`, and `chat-server
//! report --by session|week` and `--format gradebook` over them.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::access::{password_hash, PASSWORD};
use crate::harness::{enable_irc, TestServer};

const SERVER: &str = env!("CARGO_BIN_EXE_chat-server");

fn run(args: &[&str]) -> String {
    let out = Command::new(SERVER).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A class in New York: lectures Monday and Wednesday 10:00-11:30 (15:00-16:30
/// UTC in winter), a roster of four students and an instructor, and a record
/// written directly so that its times are minutes apart:
/// - Mon 2026-11-30: amy on time to the end, says a line; ben 20 minutes late;
///   cat on time but gone after 30 minutes; dan never comes; prof throughout.
/// - Wed 2026-12-02: amy throughout; ben arrives 80 minutes late and speaks.
/// - Thu 2026-12-03: prof runs a review in #lobby, 18:00-18:30 UTC, by hand;
///   amy is there.
/// - Mon 2026-12-07: amy only.
fn term(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("class.db");
    let roster = |args: &[&str]| {
        let out = Command::new(SERVER)
            .arg("roster")
            .args(args)
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    };
    roster(&["add", "amy", "ben", "cat", "dan"]);
    roster(&["add", "prof", "--instructor"]);

    use classchat::event::{Event, EventKind::*};
    let at = |when: &str| classchat::report::parse_time(when).unwrap();
    let ev = |when: &str, session, kind, sender: &str, text: Option<&str>| Event {
        ts_ms: at(when),
        kind,
        room: "lobby".into(),
        sender: sender.into(),
        recipient: None,
        text: text.map(String::from),
        session,
        account: Some(sender.into()),
    };
    let quit = Some("Quit");
    let events = [
        // Monday, week 49.
        ev("2026-11-30 14:50", 1, Join, "prof", None),
        ev("2026-11-30 14:50", 1, Op, "prof", None),
        ev("2026-11-30 14:55", 2, Join, "amy", None),
        ev("2026-11-30 15:00", 4, Join, "cat", None),
        ev(
            "2026-11-30 15:10",
            2,
            Chat,
            "amy",
            Some("good morning everyone"),
        ),
        ev("2026-11-30 15:20", 3, Join, "ben", None),
        ev("2026-11-30 15:30", 4, Leave, "cat", quit),
        ev("2026-11-30 16:30", 3, Leave, "ben", quit),
        ev("2026-11-30 16:35", 2, Leave, "amy", quit),
        ev("2026-11-30 16:40", 1, Leave, "prof", quit),
        // Wednesday.
        ev("2026-12-02 14:58", 5, Join, "amy", None),
        ev("2026-12-02 16:20", 6, Join, "ben", None),
        ev("2026-12-02 16:25", 6, Chat, "ben", Some("sorry, bus")),
        ev("2026-12-02 16:31", 6, Leave, "ben", quit),
        ev("2026-12-02 16:31", 5, Leave, "amy", quit),
        // Thursday, by hand.
        ev("2026-12-03 17:55", 7, Join, "prof", None),
        ev("2026-12-03 17:55", 7, Op, "prof", None),
        ev("2026-12-03 17:56", 8, Join, "amy", None),
        ev(
            "2026-12-03 18:00",
            7,
            Session,
            "prof",
            Some("start: Review"),
        ),
        ev(
            "2026-12-03 18:10",
            8,
            Chat,
            "amy",
            Some("what about question three"),
        ),
        ev("2026-12-03 18:30", 7, Session, "prof", Some("end")),
        ev("2026-12-03 18:40", 8, Leave, "amy", quit),
        ev("2026-12-03 18:40", 7, Leave, "prof", quit),
        // Monday, week 50.
        ev("2026-12-07 15:00", 9, Join, "amy", None),
        ev("2026-12-07 16:30", 9, Leave, "amy", quit),
    ];
    let mut conn = classchat::store::open_database(&db).unwrap();
    classchat::store::migrate(&mut conn).unwrap();
    classchat::store::insert_events(&mut conn, &events).unwrap();
    let config = dir.join("class.toml");
    let toml = format!(
        r#"[storage]
database = "{}"

[class]
timezone = "America/New_York"

[[class.sessions]]
days = ["Mon", "Wed"]
start = "10:00"
end = "11:30"
title = "Lecture"
"#,
        db.display()
    );
    std::fs::write(&config, toml).unwrap();
    config
}

fn report(config: &Path, args: &[&str]) -> String {
    let mut all = vec!["report", "--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run(&all)
}

fn json(config: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = args.to_vec();
    all.extend_from_slice(&["--format", "json"]);
    let text = report(config, &all);
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

/// The row of `name` in `session`.
fn row<'a>(rows: &'a [Value], session: &str, name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["session"] == session && r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {session}: {rows:#?}"))
}

#[test]
fn by_session_says_who_came_on_time_late_left_early_or_never() {
    let dir = tempfile::tempdir().unwrap();
    let config = term(dir.path());
    let rows = json(&config, &["--by", "session"]);
    let monday = "2026-11-30 10:00 Lecture";
    let expect = |name, present: bool, online: i64, late: Value, messages: i64| {
        let r = row(&rows, monday, name);
        assert_eq!(r["present"], present, "{name}: {r}");
        assert_eq!(r["minutes_online"], online, "{name}: {r}");
        assert_eq!(r["minutes_late"], late, "{name}: {r}");
        assert_eq!(r["messages"], messages, "{name}: {r}");
    };
    expect("amy", true, 90, 0.into(), 1);
    expect("ben", true, 70, 20.into(), 0);
    expect("cat", false, 30, Value::Null, 0);
    expect("dan", false, 0, Value::Null, 0);
    // Staff are not students.
    assert!(rows.iter().all(|r| r["name"] != "prof"), "{rows:#?}");
    // Ten minutes online, but he spoke: present, 80 minutes late.
    let ben = row(&rows, "2026-12-02 10:00 Lecture", "ben");
    assert_eq!(
        (
            &ben["present"],
            &ben["minutes_online"],
            &ben["minutes_late"]
        ),
        (&Value::Bool(true), &Value::from(10), &Value::from(80))
    );
    // The review staff ran by hand, in New York time, with its room.
    let review = row(&rows, "2026-12-03 13:00 Review #lobby", "amy");
    assert_eq!(review["minutes_online"], 30);
    assert_eq!(review["messages"], 1);
    assert_eq!(
        row(&rows, "2026-12-03 13:00 Review #lobby", "ben")["present"],
        false
    );
    // Four sessions, four students each; no Wednesday 12-09: the record ends first.
    assert_eq!(rows.len(), 16, "{rows:#?}");
}

#[test]
fn by_week_counts_sessions_attended_and_words_per_iso_week() {
    let dir = tempfile::tempdir().unwrap();
    let config = term(dir.path());
    let rows = json(&config, &["--by", "week"]);
    let week = |week: &str, name: &str| {
        rows.iter()
            .find(|r| r["week"] == week && r["name"] == name)
            .unwrap_or_else(|| panic!("no {week} row for {name}: {rows:#?}"))
            .clone()
    };
    let amy = week("2026-W49", "amy");
    assert_eq!(
        (amy["attended"].as_i64(), amy["sessions"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(
        (amy["messages"].as_i64(), amy["words"].as_i64()),
        (Some(2), Some(7))
    );
    assert_eq!(week("2026-W49", "ben")["attended"], 2);
    assert_eq!(week("2026-W49", "cat")["attended"], 0);
    let amy = week("2026-W50", "amy");
    assert_eq!(
        (amy["attended"].as_i64(), amy["sessions"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(week("2026-W50", "ben")["attended"], 0);
    // The table reads the same.
    let table = report(&config, &["--by", "week"]);
    assert!(table.lines().next().unwrap().starts_with("week"), "{table}");
    assert!(table.contains("2026-W50"), "{table}");
}

#[test]
fn the_gradebook_is_a_csv_with_a_column_per_session() {
    let dir = tempfile::tempdir().unwrap();
    let config = term(dir.path());
    let csv = report(&config, &["--format", "gradebook"]);
    let path = dir.path().join("gradebook.csv");
    std::fs::write(&path, &csv).unwrap();
    let Some(python) = crate::irc::program("python3") else {
        crate::harness::skip("python3 is not installed");
        return;
    };
    // Read back as a spreadsheet import would: Python's csv module.
    let script =
        "import csv, json, sys\nprint(json.dumps(list(csv.reader(open(sys.argv[1], newline='')))))";
    let out = Command::new(python)
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let table: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        table[0],
        [
            "name",
            "full_name",
            "2026-11-30 10:00 Lecture",
            "2026-12-02 10:00 Lecture",
            "2026-12-03 13:00 Review #lobby",
            "2026-12-07 10:00 Lecture",
            "attended"
        ]
    );
    let grades: Vec<Vec<&str>> = table[1..]
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        grades,
        [
            ["amy", "", "1", "1", "1", "1", "4"],
            ["ben", "", "1", "1", "0", "0", "2"],
            ["cat", "", "0", "0", "0", "0", "0"],
            ["dan", "", "0", "0", "0", "0", "0"],
        ]
    );
}

/// `/session start` and `/session end` by staff, on the line port and seen over
/// IRC in the channel; refused to students; in the report afterwards.
#[tokio::test]
async fn staff_run_a_session_by_hand_and_the_report_takes_attendance() {
    let server = TestServer::start_with(|c| {
        enable_irc(c);
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = password_hash().to_owned();
    })
    .await;
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's").await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    let mut amy = server.login("amy").await;
    let mut ian = server.irc_login("ian").await;
    prof.expect("* ian has joined #lobby").await;
    amy.expect("* ian has joined #lobby").await;

    amy.send("/session start").await;
    amy.expect_next("! Permission denied").await;
    prof.send("/session start Lab 3").await;
    amy.expect("* prof started the session: Lab 3").await;
    let started = ian.expect_verb("NOTICE").await;
    assert_eq!(started.params[0], "#lobby", "{}", started.raw);
    assert_eq!(started.text(), "prof started the session: Lab 3");
    prof.send("/session start again").await;
    prof.expect("! A session is already running in #lobby; end it first with /session end.")
        .await;
    amy.send("here").await;
    // Not to wait for anything: a session needs a length for anyone to attend
    // it, and these lines take less than a millisecond.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    ian.send("SESSION end").await;
    ian.expect_verb("481").await;
    prof.send("/session end").await;
    amy.expect("* prof ended the session: Lab 3 (0 min)").await;
    prof.send("/session end").await;
    prof.expect("! No session is running in #lobby.").await;

    let config = server.config.clone();
    let _dir = server.stop().await;
    let db = config.storage.database.to_str().unwrap().to_owned();
    let text = run(&["report", "--db", &db, "--by", "session", "--format", "json"]);
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["amy", "ian"], "{rows:#?}");
    assert!(rows[0]["session"]
        .as_str()
        .unwrap()
        .ends_with(" Lab 3 #lobby"));
    assert_eq!(rows[0]["present"], true);
    assert_eq!(rows[0]["messages"], 1);
    assert_eq!(rows[0]["minutes_late"], 0);
}
