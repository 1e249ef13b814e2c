//! `chat-server report` and `chat-server transcript` over a scripted session.

use std::process::Command;

use crate::harness::TestServer;
use crate::persistence::{scripted_session, transcript_lines};

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

#[tokio::test]
async fn report_counts_the_scripted_session_in_every_format() {
    let server = TestServer::start().await;
    scripted_session(&server).await;
    let config = server.config.clone();
    let _dir = server.stop().await;
    let db = config.storage.database.to_str().unwrap().to_owned();

    let json: serde_json::Value =
        serde_json::from_str(&run(&["report", "--db", &db, "--format", "json"])).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json:#}");
    // SPEC 3: a student is the name given at log-in; bob said his lines as
    // robert, and robert is one of his other names.
    let (alice, robert) = (&rows[0], &rows[1]);
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["messages"], 1);
    assert_eq!(alice["private_messages"], 0);
    assert_eq!(alice["words"], 2);
    assert_eq!(alice["rooms"], serde_json::json!(["lobby"]));
    assert_eq!(alice["other_names"], serde_json::json!([]));
    assert_eq!(robert["name"], "bob");
    assert_eq!(robert["messages"], 1);
    assert_eq!(robert["private_messages"], 1);
    assert_eq!(robert["words"], 6);
    assert_eq!(robert["rooms"], serde_json::json!(["lab", "lobby"]));
    assert_eq!(robert["other_names"], serde_json::json!(["robert"]));
    assert!(robert["online_secs"].as_i64().unwrap() >= 0);

    let csv = run(&["report", "--db", &db, "--format", "csv"]);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 2);
    let field = |row: usize, name: &str| {
        let col = header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name} in {header:?}"));
        records[row][col].to_owned()
    };
    assert_eq!(field(1, "name"), "bob");
    assert_eq!(field(1, "messages"), "1");
    assert_eq!(field(1, "private_messages"), "1");
    assert_eq!(field(1, "words"), "6");
    assert_eq!(field(1, "other_names"), "robert");

    let table = run(&["report", "--db", &db]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let robert_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&robert_row[..4], ["bob", "1", "1", "6"], "{table}");
    assert!(lines[2].ends_with("robert"), "{table}");

    let lab = run(&["report", "--db", &db, "--room", "#lab", "--format", "json"]);
    let lab: serde_json::Value = serde_json::from_str(&lab).unwrap();
    assert_eq!(lab.as_array().unwrap().len(), 1);
    assert_eq!(lab[0]["words"], 3);

    let transcript = run(&["transcript", "--db", &db]);
    let expected = transcript_lines(&config.log.dir).join("\n") + "\n";
    assert_eq!(transcript, expected);
    let bob_only = run(&[
        "transcript",
        "--db",
        &db,
        "--user",
        "ROBERT",
        "--room",
        "lab",
    ]);
    assert_eq!(bob_only.lines().count(), 3, "{bob_only}");
}

#[test]
fn report_refuses_a_bad_time_and_a_missing_database() {
    let out = Command::new(SERVER)
        .args([
            "report",
            "--db",
            "/nonexistent/x.db",
            "--since",
            "last week",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(SERVER)
        .args(["report", "--db", "/nonexistent/x.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no database at /nonexistent/x.db"),
        "{stderr}"
    );
    assert!(stderr.contains("--db FILE or --config FILE"), "{stderr}");
}

#[tokio::test]
async fn report_finds_the_database_of_a_config_file_from_any_folder() {
    let top = tempfile::tempdir().unwrap();
    let class = top.path().join("classchat");
    std::fs::create_dir(&class).unwrap();
    let elsewhere = top.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    // The server ran beside class.toml, whose paths are relative.
    std::fs::write(
        class.join("class.toml"),
        "[storage]\ndatabase = \"data/classchat.db\"\n[log]\ndir = \"logs\"\n",
    )
    .unwrap();
    let server = TestServer::start_with(|c| {
        c.storage.database = class.join("data/classchat.db");
        c.log.dir = class.join("logs");
    })
    .await;
    scripted_session(&server).await;
    let _dir = server.stop().await;
    let out = Command::new(SERVER)
        .args([
            "report",
            "--config",
            "../classchat/class.toml",
            "--format",
            "csv",
        ])
        .current_dir(&elsewhere)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(!elsewhere.join("data").exists());
    // The session was today, local time: in `--since today`, not in yesterday.
    let config = class.join("class.toml");
    let config = config.to_str().unwrap();
    let today = run(&[
        "report", "--config", config, "--since", "today", "--format", "csv",
    ]);
    assert_eq!(today.lines().count(), 3, "{today}");
    let before = [
        "report",
        "--config",
        config,
        "--since",
        "yesterday",
        "--until",
        "00:00",
        "--format",
        "csv",
    ];
    assert_eq!(run(&before).lines().count(), 1);
}

/// One class, stored directly so that its times are minutes apart: prof joins
/// at 10:00 and types /op at 10:01; dana is in #lobby 10:00-10:10, in #lab
/// 10:10-10:40, back in #lobby until she quits at 10:50.
fn class_of_minutes(db: &std::path::Path) {
    use classchat::event::{Event, EventKind::*};
    let t0 = classchat::report::parse_time("2026-11-24 10:00").unwrap();
    let ev = |min: i64, session, kind, room: &str, sender: &str, text: Option<&str>| Event {
        ts_ms: t0 + min * 60_000,
        kind,
        room: room.into(),
        sender: sender.into(),
        recipient: None,
        text: text.map(String::from),
        session,
        account: None,
    };
    let events = [
        ev(0, 1, Join, "lobby", "prof", None),
        ev(0, 2, Join, "lobby", "dana", None),
        ev(1, 1, Op, "lobby", "prof", None),
        ev(10, 2, Leave, "lobby", "dana", Some("joined #lab")),
        ev(10, 2, Join, "lab", "dana", None),
        ev(20, 2, Chat, "lab", "dana", Some("question about part 2")),
        ev(40, 2, Leave, "lab", "dana", Some("joined #lobby")),
        ev(40, 2, Join, "lobby", "dana", None),
        ev(45, 1, Chat, "lobby", "prof", Some("five minutes left")),
        ev(50, 2, Leave, "lobby", "dana", Some("Quit")),
        ev(55, 1, Leave, "lobby", "prof", Some("Quit")),
    ];
    let mut conn = classchat::store::open_database(db).unwrap();
    classchat::store::migrate(&mut conn).unwrap();
    classchat::store::insert_events(&mut conn, &events).unwrap();
}

fn report_json(db: &str, filters: &[&str]) -> serde_json::Value {
    let mut args = vec!["report", "--db", db, "--format", "json"];
    args.extend_from_slice(filters);
    serde_json::from_str(&run(&args)).unwrap()
}

#[test]
fn filters_define_what_online_and_instructor_mean() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("class.db");
    class_of_minutes(&path);
    let db = path.to_str().unwrap();
    let row = |json: &serde_json::Value, name: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {json}"))
            .clone()
    };

    let all = report_json(db, &[]);
    assert_eq!(row(&all, "dana")["online_secs"], 50 * 60);

    // --room: the time spent in that room, not the whole connection.
    let lab = report_json(db, &["--room", "lab"]);
    assert_eq!(row(&lab, "dana")["online_secs"], 30 * 60);
    assert_eq!(row(&lab, "dana")["first_seen"], "2026-11-24T10:10:00.000Z");
    assert_eq!(row(&lab, "dana")["last_seen"], "2026-11-24T10:40:00.000Z");
    let lobby = report_json(db, &["--room", "#lobby"]);
    assert_eq!(row(&lobby, "dana")["online_secs"], 20 * 60);

    // --since/--until: cut to the window, and seen within it.
    let window = ["--since", "2026-11-24 10:30", "--until", "2026-11-24 10:45"];
    let late = report_json(db, &window);
    let dana = row(&late, "dana");
    assert_eq!(dana["online_secs"], 15 * 60);
    assert_eq!(dana["first_seen"], "2026-11-24T10:30:00.000Z");
    assert_eq!(dana["last_seen"], "2026-11-24T10:45:00.000Z");

    // The /op at 10:01 is before the window; prof is still the instructor in it,
    // and a silent instructor is listed for having been there.
    let prof = row(&late, "prof");
    assert_eq!(prof["instructor"], true, "{late}");
    assert_eq!(prof["messages"], 0);
    assert_eq!(row(&late, "dana")["instructor"], false);
}

#[tokio::test]
async fn a_name_taken_later_never_merges_two_students() {
    let server = TestServer::start_with(|c| c.limits.messages_per_sec = 0).await;
    let mut alice = server.login("alice").await;
    for i in 0..10 {
        alice.send(&format!("answer {i}")).await;
    }
    alice.send("/quit").await;
    alice.expect_closed().await;
    let mut bob = server.login("bob").await;
    bob.send("my own line").await;
    bob.send("/quit").await;
    bob.expect_closed().await;
    // mallory takes both names in turn, and says something under each.
    let mut mallory = server.login("mallory").await;
    for name in ["alice", "bob", "mallory"] {
        mallory.send(&format!("/nick {name}")).await;
        mallory
            .expect(&format!("* {} is now known as {name}", previous(name)))
            .await;
        mallory.send(&format!("said as {name}")).await;
    }
    mallory.send("/quit").await;
    mallory.expect_closed().await;
    let db = server.db_path();
    let _dir = server.stop().await;
    let report = report_json(db.to_str().unwrap(), &[]);
    let rows = report.as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no row for {name}: {report}"))
    };
    assert_eq!(rows.len(), 3, "{report}");
    assert_eq!(row("alice")["messages"], 10);
    assert_eq!(row("alice")["other_names"], serde_json::json!([]));
    assert_eq!(row("bob")["messages"], 1);
    assert_eq!(row("mallory")["messages"], 3);
    assert_eq!(
        row("mallory")["other_names"],
        serde_json::json!(["alice", "bob"])
    );
}

/// The name before `name` in mallory's round of renames.
fn previous(name: &str) -> &'static str {
    match name {
        "alice" => "mallory",
        "bob" => "alice",
        _ => "bob",
    }
}
