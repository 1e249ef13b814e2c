//! Student data (SPEC 12): retention, `export` and `erase`, on SQLite with and
//! without a running server, and on PostgreSQL.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use classchat::event::{Event, EventKind};
use classchat::store;
use classchat::transcript;

use crate::harness::{test_config, TestServer, SERVER_BIN, WAIT};
use crate::persistence::{stored_events, transcript_lines};
use crate::postgres::Postgres;

const DAY_MS: i64 = 86_400_000;

fn run(args: &[&str]) -> Output {
    Command::new(SERVER_BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn run_async(args: Vec<String>) -> String {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_ok(&args)
    })
    .await
    .unwrap()
}

fn event(
    ts_ms: i64,
    kind: EventKind,
    sender: &str,
    to: Option<&str>,
    text: &str,
    session: i64,
) -> Event {
    Event {
        ts_ms,
        kind,
        room: "lobby".into(),
        sender: sender.into(),
        recipient: to.map(Into::into),
        text: (!text.is_empty()).then(|| text.to_owned()),
        session,
        account: None,
    }
}

/// amy (who renames herself ally) chats, whispers to bo and hears back, is kicked
/// by the teacher; carol whispers to bo, which is none of amy's business.
fn class_events(now: i64) -> Vec<Event> {
    use EventKind::*;
    vec![
        event(now, Join, "amy", None, "", 1),
        event(now + 1, Join, "bo", None, "", 2),
        event(now + 2, Join, "carol", None, "", 3),
        event(now + 3, Join, "teacher", None, "", 4),
        event(now + 4, Chat, "amy", None, "=SUM(A1) quokkaword", 1),
        event(now + 5, Private, "amy", Some("bo"), "whisperword to bo", 1),
        event(now + 6, Private, "bo", Some("amy"), "bo answers amy", 2),
        event(
            now + 7,
            Private,
            "carol",
            Some("bo"),
            "carols own secret",
            3,
        ),
        event(now + 8, Nick, "amy", None, "ally", 1),
        event(now + 8, Ask, "ally", None, "askedword anonymously", 1),
        event(now + 8, Hand, "ally", None, "handword", 1),
        event(now + 9, Chat, "ally", None, "second quokkaword line", 1),
        event(now + 10, Op, "teacher", None, "", 4),
        event(now + 11, Kick, "teacher", Some("ally"), "too loud", 4),
        event(now + 12, Leave, "ally", None, "leavingword", 1),
        event(now + 13, Chat, "bo", None, "bo keeps talking", 2),
    ]
}

#[test]
fn export_holds_everything_by_or_about_the_student_and_no_one_elses_messages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut conn = store::open_database(&db).unwrap();
    store::insert_events(&mut conn, &class_events(1_800_000_000_000)).unwrap();
    let people = [classchat::roster::NewMember {
        name: "amy".into(),
        role: classchat::roster::RosterRole::Student,
        full_name: Some("Amy Example".into()),
    }];
    classchat::store::RosterEdit::add_members(&mut conn, &people, 16, 1).unwrap();
    drop(conn);
    let db = db.to_str().unwrap();

    // Any of her names finds her.
    let json = run_ok(&["export", "--db", db, "--student", "ALLY"]);
    let record: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["student"], "amy");
    assert_eq!(record["other_names"], serde_json::json!(["ally"]));
    assert_eq!(record["roster"]["full_name"], "Amy Example");
    assert_eq!(record["roster"]["role"], "student");
    assert!(
        !json.contains("argon2") && !json.contains("code_hash"),
        "{json}"
    );
    let texts: Vec<String> = record["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {} {}", e["kind"], e["sender"], e["text"]))
        .collect();
    for expected in [
        "\"join\" \"amy\" null",
        "\"chat\" \"amy\" \"=SUM(A1) quokkaword\"",
        "\"pm\" \"amy\" \"whisperword to bo\"",
        "\"pm\" \"bo\" \"bo answers amy\"",
        "\"nick\" \"amy\" \"ally\"",
        "\"chat\" \"ally\" \"second quokkaword line\"",
        "\"kick\" \"teacher\" \"too loud\"",
        "\"leave\" \"ally\" \"leavingword\"",
        "\"ask\" \"ally\" \"askedword anonymously\"",
        "\"hand\" \"ally\" \"handword\"",
    ] {
        assert!(
            texts.contains(&expected.to_owned()),
            "{expected} in {texts:#?}"
        );
    }
    assert_eq!(texts.len(), 10, "{texts:#?}");
    assert!(!json.contains("carols own secret") && !json.contains("bo keeps talking"));

    let csv = run_ok(&["export", "--db", db, "--student", "amy", "--format", "csv"]);
    assert!(csv.starts_with("time,kind,room,sender,recipient,text,session,account\n"));
    assert!(
        csv.contains(",roster,,amy,student,Amy Example,,amy\n"),
        "{csv}"
    );
    assert!(csv.contains("'=SUM(A1) quokkaword"), "{csv}");
    assert!(!csv.contains("carols own secret"));
    assert_eq!(csv.lines().count(), 1 + 1 + 10, "{csv}");

    let missing = run(&["export", "--db", db, "--student", "nobody"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nobody"));
}

/// No server holds the database: `erase` rewrites the transcript files itself.
#[test]
fn erase_without_a_server_rewrites_the_database_and_the_transcripts() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let events = class_events(1_800_000_000_000);
    let mut conn = store::open_database(&db).unwrap();
    store::insert_events(&mut conn, &events).unwrap();
    drop(conn);
    let (first, second) = events.split_at(7);
    for (name, part) in [
        ("transcript.2027-01-15.log", first),
        ("transcript.2027-01-16.log", second),
    ] {
        let text: String = part
            .iter()
            .map(|e| transcript::format_line(e) + "\n")
            .collect();
        std::fs::write(logs.join(name), text).unwrap();
    }
    let (db_s, logs_s) = (db.to_str().unwrap(), logs.to_str().unwrap());

    // Not on a terminal and without --yes: nothing happens.
    let refused = run(&[
        "erase",
        "--db",
        db_s,
        "--log-dir",
        logs_s,
        "--student",
        "amy",
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--yes"));
    assert!(transcript_lines(&logs)
        .iter()
        .any(|l| l.contains("quokkaword")));

    let said = run_ok(&[
        "erase",
        "--db",
        db_s,
        "--log-dir",
        logs_s,
        "--student",
        "ally",
        "--yes",
        "--by",
        "officer",
    ]);
    assert!(
        said.contains(
            "2 chat lines, 1 private messages, 1 leave reasons, 2 questions and raised hands erased"
        ),
        "{said}"
    );
    assert!(said.contains("2 files rewritten"), "{said}");
    let words = [
        "quokkaword",
        "whisperword",
        "leavingword",
        "askedword",
        "handword",
    ];
    assert_no_copy(&db, &logs, &words);
    let lines = transcript_lines(&logs);
    assert!(
        lines.iter().any(|l| l.ends_with("chat amy: [erased]")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("bo answers amy")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("carols own secret")),
        "{lines:#?}"
    );
    let stored = stored_events(&db);
    let erase: Vec<&Event> = stored
        .iter()
        .filter(|e| e.kind == EventKind::Erase)
        .collect();
    assert_eq!(erase.len(), 1);
    assert_eq!(&*erase[0].sender, "officer");
    assert_eq!(erase[0].recipient.as_deref(), Some("amy"));
    // Her copy now shows the erasure, and none of her words.
    let json = run_ok(&["export", "--db", db_s, "--student", "amy"]);
    assert!(
        json.contains("\"erase\"") && json.contains("[erased]"),
        "{json}"
    );
    assert!(
        !json.contains("quokkaword") && !json.contains("whisperword"),
        "{json}"
    );
}

/// The words are in neither the database file, nor its log, nor any transcript.
fn assert_no_copy(db: &Path, logs: &Path, words: &[&str]) {
    let mut files = vec![db.to_owned(), db.with_extension("db-wal")];
    for entry in std::fs::read_dir(logs).unwrap() {
        files.push(entry.unwrap().path());
    }
    for file in files {
        let Ok(bytes) = std::fs::read(&file) else {
            continue;
        };
        for word in words {
            let found = bytes.windows(word.len()).any(|w| w == word.as_bytes());
            assert!(!found, "{word} is still in {}", file.display());
        }
    }
}

#[tokio::test]
async fn an_erase_while_the_server_runs_leaves_the_words_nowhere() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    alice.send("zebracornword hello").await;
    bob.expect_next("alice: zebracornword hello").await;
    alice.send("/msg bob pmsecretword").await;
    bob.expect_next("[PM from alice] pmsecretword").await;
    bob.send("/msg alice bob answers").await;
    alice.expect("[PM from bob] bob answers").await;
    alice.send("another zebracornword").await;
    bob.expect("alice: another zebracornword").await;
    alice.send("/quit farewellword").await;
    alice.expect_closed().await;
    bob.expect_prefix("* alice has left").await;

    let db = server.db_path();
    let logs = server.config.log.dir.clone();
    wait_until("the transcript has every line", || {
        transcript_lines(&logs)
            .iter()
            .any(|l| l.contains("farewellword"))
    })
    .await;
    let said = run_async(
        [
            "erase",
            "--db",
            db.to_str().unwrap(),
            "--log-dir",
            logs.to_str().unwrap(),
        ]
        .into_iter()
        .chain(["--student", "alice", "--yes", "--by", "officer"])
        .map(str::to_owned)
        .collect(),
    )
    .await;
    assert!(
        said.contains("2 chat lines, 1 private messages, 1 leave reasons erased"),
        "{said}"
    );
    assert!(said.contains("rewrites them"), "{said}");
    assert!(said.contains("write-ahead log is emptied"), "{said}");
    wait_until("the server rewrites the transcripts", || {
        !transcript_lines(&logs)
            .iter()
            .any(|l| l.contains("zebracornword"))
    })
    .await;
    assert_no_copy(
        &db,
        &logs,
        &["zebracornword", "pmsecretword", "farewellword"],
    );

    // The next joiner's replay: bob's line after the join marks its end.
    let mut carol = server.login("carol").await;
    bob.send("marker line").await;
    let replay = carol.expect("bob: marker line").await;
    assert!(
        !replay.iter().any(|l| l.contains("zebracornword")),
        "{replay:#?}"
    );
    drop((bob, carol));

    let config = server.config.clone();
    let _dir = server.stop().await;
    let db_s = config.storage.database.to_str().unwrap();
    let json = run_ok(&["report", "--db", db_s, "--format", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&json).unwrap();
    let alice = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "alice")
        .unwrap();
    assert_eq!(alice["messages"], 2, "{json}");
    assert_eq!(alice["private_messages"], 1, "{json}");
    assert!(
        !rows
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "officer"),
        "{json}"
    );
    let lines = run_ok(&["transcript", "--db", db_s]);
    assert!(lines.contains(" erase officer -> alice ("), "{lines}");
    assert!(lines.contains("pm bob -> alice: bob answers"), "{lines}");
    assert_no_copy(
        &config.storage.database,
        &config.log.dir,
        &["zebracornword", "pmsecretword"],
    );
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn retention_deletes_old_events_and_transcript_files_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.retention_days = 30;
    let now = chrono::Utc::now().timestamp_millis();
    let mut conn = store::open_database(&config.storage.database).unwrap();
    let old = event(
        now - 40 * DAY_MS,
        EventKind::Chat,
        "amy",
        None,
        "ancient line",
        1,
    );
    let recent = event(
        now - 2 * DAY_MS,
        EventKind::Chat,
        "amy",
        None,
        "recent line",
        2,
    );
    store::insert_events(&mut conn, &[old, recent]).unwrap();
    drop(conn);
    std::fs::create_dir_all(&config.log.dir).unwrap();
    let (old_file, recent_file) = (
        config.log.dir.join("transcript.2020-01-01.log"),
        config.log.dir.join("transcript.2020-01-02.log"),
    );
    for (file, age_days) in [(&old_file, 40), (&recent_file, 2)] {
        std::fs::write(file, "a line\n").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_days * 86_400);
        std::fs::File::options()
            .write(true)
            .open(file)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let server = TestServer::start_in(dir, config.clone()).await;
    let _dir = server.stop().await;
    let texts: Vec<String> = stored_events(&config.storage.database)
        .into_iter()
        .filter_map(|e| e.text)
        .collect();
    assert_eq!(texts, ["recent line"]);
    assert!(!old_file.exists());
    assert!(recent_file.exists());
}

#[tokio::test]
async fn export_and_erase_on_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.url();
    let mut client = classchat::store::postgres::connect(&url).await.unwrap();
    classchat::store::postgres::migrate(&client).await.unwrap();
    let rows: Vec<(u64, u32, Event)> = class_events(1_800_000_000_000)
        .into_iter()
        .enumerate()
        .map(|(i, e)| (i as u64 + 1, 0, e))
        .collect();
    classchat::store::postgres::insert_events(&mut client, &rows)
        .await
        .unwrap();

    let json = run_async(vec![
        "export".into(),
        "--postgres".into(),
        url.clone(),
        "--student".into(),
        "ally".into(),
    ])
    .await;
    let record: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(record["events"].as_array().unwrap().len(), 10, "{json}");
    assert!(json.contains("bo answers amy") && !json.contains("carols own secret"));

    let said = run_async(
        [
            "erase",
            "--postgres",
            &url,
            "--student",
            "amy",
            "--yes",
            "--by",
            "officer",
        ]
        .map(str::to_owned)
        .to_vec(),
    )
    .await;
    assert!(
        said.contains("2 chat lines, 1 private messages, 1 leave reasons, 2 questions and raised hands erased"),
        "{said}"
    );
    let texts: Vec<Option<String>> = client
        .query(
            "SELECT text FROM events WHERE session = 1 ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for text in texts.iter().flatten() {
        assert!(!text.contains("word"), "{texts:?}");
    }
    assert_eq!(postgres_watermark(&client).await, rows.len() as u64);
    let erase = client
        .query_one(
            "SELECT sender, recipient FROM events WHERE kind = 'erase'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (erase.get::<_, &str>(0), erase.get::<_, &str>(1)),
        ("officer", "amy")
    );
    let transcript = run_async(vec!["transcript".into(), "--postgres".into(), url.clone()]).await;
    let last = transcript.lines().last().unwrap_or_default();
    assert!(last.contains(" erase officer -> amy ("), "{transcript}");
    let report = run_async(vec![
        "report".into(),
        "--postgres".into(),
        url.clone(),
        "--format".into(),
        "json".into(),
    ])
    .await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let amy = report
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "amy")
        .unwrap();
    assert_eq!(amy["messages"], 2);
    assert_eq!(amy["private_messages"], 1);
}

async fn postgres_watermark(client: &tokio_postgres::Client) -> u64 {
    classchat::store::postgres::watermark(client).await.unwrap()
}

/// Cluster mode: the words leave PostgreSQL and the stream, and a running node
/// stops replaying them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erase_in_cluster_mode_reaches_postgresql_the_stream_and_the_nodes() {
    let Some((nats, pg)) = crate::cluster::engines().await else {
        return;
    };
    let node = crate::cluster::start_node(&nats, &pg).await;
    let mut alice = node.login("alice").await;
    let mut bob = node.login("bob").await;
    alice.expect("* bob has joined #lobby").await;
    alice.send("nebulaword one").await;
    bob.expect("alice: nebulaword one").await;
    alice.send("/msg bob starpmword").await;
    bob.expect("[PM from alice] starpmword").await;
    bob.send("bob stays").await;
    alice.expect("bob: bob stays").await;
    let recorded = crate::cluster::recorded_chat(&pg, 2, WAIT).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let pm_recorded = || async {
        let row = client
            .query_one("SELECT COUNT(*) FROM events WHERE kind = 'pm'", &[])
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    };
    let start = Instant::now();
    while !pm_recorded().await {
        assert!(start.elapsed() < WAIT, "the pm is recorded");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seqs: Vec<i64> = client
        .query(
            "SELECT seq FROM events WHERE sender = 'alice' AND kind IN ('chat', 'pm')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs.len(), 2);

    let said = run_async(
        ["erase", "--postgres", &pg.url(), "--nats", &nats.url()]
            .into_iter()
            .chain(["--student", "alice", "--yes", "--by", "officer"])
            .map(str::to_owned)
            .collect(),
    )
    .await;
    assert!(said.contains("stream: 2 messages deleted"), "{said}");
    let left = client
        .query_one(
            "SELECT COUNT(*) FROM events WHERE text LIKE '%nebulaword%' OR text LIKE '%starpmword%'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(left.get::<_, i64>(0), 0);
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let stream = js.get_stream(classchat::cluster::STREAM).await.unwrap();
    for seq in seqs {
        assert!(
            stream.get_raw_message(seq as u64).await.is_err(),
            "message {seq}"
        );
    }

    // The node notices within seconds: a newcomer's replay no longer has it.
    let start = Instant::now();
    loop {
        let mut carol = node.login("carol").await;
        bob.send("marker line").await;
        let replay = carol.expect("bob: marker line").await;
        if !replay.iter().any(|l| l.contains("nebulaword")) {
            assert!(
                replay.iter().any(|l| l.contains("bob stays")),
                "{replay:#?}"
            );
            break;
        }
        assert!(start.elapsed() < WAIT, "{replay:#?}");
        carol.send("/quit").await;
        carol.expect_closed().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A node started now rebuilds its state from the stream, without them.
    let other = crate::cluster::start_node(&nats, &pg).await;
    let mut dave = other.login("dave").await;
    bob.send("marker two").await;
    let replay = dave.expect("bob: marker two").await;
    assert!(
        !replay.iter().any(|l| l.contains("nebulaword")),
        "{replay:#?}"
    );
    assert!(
        replay.iter().any(|l| l.contains("bob stays")),
        "{replay:#?}"
    );
    drop((alice, dave));
    let _ = other.stop().await;
    let _ = node.stop().await;
}

#[test]
fn the_banner_says_how_long_the_record_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.toml");
    let mut config = test_config(dir.path());
    config.storage.retention_days = 30;
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    let (mut child, _) = crate::harness::spawn_listening(
        Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&path)
            .stderr(Stdio::null()),
    );
    let mut banner = Vec::new();
    loop {
        let line = crate::harness::stdout_line(&mut child);
        assert!(!line.is_empty(), "{banner:?}");
        banner.push(line.clone());
        if line.starts_with("retention:") {
            break;
        }
    }
    crate::harness::signal(&child, "-TERM");
    child.wait().unwrap();
    let line = banner.last().unwrap();
    assert!(
        line.contains("older than 30 days are deleted at start and daily"),
        "{line}"
    );
}

/// On a terminal, `erase` asks first: anything but `yes` changes nothing.
#[tokio::test]
async fn erase_asks_on_a_terminal_and_only_yes_erases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let mut conn = store::open_database(&db).unwrap();
    store::insert_events(&mut conn, &class_events(1_800_000_000_000)).unwrap();
    drop(conn);
    let erase = format!(
        "{SERVER_BIN} erase --db {} --log-dir {} --student amy --by officer",
        db.display(),
        dir.path().join("logs").display()
    );
    let script = format!("{erase}; echo first done; {erase}; echo second done; sleep 60");
    let Some(tmux) = crate::terminal::Tmux::start(&format!("sh -c '{script}'")) else {
        return;
    };
    tmux.wait_for("Type yes").await;
    tmux.type_line("no");
    tmux.wait_for("first done").await;
    assert!(stored_events(&db)
        .iter()
        .all(|e| e.kind != EventKind::Erase));
    tmux.wait_for("Type yes").await;
    tmux.type_line("yes");
    let screen = tmux.wait_for("second done").await;
    assert!(screen.contains("not erased"), "{screen}");
    assert!(
        screen.contains("recorded: erase by officer of amy"),
        "{screen}"
    );
    let stored = stored_events(&db);
    assert_eq!(
        stored.iter().filter(|e| e.kind == EventKind::Erase).count(),
        1
    );
}

/// A cluster node deletes PostgreSQL's events past `storage.retention_days` as
/// it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_node_applies_retention_to_postgresql() {
    let Some((nats, pg)) = crate::cluster::engines().await else {
        return;
    };
    let mut client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    classchat::store::postgres::migrate(&client).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let rows = [
        (
            1,
            0,
            event(
                now - 40 * DAY_MS,
                EventKind::Chat,
                "amy",
                None,
                "ancient line",
                1,
            ),
        ),
        (
            2,
            0,
            event(
                now - 2 * DAY_MS,
                EventKind::Chat,
                "amy",
                None,
                "recent line",
                2,
            ),
        ),
    ];
    classchat::store::postgres::insert_events(&mut client, &rows)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.cluster.nats_url = nats.url();
    config.storage.postgres_url = pg.url();
    config.storage.retention_days = 30;
    let node = TestServer::start_in(dir, config).await;
    let texts = || async {
        client
            .query(
                "SELECT text FROM events WHERE kind = 'chat' ORDER BY seq",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let start = Instant::now();
    while texts().await.len() > 1 {
        assert!(start.elapsed() < WAIT, "{:?}", texts().await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(texts().await, ["recent line"]);
    let _ = node.stop().await;
}

/// An erased `/me` goes from the running server's replay as an erased chat
/// line does: the next joiner never sees it.
#[tokio::test]
async fn an_erased_action_is_no_longer_replayed() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    alice.send("/me juggles wombatword").await;
    bob.expect_next("* alice juggles wombatword").await;
    let db = server.db_path();
    let logs = server.config.log.dir.clone();
    wait_until("the transcript has the action", || {
        transcript_lines(&logs)
            .iter()
            .any(|l| l.contains("wombatword"))
    })
    .await;
    let args = ["erase", "--db", db.to_str().unwrap(), "--log-dir"];
    let said = run_async(
        args.into_iter()
            .chain([logs.to_str().unwrap(), "--student", "alice", "--yes"])
            .map(str::to_owned)
            .collect(),
    )
    .await;
    assert!(said.contains("1 chat lines"), "{said}");
    // The server rewrites its transcripts and forgets the replay's lines in
    // the same step, within seconds.
    wait_until("the server rewrites the transcripts", || {
        !transcript_lines(&logs)
            .iter()
            .any(|l| l.contains("wombatword"))
    })
    .await;
    let mut carol = server.login("carol").await;
    bob.send("marker line").await;
    let replay = carol.expect("bob: marker line").await;
    assert!(
        !replay.iter().any(|l| l.contains("wombatword")),
        "{replay:#?}"
    );
}
