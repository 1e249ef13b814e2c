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
    let (alice, robert) = (&rows[0], &rows[1]);
    assert_eq!(alice["name"], "alice");
    assert_eq!(alice["messages"], 1);
    assert_eq!(alice["private_messages"], 0);
    assert_eq!(alice["words"], 2);
    assert_eq!(alice["rooms"], serde_json::json!(["lobby"]));
    assert_eq!(alice["other_names"], serde_json::json!([]));
    assert_eq!(robert["name"], "robert");
    assert_eq!(robert["messages"], 1);
    assert_eq!(robert["private_messages"], 1);
    assert_eq!(robert["words"], 6);
    assert_eq!(robert["rooms"], serde_json::json!(["lab", "lobby"]));
    assert_eq!(robert["other_names"], serde_json::json!(["bob"]));
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
    assert_eq!(field(1, "name"), "robert");
    assert_eq!(field(1, "messages"), "1");
    assert_eq!(field(1, "private_messages"), "1");
    assert_eq!(field(1, "words"), "6");
    assert_eq!(field(1, "other_names"), "bob");

    let table = run(&["report", "--db", &db]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    let robert_row: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(&robert_row[..4], ["robert", "1", "1", "6"], "{table}");
    assert!(lines[2].ends_with("bob"), "{table}");

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
            "yesterday",
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
