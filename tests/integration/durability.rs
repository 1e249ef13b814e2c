//! The record survives the disk: a locked database, a full file system, a shutdown
//! while the database refuses, a second server, a removed log folder.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use classchat::event::{Event, EventKind};
use classchat::store::{self, Closed, Store};
use rusqlite::Connection;

use crate::harness::{signal, spawn_listening, test_config, TestClient, TestServer, SERVER_BIN};
use crate::persistence::{stored_events, transcript_lines};

/// How long a condition may take to become true.
const POLL_LIMIT: Duration = Duration::from_secs(30);

/// Waits until `condition` holds, checking every few milliseconds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < POLL_LIMIT, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Rows of `events` matching `filter` (SQL), read as `report` reads them.
fn count(db: &Path, filter: &str) -> usize {
    let conn = store::open_read_only(db).unwrap();
    conn.query_row(
        &format!("SELECT COUNT(*) FROM events WHERE {filter}"),
        [],
        |r| r.get::<_, i64>(0),
    )
    .unwrap() as usize
}

/// A grader's `sqlite3` holding `BEGIN EXCLUSIVE` until dropped.
struct ExclusiveLock(Connection);

impl ExclusiveLock {
    fn take(db: &Path) -> ExclusiveLock {
        let conn = Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        ExclusiveLock(conn)
    }

    /// Rows visible to the lock holder, who alone can still read and write.
    fn rows(&self) -> usize {
        self.0
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))
            .unwrap() as usize
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

/// Transcript lines containing `needle`.
fn transcript_count(dir: &Path, needle: &str) -> usize {
    if !dir.is_dir() {
        return 0;
    }
    transcript_lines(dir)
        .iter()
        .filter(|l| l.contains(needle))
        .count()
}

async fn login(addr: std::net::SocketAddr, name: &str) -> TestClient {
    let mut client = TestClient::connect(addr).await;
    client.send(name).await;
    client.expect_prefix(&format!("* Welcome, {name}!")).await;
    client
}

/// `talker` says `count` lines `{prefix}{i}` in one write; `listener` gets each.
async fn say(talker: &mut TestClient, listener: &mut TestClient, prefix: &str, count: usize) {
    let lines: String = (0..count).map(|i| format!("{prefix}{i}\n")).collect();
    talker.send_raw(lines.as_bytes()).await;
    for i in 0..count {
        listener.expect(&format!("talker: {prefix}{i}")).await;
    }
}

#[tokio::test]
async fn a_database_locked_past_the_busy_timeout_loses_nothing_and_delays_nobody() {
    let server = TestServer::start_with(|c| c.limits.messages_per_sec = 0).await;
    let db = server.db_path();
    let logs = server.config.log.dir.clone();
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;

    let lock = ExclusiveLock::take(&db);
    say(&mut talker, &mut listener, "m", 30).await;
    // The transcript does not wait for the database.
    until("30 lines transcribed", || {
        transcript_count(&logs, " chat talker: m") == 30
    })
    .await;
    // A join during the lock gets its whole replay at once, not after the lock.
    let mut late = server.login("late").await;
    late.expect_next("* Last 20 messages in #lobby:").await;
    for i in 10..30 {
        late.expect_next(&format!("talker: m{i}")).await;
    }
    late.expect_next("* End of history.").await;
    // The one wait here is the thing under test: a lock outlasting the writer's
    // busy timeout, so that its writes fail and are retried.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(lock.rows(), 2, "nothing was written through the lock");
    say(&mut talker, &mut listener, "n", 10).await;
    // All three still connected.
    for client in [&mut talker, &mut listener, &mut late] {
        client.send("/who").await;
        client.expect_prefix("= #lobby (3): ").await;
    }
    lock.release();

    until("every chat line stored", || {
        count(&db, "kind = 'chat'") == 40
    })
    .await;
    let _dir = server.stop().await;
    let events = stored_events(&db);
    let chats: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::Chat)
        .map(|e| e.text.clone().unwrap())
        .collect();
    let expected: Vec<String> = (0..30)
        .map(|i| format!("m{i}"))
        .chain((0..10).map(|i| format!("n{i}")))
        .collect();
    assert_eq!(chats, expected);
    assert_eq!(count(&db, "kind = 'join'"), 3);
    // Leaves say why; nobody left as too slow.
    assert_eq!(count(&db, "kind = 'leave'"), 3);
    assert_eq!(count(&db, "kind = 'leave' AND text LIKE '%slow%'"), 0);
}

/// A config file over `dir` with the rate limit off and a short shutdown grace.
fn binary_config(dir: &Path) -> PathBuf {
    let config = dir.join("server.toml");
    let text = format!(
        "[server]\nport = 0\n[limits]\nmessages_per_sec = 0\n\
         [storage]\ndatabase = {:?}\nshutdown_grace_secs = 1\n[log]\ndir = {:?}\n",
        dir.join("chat.db"),
        dir.join("logs")
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn spawn_binary(config: &Path, stderr: Stdio) -> (std::process::Child, std::net::SocketAddr) {
    spawn_listening(
        Command::new(SERVER_BIN)
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            .stderr(stderr),
    )
}

#[tokio::test]
async fn sigterm_while_the_database_is_locked_saves_the_rest_and_the_next_start_imports_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let unsaved = store::unsaved_path(&db);
    let config = binary_config(dir.path());
    let (child, addr) = spawn_binary(&config, Stdio::piped());
    let mut talker = login(addr, "talker").await;
    let mut listener = login(addr, "listener").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;

    let lock = ExclusiveLock::take(&db);
    say(&mut talker, &mut listener, "m", 10).await;
    signal(&child, "-TERM");
    listener.expect("* Server is shutting down.").await;
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(lock.rows(), 2);
    lock.release();

    // Ten chat lines and two leaves never reached the database.
    let saved = saved_events(&unsaved);
    assert_eq!(saved.len(), 12, "{saved:?}");
    let message = format!(
        "chat-server: 12 events could not be written to the database; saved to {}",
        unsaved.display()
    );
    assert!(stderr.contains(&message), "{stderr}");
    let chats: Vec<&str> = saved
        .iter()
        .filter(|e| e.kind == EventKind::Chat)
        .map(|e| e.text.as_deref().unwrap())
        .collect();
    assert_eq!(chats, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(
        saved.iter().filter(|e| e.kind == EventKind::Leave).count(),
        2
    );
    assert_eq!(count(&db, "1"), 2);

    // The next start imports them before it listens, then forgets the file.
    let (child, _) = spawn_binary(&config, Stdio::null());
    assert!(!unsaved.exists());
    let events = stored_events(&db);
    assert_eq!(events.len(), 14);
    assert_eq!(events[2..], saved[..]);
    signal(&child, "-TERM");
    let status = crate::harness::exited(child).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(count(&db, "1"), 14);
}

/// The events in an unsaved-events file (after its generation line).
fn saved_events(unsaved: &Path) -> Vec<Event> {
    std::fs::read_to_string(unsaved)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("{\"unsaved_generation\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A grader's `sqlite3` holds the database while the class chats, twice, and the
/// server is killed (`kill -9`) during the second lock: every line delivered is
/// in the database after the next start, once.
#[tokio::test]
async fn kill_9_during_a_long_lock_loses_nothing_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let unsaved = store::unsaved_path(&db);
    let config = binary_config(dir.path());
    let (child, addr) = spawn_binary(&config, Stdio::null());
    let mut talker = login(addr, "talker").await;
    let mut listener = login(addr, "listener").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;
    let chats_saved = |unsaved: &Path| {
        saved_events(unsaved)
            .iter()
            .filter(|e| e.kind == EventKind::Chat)
            .count()
    };

    // A first lock: the lines wait in the file, then reach the database, and
    // the file goes.
    let lock = ExclusiveLock::take(&db);
    say(&mut talker, &mut listener, "m", 30).await;
    until("30 lines saved beside the locked database", || {
        chats_saved(&unsaved) == 30
    })
    .await;
    lock.release();
    until("30 lines stored", || count(&db, "kind = 'chat'") == 30).await;
    until("the file removed", || !unsaved.exists()).await;

    // A second lock, and the server is killed while it lasts.
    let lock = ExclusiveLock::take(&db);
    say(&mut talker, &mut listener, "n", 500).await;
    until("500 lines saved beside the locked database", || {
        chats_saved(&unsaved) == 500
    })
    .await;
    signal(&child, "-KILL");
    crate::harness::exited(child).await;
    assert_eq!(lock.rows(), 32);
    lock.release();

    let (child, _) = spawn_binary(&config, Stdio::null());
    assert!(!unsaved.exists());
    let chats: Vec<String> = stored_events(&db)
        .into_iter()
        .filter(|e| e.kind == EventKind::Chat)
        .map(|e| e.text.unwrap())
        .collect();
    let expected: Vec<String> = (0..30)
        .map(|i| format!("m{i}"))
        .chain((0..500).map(|i| format!("n{i}")))
        .collect();
    assert_eq!(chats, expected);
    signal(&child, "-TERM");
    crate::harness::exited(child).await;
}

/// A small tmpfs, unmounted (lazily, should a file still be open) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(&at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Tmpfs(at))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.write_all(&[0; 512]);
    let _ = file.sync_all();
}

#[tokio::test]
async fn a_full_disk_delays_events_until_space_is_freed_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(dir.path().join("disk"), "4m") else {
        crate::harness::skip("cannot mount a tmpfs here (needs root), so no full disk to test");
        return;
    };
    let mut config = test_config(dir.path());
    config.storage.database = disk.0.join("chat.db");
    config.limits.messages_per_sec = 0;
    let db = config.storage.database.clone();
    let logs = config.log.dir.clone();
    let server = TestServer::start_in(tempfile::tempdir().unwrap(), config).await;
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;

    let filler = disk.0.join("filler");
    fill(&filler);
    // Long lines, so the write-ahead log must grow into the space that is gone.
    let padding = "x".repeat(900);
    let lines: String = (0..100).map(|i| format!("f{i} {padding}\n")).collect();
    talker.send_raw(lines.as_bytes()).await;
    for i in 0..100 {
        listener.expect(&format!("talker: f{i} {padding}")).await;
    }
    // The writer tries the database before the transcript in each round, so once the
    // transcript has every line, the database has refused them.
    until("100 lines transcribed", || {
        transcript_count(&logs, " chat talker: f") == 100
    })
    .await;
    assert_eq!(count(&db, "kind = 'chat'"), 0, "the disk was full");
    listener.expect_nothing_pending().await;

    std::fs::remove_file(&filler).unwrap();
    until("every chat line stored", || {
        count(&db, "kind = 'chat'") == 100
    })
    .await;
    let _ = server.stop().await;
    let chats: Vec<String> = stored_events(&db)
        .into_iter()
        .filter(|e| e.kind == EventKind::Chat)
        .map(|e| e.text.unwrap())
        .collect();
    let expected: Vec<String> = (0..100).map(|i| format!("f{i} {padding}")).collect();
    assert_eq!(chats, expected);
    assert_eq!(count(&db, "1"), 2 + 100 + 2);
    drop(disk);
}

#[tokio::test]
async fn a_second_server_is_refused_and_a_killed_ones_lock_does_not_block_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let config = binary_config(dir.path());
    let (first, addr) = spawn_binary(&config, Stdio::null());
    let _alice = login(addr, "alice").await;

    let out = Command::new(SERVER_BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let message = format!(
        "database {} is in use by another chat-server (pid {})",
        db.display(),
        first.id()
    );
    assert!(stderr.contains(&message), "{stderr}");

    // Readers need no lock.
    until("alice's join stored", || count(&db, "kind = 'join'") == 1).await;
    for command in ["report", "transcript"] {
        let out = Command::new(SERVER_BIN)
            .args([command, "--db"])
            .arg(&db)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("alice"));
    }

    signal(&first, "-KILL");
    crate::harness::exited(first).await;
    assert!(
        store::lock_path(&db).exists(),
        "the dead server's lock file stays"
    );
    let (restarted, addr) = spawn_binary(&config, Stdio::null());
    let _bob = login(addr, "bob").await;
    signal(&restarted, "-TERM");
    let status = crate::harness::exited(restarted).await;
    assert_eq!(status.code(), Some(0));
    assert_eq!(count(&db, "kind = 'join'"), 2);
}

#[tokio::test]
async fn the_log_folder_is_created_again_when_removed() {
    let server = TestServer::start_with(|c| c.limits.messages_per_sec = 0).await;
    let logs = server.config.log.dir.clone();
    let db = server.db_path();
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    say(&mut talker, &mut listener, "before", 1).await;
    until("the first line transcribed", || {
        transcript_count(&logs, " chat talker: before0") == 1
    })
    .await;

    std::fs::remove_dir_all(&logs).unwrap();
    say(&mut talker, &mut listener, "after", 5).await;
    until("5 lines in a new folder", || {
        transcript_count(&logs, " chat talker: after") == 5
    })
    .await;
    let _dir = server.stop().await;
    assert_eq!(count(&db, "kind = 'chat'"), 6);
    let lines = transcript_lines(&logs);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains(" chat talker: after"))
            .count(),
        5
    );
    assert!(lines.last().unwrap().contains(" leave "), "{lines:?}");
}

fn chat(i: usize) -> Event {
    Event {
        ts_ms: i as i64,
        kind: EventKind::Chat,
        room: "lobby".into(),
        sender: "alice".into(),
        recipient: None,
        text: Some(format!("b{i}")),
        session: 1,
        account: None,
    }
}

#[tokio::test]
async fn the_backlog_is_over_its_limit_only_while_the_database_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.storage.max_backlog = 5;
    let opened = tokio::task::spawn_blocking(move || Store::open(&config).map(|o| (o, config)))
        .await
        .unwrap()
        .unwrap();
    let (opened, config) = opened;
    let (store, handle) = (opened.store, opened.handle);
    let db = config.storage.database.clone();
    for i in 0..2 {
        handle.record(chat(i));
    }
    until("two events committed", || handle.backlog() == 0).await;
    assert_eq!(count(&db, "1"), 2);

    let lock = ExclusiveLock::take(&db);
    for i in 2..7 {
        handle.record(chat(i));
    }
    assert_eq!(handle.backlog(), 5);
    assert!(
        !handle.over_backlog(),
        "5 waiting is at the limit, not past it"
    );
    handle.record(chat(7));
    assert!(handle.over_backlog());
    // The writer tries the database before the transcript in each round.
    until("eight lines transcribed", || {
        transcript_count(&config.log.dir, " chat alice: b") == 8
    })
    .await;
    assert_eq!(handle.backlog(), 6, "nothing committed through the lock");
    assert!(handle.over_backlog());
    lock.release();

    until("the backlog written", || handle.backlog() == 0).await;
    assert!(!handle.over_backlog());
    let closed = tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
    assert_eq!(closed, Closed::AllWritten);
    assert_eq!(count(&db, "1"), 8);
}

#[tokio::test]
async fn past_the_backlog_chat_is_refused_and_nothing_refused_is_delivered() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 0;
        c.storage.max_backlog = 5;
    })
    .await;
    let db = server.db_path();
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    talker.expect("* listener has joined #lobby").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;

    let lock = ExclusiveLock::take(&db);
    let (mut delivered, mut refused) = (0, 0);
    for i in 0..12 {
        // A `/who` after each line: the talker hears back only if it was refused.
        talker.send(&format!("b{i}")).await;
        talker.send("/who").await;
        let answer = talker.next_body().await;
        if answer == "! Messages cannot be recorded right now; try again shortly." {
            refused += 1;
            talker.expect_prefix("= #lobby").await;
        } else {
            assert!(answer.starts_with("= #lobby"), "{answer}");
            delivered += 1;
            listener.expect_next(&format!("talker: b{i}")).await;
        }
    }
    // Refused once more than 5 wait: six lines get through, then none.
    assert_eq!((delivered, refused), (6, 6));
    listener.expect_nothing_pending().await;
    lock.release();
    until("the backlog written", || {
        count(&db, "kind = 'chat'") == delivered
    })
    .await;
    talker.send("after").await;
    listener.expect("talker: after").await;
    let _dir = server.stop().await;
    assert_eq!(count(&db, "kind = 'chat'"), delivered + 1);
}

/// Past the backlog, a `/me` and an `/ask` are refused as a chat line is: each
/// is said to the room and recorded, so none may reach the room unrecorded.
#[tokio::test]
async fn past_the_backlog_actions_and_questions_are_refused_too() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 0;
        c.storage.max_backlog = 2;
    })
    .await;
    let db = server.db_path();
    let mut talker = server.login("talker").await;
    let mut listener = server.login("listener").await;
    talker.expect("* listener has joined #lobby").await;
    until("both joins stored", || count(&db, "kind = 'join'") == 2).await;

    let lock = ExclusiveLock::take(&db);
    let refusal = "! Messages cannot be recorded right now; try again shortly.";
    // Fill the backlog until a chat line is refused.
    let mut delivered = 0;
    loop {
        talker.send(&format!("b{delivered}")).await;
        talker.send("/who").await;
        if talker.next_body().await == refusal {
            talker.expect_prefix("= #lobby").await;
            break;
        }
        listener.expect_next(&format!("talker: b{delivered}")).await;
        delivered += 1;
    }
    for said in ["/me waves", "/ask is this recorded?"] {
        talker.send(said).await;
        talker.expect_next(refusal).await;
    }
    listener.expect_nothing_pending().await;
    lock.release();
    until("the backlog written", || {
        count(&db, "kind = 'chat'") == delivered
    })
    .await;
    let _dir = server.stop().await;
    assert_eq!(count(&db, "kind IN ('action', 'ask')"), 0);
}
