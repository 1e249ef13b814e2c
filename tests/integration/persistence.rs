//! SQLite, the transcript and history replay.

use std::path::Path;
use std::process::{Command, Stdio};

use classchat::event::{Event, EventKind};
use classchat::store;
use classchat::transcript;
use rusqlite::Connection;

use crate::harness::{
    body_of, signal, spawn_listening, test_config, TestClient, TestServer, SERVER_BIN,
};

/// Every stored event, in id order.
pub fn stored_events(db: &Path) -> Vec<Event> {
    let conn = store::open_read_only(db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT ts_ms, kind, room, sender, recipient, text, session, account
             FROM events ORDER BY id",
        )
        .unwrap();
    stmt.query_map([], |row| {
        Ok(Event {
            ts_ms: row.get(0)?,
            kind: EventKind::parse(&row.get::<_, String>(1)?).unwrap(),
            room: row.get::<_, String>(2)?.into(),
            sender: row.get::<_, String>(3)?.into(),
            recipient: row.get::<_, Option<String>>(4)?.map(Into::into),
            text: row.get(5)?,
            session: row.get(6)?,
            account: row.get::<_, Option<String>>(7)?.map(Into::into),
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Every line of every transcript file, files in name order.
pub fn transcript_lines(dir: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn summary(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            format!(
                "{} #{} {} {} {}",
                e.kind,
                e.room,
                e.sender,
                e.recipient.as_deref().unwrap_or("-"),
                e.text.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// alice and bob chat, whisper, rename, change rooms and leave.
pub async fn scripted_session(server: &TestServer) {
    scripted_session_on(server, server).await;
}

/// The same session with alice on `one` and bob on `other` (two cluster nodes).
pub async fn scripted_session_on(one: &TestServer, other: &TestServer) {
    let mut alice = one.login("alice").await;
    let mut bob = other.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    alice.send("hello, bob").await;
    bob.expect_next("alice: hello, bob").await;
    bob.send("/msg alice a \"quoted\", secret").await;
    alice
        .expect_next("[PM from bob] a \"quoted\", secret")
        .await;
    bob.send("/nick robert").await;
    alice.expect_next("* bob is now known as robert").await;
    bob.send("/join lab").await;
    alice
        .expect_next("* robert has left #lobby (joined #lab)")
        .await;
    bob.send("all alone here").await;
    bob.send("/quit done").await;
    bob.expect_closed().await;
    alice.send("/quit").await;
    alice.expect_closed().await;
}

#[tokio::test]
async fn every_event_is_stored_and_transcribed_exactly_once_in_order() {
    let server = TestServer::start().await;
    scripted_session(&server).await;
    let config = server.config.clone();
    let _dir = server.stop().await;

    let events = stored_events(&config.storage.database);
    assert_eq!(
        summary(&events),
        vec![
            "join #lobby alice - -",
            "join #lobby bob - -",
            "chat #lobby alice - hello, bob",
            "pm #lobby bob alice a \"quoted\", secret",
            "nick #lobby bob - robert",
            "leave #lobby robert - joined #lab",
            "join #lab robert - -",
            "chat #lab robert - all alone here",
            "leave #lab robert - Quit: done",
            "leave #lobby alice - Quit",
        ]
    );
    assert!(events.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
    let alice = events[0].session;
    let bob = events[1].session;
    assert_ne!(alice, bob);
    let sessions: Vec<i64> = events.iter().map(|e| e.session).collect();
    assert_eq!(
        sessions,
        vec![alice, bob, alice, bob, bob, bob, bob, bob, bob, alice]
    );

    let expected: Vec<String> = events.iter().map(transcript::format_line).collect();
    assert_eq!(transcript_lines(&config.log.dir), expected);
}

/// Logs `name` in and returns the history block's bodies (without header and footer).
async fn replay_seen_by(server: &TestServer, name: &str) -> (TestClient, Vec<String>) {
    let mut client = server.login(name).await;
    let mut lines = Vec::new();
    client.send("/who").await;
    let first = client.next_body().await;
    if first.starts_with("= ") {
        return (client, lines);
    }
    assert!(first.starts_with("* Last "), "{first}");
    loop {
        let body = client.next_body().await;
        if body == "* End of history." {
            break;
        }
        lines.push(body);
    }
    assert!(client.next_body().await.starts_with("= "));
    (client, lines)
}

async fn say_numbered(server: &TestServer, count: usize) {
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    for i in 0..count {
        talker.send(&format!("line {i}")).await;
    }
    listener
        .expect(&format!("talker: line {}", count - 1))
        .await;
    talker.send("/msg listener never replayed").await;
    listener.expect("[PM from talker] never replayed").await;
}

#[tokio::test]
async fn history_replays_the_last_20_by_default_without_private_messages() {
    let server = TestServer::start_with(|c| c.limits.messages_per_sec = 0).await;
    say_numbered(&server, 25).await;
    let mut late = server.login("late").await;
    let header = late.next_body().await;
    assert_eq!(header, "* Last 20 messages in #lobby:");
    for i in 5..25 {
        late.expect_next(&format!("talker: line {i}")).await;
    }
    late.expect_next("* End of history.").await;
    late.expect_nothing_pending().await;
}

#[tokio::test]
async fn history_replay_length_is_configurable_and_can_be_off() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 0;
        c.history.replay_lines = 3;
    })
    .await;
    say_numbered(&server, 5).await;
    let (_, lines) = replay_seen_by(&server, "late").await;
    assert_eq!(
        lines,
        vec!["talker: line 2", "talker: line 3", "talker: line 4"]
    );

    let server = TestServer::start_with(|c| c.history.replay_lines = 0).await;
    say_numbered(&server, 5).await;
    let (_, lines) = replay_seen_by(&server, "late").await;
    assert!(lines.is_empty());
}

#[tokio::test]
async fn replayed_lines_keep_their_original_timestamp() {
    let server =
        TestServer::start_with(|c| c.server.timestamp_format = "%H:%M:%S%.3f".into()).await;
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    talker.send("remember me").await;
    let live = listener.next_line().await.unwrap();
    assert_eq!(body_of(&live), "talker: remember me");
    let mut late = server.login("late").await;
    late.expect_next("* Last 1 message in #lobby:").await;
    assert_eq!(late.next_line().await.unwrap(), live);
}

#[tokio::test]
async fn history_survives_a_restart_and_follows_join() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/join lab").await;
    alice.expect("* You are now in #lab with 0 others.").await;
    alice.send("lab notes").await;
    alice.send("/quit").await;
    alice.expect_closed().await;
    let config = server.config.clone();
    let dir = server.stop().await;

    let server = TestServer::start_in(dir, config).await;
    let mut bob = server.login("bob").await;
    bob.send("/join lab").await;
    bob.expect_next("* You are now in #lab with 0 others.")
        .await;
    bob.expect_next("* Last 1 message in #lab:").await;
    bob.expect_next("alice: lab notes").await;
    bob.expect_next("* End of history.").await;
}

#[tokio::test]
async fn a_message_said_just_before_a_join_is_in_its_replay_exactly_once() {
    let server = TestServer::start_with(|c| c.limits.messages_per_sec = 0).await;
    let mut talker = server.login("talker").await;
    let mut witness = server.login("witness").await;
    for round in 0..20 {
        talker.send(&format!("round {round}")).await;
        // Once the witness has it, the server has delivered it, so it is history.
        witness.expect(&format!("talker: round {round}")).await;
        let mut late = server.login(&format!("late{round}")).await;
        let mut seen = 0;
        late.send("/who").await;
        loop {
            let body = late.next_body().await;
            if body.starts_with("= ") {
                break;
            }
            if body == format!("talker: round {round}") {
                seen += 1;
            }
        }
        assert_eq!(seen, 1, "round {round}");
        late.send("/quit").await;
        late.expect_closed().await;
    }
}

#[tokio::test]
async fn migrations_are_applied_once_across_restarts() {
    let server = TestServer::start().await;
    let _alice = server.login("alice").await;
    let config = server.config.clone();
    let dir = server.stop().await;
    let server = TestServer::start_in(dir, config.clone()).await;
    let _bob = server.login("bob").await;
    let _dir = server.stop().await;
    let conn = Connection::open(&config.storage.database).unwrap();
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, store::MIGRATIONS.len());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let joins: i64 = conn
        .query_row("SELECT COUNT(*) FROM events WHERE kind = 'join'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(joins, 2);
}

#[tokio::test]
async fn an_existing_database_is_migrated_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    std::fs::create_dir_all(config.storage.database.parent().unwrap()).unwrap();
    {
        let mut conn = Connection::open(&config.storage.database).unwrap();
        store::migrate(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO events (ts_ms, kind, room, sender, text, session) VALUES (1, 'chat', 'lobby', 'old', 'from before', 7)",
            [],
        )
        .unwrap();
    }
    let server = TestServer::start_in(dir, config).await;
    let (_, lines) = replay_seen_by(&server, "new").await;
    assert_eq!(lines, vec!["old: from before"]);
    // Sessions continue after the highest one stored.
    let config = server.config.clone();
    let _dir = server.stop().await;
    let events = stored_events(&config.storage.database);
    assert!(events[1..].iter().all(|e| e.session > 7));
}

#[tokio::test]
async fn old_transcript_files_beyond_max_files_are_removed() {
    let server = TestServer::start_with(|c| {
        c.log.max_files = 2;
        std::fs::create_dir_all(&c.log.dir).unwrap();
        for day in 1..=5 {
            std::fs::write(
                c.log.dir.join(format!("transcript.2020-01-0{day}.log")),
                "old\n",
            )
            .unwrap();
        }
    })
    .await;
    let _alice = server.login("alice").await;
    let config = server.config.clone();
    let _dir = server.stop().await;
    let files: Vec<_> = std::fs::read_dir(&config.log.dir).unwrap().collect();
    assert_eq!(files.len(), 2, "{files:?}");
}

#[tokio::test]
async fn minutely_rotation_starts_a_second_file() {
    let server =
        TestServer::start_with(|c| c.log.rotation = classchat::config::LogRotation::Minutely).await;
    let mut alice = server.login("alice").await;
    // The one wait here is the thing under test: the wall clock crossing a minute.
    let start_minute = chrono::Utc::now().timestamp() / 60;
    let mut n = 0;
    while chrono::Utc::now().timestamp() / 60 == start_minute {
        alice.send("/who").await;
        alice.expect_prefix("= #lobby").await;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        n += 1;
        assert!(n < 400, "the minute never changed");
    }
    alice.send("/quit").await;
    alice.expect_closed().await;
    let config = server.config.clone();
    let _dir = server.stop().await;
    let mut names: Vec<String> = std::fs::read_dir(&config.log.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names
        .iter()
        .all(|n| n.starts_with("transcript.") && n.ends_with(".log")));
    let lines = transcript_lines(&config.log.dir);
    assert!(lines[0].contains(" join alice"), "{lines:?}");
    assert!(
        lines.last().unwrap().contains(" leave alice (Quit)"),
        "{lines:?}"
    );
}

/// Runs the server binary over `dir` with the rate limit off; returns the child and
/// its address.
fn spawn_server_binary(dir: &Path) -> (std::process::Child, std::net::SocketAddr) {
    let config = dir.join("server.toml");
    let text = format!(
        "[server]\nport = 0\n[limits]\nmessages_per_sec = 0\n[storage]\ndatabase = {:?}\n[log]\ndir = {:?}\n",
        dir.join("chat.db"),
        dir.join("logs")
    );
    std::fs::write(&config, text).unwrap();
    spawn_listening(
        Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&config)
            .stderr(Stdio::null()),
    )
}

/// Sends 500 chat lines in one write and waits until a listener has every one.
async fn chat_500(addr: std::net::SocketAddr) -> (TestClient, TestClient) {
    let mut talker = TestClient::connect(addr).await;
    talker.send("talker").await;
    talker.expect_prefix("* Welcome, talker!").await;
    let mut listener = TestClient::connect(addr).await;
    listener.send("listener").await;
    listener.expect_prefix("* Welcome, listener!").await;
    let lines: String = (0..500).map(|i| format!("m{i}\n")).collect();
    talker.send_raw(lines.as_bytes()).await;
    listener.expect("talker: m0").await;
    for i in 1..500 {
        listener.expect_next(&format!("talker: m{i}")).await;
    }
    (talker, listener)
}

fn count_chat(db: &Path) -> i64 {
    let conn = store::open_read_only(db).unwrap();
    conn.query_row("SELECT COUNT(*) FROM events WHERE kind = 'chat'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[tokio::test]
async fn sigterm_right_after_500_messages_stores_all_of_them() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = spawn_server_binary(dir.path());
    let (_talker, mut listener) = chat_500(addr).await;
    signal(&child, "-TERM");
    listener.expect("* Server is shutting down.").await;
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(count_chat(&dir.path().join("chat.db")), 500);
    let chats = transcript_lines(&dir.path().join("logs"))
        .iter()
        .filter(|l| l.contains(" chat talker: m"))
        .count();
    assert_eq!(chats, 500);
}

#[tokio::test]
async fn after_kill_9_the_database_opens_cleanly_with_every_written_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let (child, addr) = spawn_server_binary(dir.path());
    let (_talker, _listener) = chat_500(addr).await;
    // Wait (bounded) for the writer to commit; the batch interval is what this measures.
    let started = std::time::Instant::now();
    while count_chat(&db) < 500 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "events never reached disk"
        );
        tokio::task::yield_now().await;
    }
    signal(&child, "-KILL");
    crate::harness::exited(child).await;

    let conn = Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    assert_eq!(count_chat(&db), 500);
    // And the server starts again on it, replaying from it.
    let (child, addr) = spawn_server_binary(dir.path());
    let mut late = TestClient::connect(addr).await;
    late.send("late").await;
    late.expect_prefix("* Welcome, late!").await;
    late.expect_next("* Last 20 messages in #lobby:").await;
    late.expect_next("talker: m480").await;
    signal(&child, "-TERM");
    crate::harness::exited(child).await;
}

#[tokio::test]
async fn controls_and_escapes_never_reach_the_database_or_transcript() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    bob.send_raw(b"\x1b[31mred\x1b[0m\tand\x07 bell\n").await;
    alice.expect_next("bob: red and bell").await;
    let config = server.config.clone();
    let _dir = server.stop().await;
    let chat: Vec<String> = stored_events(&config.storage.database)
        .into_iter()
        .filter(|e| e.kind == EventKind::Chat)
        .filter_map(|e| e.text)
        .collect();
    assert_eq!(chat, vec!["red and bell"]);
    let transcript = transcript_lines(&config.log.dir).join("\n");
    assert!(
        transcript.contains(" chat bob: red and bell"),
        "{transcript}"
    );
    assert!(!transcript.contains('\x1b') && !transcript.contains('\x07'));
}
