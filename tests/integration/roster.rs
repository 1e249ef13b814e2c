//! The class roster (SPEC 6): names bound to people by personal codes.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use crate::harness::{test_config, TestClient, TestServer, SERVER_BIN};
use crate::persistence::stored_events;

/// Runs `chat-server roster ARGS --db DB`; returns its standard output.
fn roster(db: &Path, args: &[&str]) -> String {
    let out = Command::new(SERVER_BIN)
        .arg("roster")
        .args(args)
        .arg("--db")
        .arg(db)
        .output()
        .unwrap();
    assert!(out.status.success(), "roster {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The `name,code` rows a command printed.
pub(crate) fn codes(printed: &str) -> Vec<(String, String)> {
    let mut lines = printed.lines();
    assert_eq!(lines.next(), Some("name,code"));
    lines
        .map(|l| {
            let (name, code) = l.split_once(',').unwrap();
            (name.to_owned(), code.to_owned())
        })
        .collect()
}

/// The `name,code` rows, by name.
fn code_map(printed: &str) -> HashMap<String, String> {
    codes(printed).into_iter().collect()
}

/// A server over a database whose roster was made before it started.
pub(crate) async fn rostered(
    tweak: impl FnOnce(&mut classchat::config::Config),
) -> (TestServer, HashMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.limits.messages_per_sec = 0;
    tweak(&mut config);
    let db = config.storage.database.clone();
    let mut printed: HashMap<String, String> = code_map(&roster(&db, &["add", "amy", "bob"]));
    printed.extend(code_map(&roster(&db, &["add", "prof", "--instructor"])));
    printed.extend(code_map(&roster(&db, &["add", "tia", "--assistant"])));
    (TestServer::start_in(dir, config).await, printed)
}

pub(crate) async fn log_in(server: &TestServer, name: &str, code: &str) -> TestClient {
    let mut client = server.connect().await;
    client.send(name).await;
    client.expect("* Please enter your personal code:").await;
    client.send(code).await;
    client.expect_prefix(&format!("* Welcome, {name}!")).await;
    client
}

#[tokio::test]
async fn codes_are_printed_once_and_only_their_hashes_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("class.db");
    let csv = dir.path().join("class.csv");
    std::fs::write(
        &csv,
        "name,role,full_name\ncat,,Cat Stevens\nteach,instructor,\n",
    )
    .unwrap();
    let mut printed: HashMap<String, String> = code_map(&roster(&db, &["add", "amy", "bob"]));
    printed.extend(code_map(&roster(&db, &["import", csv.to_str().unwrap()])));
    assert_eq!(printed.len(), 4);
    let listed = roster(&db, &["list"]);
    assert_eq!(
        listed,
        "name,role,full_name\namy,student,\nbob,student,\ncat,student,Cat Stevens\nteach,instructor,\n"
    );
    let reissued = code_map(&roster(&db, &["reissue", "AMY"]));
    assert_ne!(reissued["amy"], printed["amy"]);
    roster(&db, &["remove", "bob"]);
    assert!(!roster(&db, &["list"]).contains("bob"));
    // No code is in the database file, in any form.
    let bytes = std::fs::read(&db).unwrap();
    let wal = std::fs::read(db.with_extension("db-wal")).unwrap_or_default();
    for code in printed.values().chain(reissued.values()) {
        for form in [code.clone(), code.replace('-', "")] {
            let found = |hay: &[u8]| hay.windows(form.len()).any(|w| w == form.as_bytes());
            assert!(!found(&bytes) && !found(&wal), "{form} is stored");
        }
    }
    // A name already there, or not a username, is refused and nothing is added.
    let out = Command::new(SERVER_BIN)
        .args(["roster", "add", "dan", "Amy", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("amy is already on the roster")
            || String::from_utf8_lossy(&out.stderr).contains("Amy is already on the roster")
    );
    assert!(!roster(&db, &["list"]).contains("dan"));
}

#[tokio::test]
async fn a_rostered_class_binds_names_to_people() {
    let (server, codes) = rostered(|_| {}).await;
    // Not on the roster: refused, and asked again.
    let mut stranger = server.connect().await;
    stranger.send("mallory").await;
    stranger
        .expect("! mallory is not on the class roster.")
        .await;
    stranger.expect_next("* Please enter a username:").await;
    // The right name with another's code, then a typo: wrong codes.
    stranger.send("amy").await;
    stranger.expect("* Please enter your personal code:").await;
    stranger.send(&codes["bob"]).await;
    stranger
        .expect_next("! Wrong code (2 attempts left).")
        .await;
    stranger
        .expect_next("* Please enter your personal code:")
        .await;
    // The code as said aloud: any case, no dashes.
    let mut amy = server.connect().await;
    amy.send("AMY").await;
    amy.expect("* Please enter your personal code:").await;
    amy.send(&codes["amy"].to_uppercase().replace('-', " "))
        .await;
    amy.expect_prefix("* Welcome, amy!").await;
    amy.send("/nick bob").await;
    amy.expect_next("! Names come from the class roster.").await;
    // A rostered instructor is one from log-in.
    let mut prof = log_in(&server, "prof", &codes["prof"]).await;
    amy.expect("* prof has joined #lobby").await;
    prof.send("/who").await;
    prof.expect_next("= #lobby (2): amy, prof [instructor]")
        .await;
    prof.send("/mute amy 1").await;
    prof.expect_next("* amy is muted for 1 minute.").await;
}

#[tokio::test]
async fn guests_join_where_allowed_and_never_as_a_roster_name() {
    let (server, codes) = rostered(|c| {
        c.access.guests = true;
        c.access.join_code = "owl-42".into();
    })
    .await;
    let mut guest = server.connect().await;
    guest.send("visitor").await;
    guest
        .expect("* This class needs a join code. Please enter the code:")
        .await;
    guest.send("owl-42").await;
    guest.expect_prefix("* Welcome, visitor!").await;
    // Roster members are not asked for the join code, only their own.
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    bob.send("/who").await;
    bob.expect_next("= #lobby (2): bob, visitor [guest]").await;
    // A guest cannot take a roster name, nor change to one.
    guest.expect("* bob has joined #lobby").await;
    guest.send("/nick amy").await;
    guest
        .expect_next("! Names come from the class roster.")
        .await;
}

#[tokio::test]
async fn the_server_sees_roster_changes_while_it_runs() {
    let server = TestServer::start().await;
    let _open = server.login("early").await;
    let db = server.db_path();
    let printed = code_map(&roster(&db, &["add", "amy"]));
    // Within a few seconds the class is rostered.
    let started = std::time::Instant::now();
    loop {
        let mut client = server.connect().await;
        client.send("amy").await;
        client.expect_next("* Connected to classchat.").await;
        client
            .expect_next("* Everything said here is recorded with your name and the time.")
            .await;
        client.expect_next("* Please enter a username:").await;
        let answer = client.next_body().await;
        if answer == "* Please enter your personal code:" {
            client.send(&printed["amy"]).await;
            client.expect_prefix("* Welcome, amy!").await;
            break;
        }
        assert!(answer.starts_with("* Welcome, amy!"), "{answer}");
        assert!(
            started.elapsed() < crate::harness::WAIT,
            "the roster was never read"
        );
        client.send("/quit").await;
        client.expect_closed().await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn every_event_records_the_account() {
    let (server, codes) = rostered(|_| {}).await;
    let mut amy = log_in(&server, "amy", &codes["amy"]).await;
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    amy.expect("* bob has joined #lobby").await;
    amy.send("hello").await;
    bob.expect("amy: hello").await;
    bob.send("/msg amy hi").await;
    amy.expect("[PM from bob] hi").await;
    // Neither can take the other's name (the code was tested above).
    bob.send("/nick amy").await;
    bob.expect("! Names come from the class roster.").await;
    let db = server.db_path();
    let _dir = server.stop().await;
    let events = stored_events(&db);
    assert!(!events.is_empty());
    for event in &events {
        let account = event
            .account
            .as_deref()
            .expect("every event has an account");
        assert_eq!(account, &*event.sender, "{event:?}");
    }
    // The report's rows are the two people.
    let out = Command::new(SERVER_BIN)
        .args(["report", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<(String, i64, i64)> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_owned();
            let counts = (
                r["messages"].as_i64().unwrap(),
                r["private_messages"].as_i64().unwrap(),
            );
            (name, counts.0, counts.1)
        })
        .collect();
    assert_eq!(rows, vec![("amy".into(), 1, 0), ("bob".into(), 0, 1)]);
}

/// A student whose connection died without a word (dropped Wi-Fi) logs in again
/// with her code: the name is hers at once, and the dead connection is closed.
#[tokio::test]
async fn the_right_code_takes_the_name_over_from_a_dead_connection() {
    let (server, codes) = rostered(|_| {}).await;
    let mut stale = log_in(&server, "amy", &codes["amy"]).await;
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    stale.expect_next("* bob has joined #lobby").await;
    // Someone else cannot take it, even knowing it is in use.
    let mut other = server.connect().await;
    other.send("amy").await;
    other.expect("* Please enter your personal code:").await;
    other.send(&codes["bob"]).await;
    other.expect_next("! Wrong code (2 attempts left).").await;

    let mut amy = log_in(&server, "amy", &codes["amy"]).await;
    assert_eq!(
        stale.expect_closed().await,
        vec!["* You logged in again from another connection; this one is closed."]
    );
    bob.expect("* amy has left #lobby (Logged in again)").await;
    bob.expect_next("* amy has joined #lobby").await;
    amy.send("back").await;
    bob.expect_next("amy: back").await;
    amy.send("/who").await;
    amy.expect_prefix("= #lobby (2): amy, bob").await;
}

/// `roster remove` and `roster reissue` while the person is connected: they are
/// out within seconds, and the others see why.
#[tokio::test]
async fn a_removed_or_reissued_code_ends_the_connection_within_seconds() {
    let (server, codes) = rostered(|_| {}).await;
    let mut amy = log_in(&server, "amy", &codes["amy"]).await;
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    let mut prof = log_in(&server, "prof", &codes["prof"]).await;
    let db = server.db_path();
    roster(&db, &["remove", "amy"]);
    assert_eq!(
        amy.expect_closed().await,
        vec![
            "* bob has joined #lobby",
            "* prof has joined #lobby",
            "* Your code was changed; log in again."
        ]
    );
    prof.expect("* amy has left #lobby (Code changed)").await;
    let new_code = code_map(&roster(&db, &["reissue", "bob"]))["bob"].clone();
    let closed = bob.expect_closed().await;
    assert_eq!(
        closed.last().map(String::as_str),
        Some("* Your code was changed; log in again.")
    );
    prof.expect_next("* bob has left #lobby (Code changed)")
        .await;
    // The new code lets bob back in; the old one no longer does.
    let mut old = server.connect().await;
    old.send("bob").await;
    old.expect("* Please enter your personal code:").await;
    old.send(&codes["bob"]).await;
    old.expect_next("! Wrong code (2 attempts left).").await;
    log_in(&server, "bob", &new_code).await;
    prof.expect_next("* bob has joined #lobby").await;
}

/// A teaching assistant on the roster moderates and runs the class's tools from
/// log-in, is marked `[assistant]`, and is staff to the `/dm` policy.
#[tokio::test]
async fn an_assistant_moderates_from_log_in_and_is_marked_in_who() {
    let (server, codes) =
        rostered(|c| c.access.private_messages = classchat::protocol::DmPolicy::Staff).await;
    let mut tia = log_in(&server, "tia", &codes["tia"]).await;
    let mut amy = log_in(&server, "amy", &codes["amy"]).await;
    tia.expect("* amy has joined #lobby").await;
    let mut bob = log_in(&server, "bob", &codes["bob"]).await;
    amy.expect("* bob has joined #lobby").await;
    amy.send("/who").await;
    amy.expect_next("= #lobby (3): amy, bob, tia [assistant]")
        .await;
    // Students may message staff under `/dm staff`, assistants included.
    amy.send("/msg tia is the lab open?").await;
    tia.expect("[PM from amy] is the lab open?").await;
    amy.expect_next("[PM to tia] is the lab open?").await;
    amy.send("/kick bob").await;
    amy.expect_next("! Permission denied").await;
    tia.send("/kick bob spamming").await;
    let closed = bob.expect_closed().await;
    assert!(
        closed
            .iter()
            .any(|b| b == "* You have been kicked by tia: spamming"),
        "{closed:?}"
    );
    amy.expect("* bob has left #lobby (Kicked: spamming)").await;
    tia.send("/help").await;
    tia.expect("= Instructor commands:").await;
}
