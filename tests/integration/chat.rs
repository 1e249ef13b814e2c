//! Chat between several clients: exact lines, no echo, join and leave notices.

use crate::harness::{body_of, TestServer};

#[tokio::test]
async fn three_clients_chat_and_the_sender_gets_no_echo() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    let mut carol = server.login("carol").await;
    alice.expect_next("* carol has joined #lobby").await;
    bob.expect_next("* carol has joined #lobby").await;

    alice.send("hello everyone").await;
    bob.expect_next("alice: hello everyone").await;
    carol.expect_next("alice: hello everyone").await;
    carol.send("hi alice").await;
    alice.expect_next("carol: hi alice").await;
    bob.expect_next("carol: hi alice").await;

    // Alice's next line is carol's, not her own echo; and nothing else is pending.
    alice.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
    carol.expect_nothing_pending().await;
}

#[tokio::test]
async fn lines_are_timestamped_and_welcome_names_the_room() {
    let server = TestServer::start_with(|c| c.server.timestamp_format = "%Y|%H".into()).await;
    let mut alice = server.connect().await;
    let greeting = alice.next_line().await.unwrap();
    let ts = &greeting[1..greeting.find(']').unwrap()];
    assert_eq!(ts.len(), 7, "{greeting}");
    assert_eq!(&ts[4..5], "|", "{greeting}");
    alice.send("alice").await;
    let welcome = alice.expect_prefix("* Welcome, alice!").await;
    assert_eq!(
        welcome,
        "* Welcome, alice! You are in #lobby with 0 others. Type /help for commands."
    );
    let _bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
}

#[tokio::test]
async fn greeting_has_name_motd_recording_notice_and_prompt_last() {
    let server = TestServer::start_with(|c| {
        c.server.name = "CS101".into();
        c.server.motd = "Office hours on Friday".into();
    })
    .await;
    let mut client = server.connect().await;
    let mut bodies = Vec::new();
    loop {
        let body = client.next_body().await;
        assert!(body.starts_with("* "), "{body}");
        let done = body.contains("username");
        bodies.push(body);
        if done {
            break;
        }
    }
    let all = bodies.join("\n");
    assert!(all.contains("CS101"), "{all}");
    assert!(all.contains("Office hours on Friday"), "{all}");
    assert!(all.contains("recorded"), "{all}");
}

#[tokio::test]
async fn exactly_one_leave_notice_for_quit_eof_and_reset() {
    let server = TestServer::start().await;
    let mut watcher = server.login("watcher").await;

    let mut quitter = server.login("quitter").await;
    watcher.expect_next("* quitter has joined #lobby").await;
    quitter.send("/quit see you").await;
    assert_eq!(
        quitter.expect_closed().await,
        vec!["* Goodbye, quitter.".to_owned()]
    );
    watcher
        .expect_next("* quitter has left #lobby (Quit: see you)")
        .await;

    let mut plain = server.login("plain").await;
    watcher.expect_next("* plain has joined #lobby").await;
    plain.send("/QUIT").await;
    plain.expect_closed().await;
    watcher.expect_next("* plain has left #lobby (Quit)").await;

    let mut eof = server.login("eof").await;
    watcher.expect_next("* eof has joined #lobby").await;
    eof.shutdown_write().await;
    eof.expect_closed().await;
    watcher
        .expect_next("* eof has left #lobby (Connection closed)")
        .await;

    let reset = server.login("reset").await;
    watcher.expect_next("* reset has joined #lobby").await;
    reset.reset();
    let body = watcher.next_body().await;
    assert!(
        body == "* reset has left #lobby (Connection lost)"
            || body == "* reset has left #lobby (Connection closed)",
        "{body}"
    );
    // No second notice for any of them.
    watcher.expect_nothing_pending().await;
}

#[tokio::test]
async fn shutdown_tells_every_client_and_closes() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    let mut pending = server.connect().await;
    pending.expect_prefix("* Please enter a username").await;
    let dir = server.stop().await;
    assert_eq!(
        alice.expect_closed().await,
        vec!["* Server is shutting down."]
    );
    assert_eq!(
        bob.expect_closed().await,
        vec!["* Server is shutting down."]
    );
    assert_eq!(
        pending.expect_closed().await,
        vec!["* Server is shutting down."]
    );
    drop(dir);
}

#[test]
fn body_of_strips_the_timestamp() {
    assert_eq!(body_of("[12:00:00] * hi"), "* hi");
}

#[tokio::test]
async fn timestamps_can_be_utc() {
    let server = TestServer::start_with(|c| {
        c.server.utc = true;
        c.server.timestamp_format = "%Z".into();
    })
    .await;
    let mut client = server.connect().await;
    let line = client.next_line().await.unwrap();
    assert!(line.starts_with("[UTC] "), "{line}");
}

#[tokio::test]
async fn the_server_log_names_who_logs_in_and_who_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = crate::harness::spawn_logging(dir.path(), "level = \"info\"", "");
    let mut amy = crate::harness::TestClient::connect(addr).await;
    amy.send("amy").await;
    amy.expect_prefix("* Welcome, amy!").await;
    amy.send("/quit").await;
    amy.expect_closed().await;
    let stderr = tokio::task::spawn_blocking(move || crate::harness::stop_for_stderr(child))
        .await
        .unwrap();
    assert!(stderr.contains("amy logged in"), "{stderr}");
    assert!(stderr.contains("amy left"), "{stderr}");
}

/// SPEC 2: in a room above `limits.announce_joins_up_to` members, students'
/// joins and leaves reach the room as one summary every few seconds (IRC: a
/// NOTICE in the channel, no JOIN), staff's as they happen, and each is recorded.
#[tokio::test]
async fn a_big_room_hears_a_summary_of_who_came_and_went() {
    let server = TestServer::start_with(|c| {
        crate::harness::enable_irc(c);
        c.limits.announce_joins_up_to = 2;
        c.limits.announce_every_secs = 1;
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = crate::access::password_hash().to_owned();
    })
    .await;
    let mut amy = server.login("amy").await;
    let mut ian = server.irc_login("ian").await;
    amy.expect_next("* ian has joined #lobby").await;
    let mut crowd = Vec::new();
    for nick in ["cy", "dee", "eve", "fay"] {
        crowd.push(server.login(nick).await);
    }
    drop(crowd.pop());
    // Nothing one by one: only summaries (the joins may straddle two), which
    // count everyone once.
    let (mut joined, mut left) = (0, 0);
    while (joined, left) != (4, 1) {
        let body = amy.next_body().await;
        let (count, rest) = body
            .strip_prefix("* ")
            .and_then(|b| b.split_once(' '))
            .unwrap_or_else(|| panic!("not a summary: {body:?}"));
        let count: usize = count.parse().unwrap_or_else(|_| panic!("{body:?}"));
        match rest.split_once(" #lobby: ") {
            Some(("people joined" | "person joined", _)) => joined += count,
            Some(("people left" | "person left", _)) => left += count,
            _ => panic!("not a summary: {body:?}"),
        }
    }
    let mut summed = 0;
    while summed < 4 {
        let (notice, skipped) = ian
            .expect_where("a summary", |l| {
                l.verb == "NOTICE" && l.text().contains(" joined #")
            })
            .await;
        assert_eq!(notice.params[0], "#lobby", "{}", notice.raw);
        summed += notice
            .text()
            .split(' ')
            .next()
            .unwrap()
            .parse::<usize>()
            .unwrap();
        assert!(
            skipped.iter().all(|l| !l.contains(" JOIN ")),
            "students' JOINs in a big room: {skipped:?}"
        );
    }
    // Staff are announced as they come.
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's").await;
    prof.send(crate::access::PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    amy.expect_next("* prof has joined #lobby").await;
    let join = ian.expect_verb("JOIN").await;
    assert_eq!(join.nick(), "prof");
    // Every join and leave is in the record, one by one.
    let db = server.db_path();
    let _dir = server.stop().await;
    let events = crate::persistence::stored_events(&db);
    let joined: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == classchat::event::EventKind::Join)
        .map(|e| &*e.sender)
        .collect();
    assert_eq!(joined, ["amy", "ian", "cy", "dee", "eve", "fay", "prof"]);
    assert!(events
        .iter()
        .any(|e| e.kind == classchat::event::EventKind::Leave && &*e.sender == "fay"));
}
