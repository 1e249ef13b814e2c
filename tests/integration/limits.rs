//! Limits that survive reconnecting (SPEC 6): each attack a student could make
//! alone, and that the class is not kept out by it.

use crate::harness::{TestClient, TestServer};

const OTHER_MACHINE: [u8; 4] = [127, 0, 0, 2];

#[tokio::test]
async fn silent_sockets_cannot_keep_the_class_out() {
    let server = TestServer::start_with(|c| {
        c.limits.max_clients = 3;
        c.limits.max_pending_per_ip = 10;
    })
    .await;
    let mut silent = Vec::new();
    for _ in 0..10 {
        let mut socket = server.connect().await;
        socket.expect("* Please enter a username:").await;
        silent.push(socket);
    }
    let mut eleventh = server.connect().await;
    assert_eq!(
        eleventh.expect_closed().await,
        vec!["! Server is busy; try again shortly."]
    );
    // A student on another machine gets in, and so do the seats' full number.
    for name in ["amy", "bob", "cat"] {
        let mut student = TestClient::connect_from(server.addr, OTHER_MACHINE).await;
        student.send(name).await;
        student.expect_prefix(&format!("* Welcome, {name}!")).await;
        silent.push(student);
    }
}

#[tokio::test]
async fn reconnect_floods_are_refused_per_address() {
    let server = TestServer::start_with(|c| c.limits.connects_per_minute_per_ip = 5).await;
    for _ in 0..5 {
        let mut client = server.connect().await;
        client.expect("* Please enter a username:").await;
    }
    let mut sixth = server.connect().await;
    let bodies = sixth.expect_closed().await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].starts_with("! Too many connections from your address; try again in "),
        "{bodies:?}"
    );
    let mut elsewhere = TestClient::connect_from(server.addr, OTHER_MACHINE).await;
    elsewhere.send("amy").await;
    elsewhere.expect_prefix("* Welcome, amy!").await;
}

#[tokio::test]
async fn the_chat_rate_is_kept_per_login_name_across_reconnects() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.burst = 3;
    })
    .await;
    let mut listener = server.login("listener").await;
    let mut amy = server.login("amy").await;
    listener.expect("* amy has joined #lobby").await;
    for i in 0..3 {
        amy.send(&format!("m{i}")).await;
        listener.expect_next(&format!("amy: m{i}")).await;
    }
    amy.send("m3").await;
    amy.expect_prefix("! Slow down").await;
    amy.send("/quit").await;
    amy.expect_closed().await;
    listener.expect_next("* amy has left #lobby (Quit)").await;
    // A fresh connection under the same name gets no fresh bucket.
    let mut again = server.login("AMY").await;
    listener.expect_next("* AMY has joined #lobby").await;
    again.send("m4").await;
    again.expect_prefix("! Slow down").await;
    listener.expect_nothing_pending().await;
}

#[tokio::test]
async fn codes_count_per_name_and_per_address_across_connections() {
    let server = TestServer::start_with(|c| {
        c.access.join_code = "owl-42".into();
        c.access.code_attempts_per_minute = 3;
        c.access.code_attempts_per_minute_per_ip = 5;
    })
    .await;
    let guess = |name: &'static str, code: &'static str| {
        let addr = server.addr;
        async move {
            let mut client = TestClient::connect(addr).await;
            client.send(name).await;
            client.expect_prefix("* This class needs a join code").await;
            client.send(code).await;
            client
        }
    };
    let locked = |bodies: Vec<String>| {
        assert!(
            bodies
                .last()
                .unwrap()
                .starts_with("! Too many wrong codes from your address; try again in "),
            "{bodies:?}"
        );
    };
    let mut first = guess("amy", "wrong-1").await;
    first.expect_prefix("! Wrong code (2 attempts left)").await;
    first.send("wrong-2").await;
    first.expect_prefix("! Wrong code (1 attempt left)").await;
    let mut second = guess("AMY", "wrong-3").await;
    second.expect_prefix("! Wrong code").await;
    // Three tries at amy from this address: even the right code waits now.
    locked(guess("amy", "owl-42").await.expect_closed().await);
    // Other names from the same address are not locked by guesses at amy...
    guess("cat", "owl-42")
        .await
        .expect_prefix("* Welcome, cat!")
        .await;
    guess("dan", "wrong-4")
        .await
        .expect_prefix("! Wrong code")
        .await;
    // ...until the address has used its five, whatever the names.
    locked(guess("eve", "owl-42").await.expect_closed().await);
    // Another machine is not locked out, and codes match as said aloud.
    let mut elsewhere = TestClient::connect_from(server.addr, OTHER_MACHINE).await;
    elsewhere.send("amy").await;
    elsewhere
        .expect_prefix("* This class needs a join code")
        .await;
    elsewhere.send("  OWL-42 ").await;
    elsewhere.expect_prefix("* Welcome, amy!").await;
}

#[tokio::test]
async fn a_muted_student_cannot_reach_the_room_by_name_room_or_quit_reason() {
    let hash = classchat::password::hash("pw-for-tests").unwrap();
    let server = TestServer::start_with(|c| {
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = hash;
    })
    .await;
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's.").await;
    prof.send("pw-for-tests").await;
    prof.expect_prefix("* Welcome, prof!").await;
    let mut amy = server.login("amy").await;
    prof.expect("* amy has joined #lobby").await;
    prof.send("/mute amy").await;
    prof.expect("* amy is muted.").await;
    amy.expect("* You have been muted by prof.").await;
    amy.send("/nick free_pizza_in_room_5").await;
    amy.expect_next("! You are muted.").await;
    amy.send("/join free-pizza-in-room-5").await;
    amy.expect_next("! New rooms cannot be made now; join an existing one (see /rooms)")
        .await;
    amy.send("/msg prof may I ask something?").await;
    amy.expect_next("[PM to prof] may I ask something?").await;
    prof.expect_next("[PM from amy] may I ask something?").await;
    amy.send(&format!("/quit {}", "x".repeat(900))).await;
    prof.expect_next("* amy has left #lobby (Quit)").await;
}

#[tokio::test]
async fn wrong_codes_are_logged_once_per_address_per_minute() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = crate::harness::spawn_logging(
        dir.path(),
        "",
        "[access]\njoin_code = \"owl-42\"\nmax_code_attempts = 20\n",
    );
    let mut guesser = TestClient::connect(addr).await;
    guesser.send("amy").await;
    guesser
        .expect_prefix("* This class needs a join code")
        .await;
    for i in 0..8 {
        guesser.send(&format!("guess-{i}")).await;
        guesser.expect_prefix("! Wrong code").await;
    }
    let stopped = tokio::task::spawn_blocking(move || crate::harness::stop_for_stderr(child));
    guesser.expect_closed().await;
    let stderr = stopped.await.unwrap();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("wrong join code"))
        .collect();
    assert_eq!(lines.len(), 1, "8 wrong codes, one line: {stderr}");
    assert!(lines[0].contains("127.0.0.1"), "{stderr}");
}
