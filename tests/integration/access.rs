//! Join code, instructors and moderation, connection limits per address.

use std::sync::OnceLock;

use classchat::config::Config;

use crate::harness::{TestClient, TestServer};
use crate::persistence::{stored_events, transcript_lines};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// One hash for every test: hashing is slow on purpose.
pub(crate) fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| classchat::password::hash(PASSWORD).unwrap())
}

pub(crate) fn with_instructor(config: &mut Config) {
    config.access.instructors = vec!["prof".into()];
    config.access.instructor_password = password_hash().to_owned();
    config.limits.messages_per_sec = 0;
}

/// Logs in as the instructor: a reserved name asks for the password as its code
/// (SPEC 6), and is an instructor from then on.
pub(crate) async fn instructor(server: &TestServer) -> TestClient {
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect(
        "* This name is an instructor's. Please enter the instructor password as your code:",
    )
    .await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    prof
}

#[tokio::test]
async fn the_join_code_is_asked_after_the_username() {
    let server = TestServer::start_with(|c| {
        c.access.join_code = "cs101".into();
        c.access.max_code_attempts = 2;
    })
    .await;
    let mut good = server.connect().await;
    good.expect_prefix("* Please enter a username").await;
    good.send("alice").await;
    good.expect_next("* This class needs a join code. Please enter the code:")
        .await;
    good.send("CS102").await;
    good.expect_next("! Wrong code (1 attempt left).").await;
    good.expect_next("* This class needs a join code. Please enter the code:")
        .await;
    good.send("cs101").await;
    good.expect_prefix("* Welcome, alice!").await;

    let mut bad = server.connect().await;
    bad.send("mallory").await;
    bad.expect("* This class needs a join code. Please enter the code:")
        .await;
    bad.send("guess1").await;
    bad.expect_next("! Wrong code (1 attempt left).").await;
    bad.expect_next("* This class needs a join code. Please enter the code:")
        .await;
    bad.send("guess2").await;
    assert_eq!(
        bad.expect_closed().await,
        vec!["! Too many wrong codes; goodbye."]
    );

    // A taken name is refused before the code is asked.
    let mut copycat = server.connect().await;
    copycat.send("ALICE").await;
    copycat.expect("! Username ALICE is already taken").await;
    copycat.expect_next("* Please enter a username:").await;
    good.expect_nothing_pending().await;
}

#[tokio::test]
async fn students_cannot_use_instructor_commands() {
    let server = TestServer::start_with(with_instructor).await;
    let mut student = server.login("student").await;
    for command in [
        "/kick prof",
        "/mute prof 5",
        "/unmute prof",
        "/announce hi",
        "/quiet on",
        "/op guess",
    ] {
        student.send(command).await;
        student.expect_next("! Permission denied").await;
    }
    // The instructor's name with the wrong password does not get in (SPEC 6).
    let mut fake = server.connect().await;
    fake.send("prof").await;
    fake.expect_prefix("* This name is an instructor's.").await;
    fake.send("not-it").await;
    fake.expect_next("! Wrong code (2 attempts left).").await;
    // /op cannot make a student an instructor either.
    student.send("/help").await;
    let help = student.expect_prefix("= Any other line").await;
    assert!(!help.contains("/kick"));
    student.expect_nothing_pending().await;
}

#[tokio::test]
async fn an_instructor_is_marked_and_sees_more_help() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let _amy = server.login("amy").await;
    prof.expect("* amy has joined #lobby").await;
    prof.send("/who").await;
    prof.expect_next("= #lobby (2): amy, prof [instructor]")
        .await;
    prof.send("/help").await;
    prof.expect("= Instructor commands:").await;
    prof.expect_prefix("= /kick").await;
}

#[tokio::test]
async fn kicking_tells_the_student_why_and_the_room_once() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut troll = server.login("troll").await;
    let mut watcher = server.login("watcher").await;
    prof.expect("* watcher has joined #lobby").await;
    troll.expect("* watcher has joined #lobby").await;
    prof.send("/kick TROLL spamming links").await;
    assert_eq!(
        troll.expect_closed().await,
        vec!["* You have been kicked by prof: spamming links"]
    );
    watcher
        .expect_next("* troll has left #lobby (Kicked: spamming links)")
        .await;
    prof.expect_next("* troll has left #lobby (Kicked: spamming links)")
        .await;
    prof.expect_next("* troll has been kicked.").await;
    watcher.expect_nothing_pending().await;
    prof.send("/kick nobody").await;
    prof.expect_next("! No such user: nobody").await;
}

#[tokio::test]
async fn a_muted_student_is_refused_until_the_time_is_up() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut loud = server.login("loud").await;
    let mut other = server.login("other").await;
    prof.expect("* other has joined #lobby").await;
    prof.send("/mute loud 0.02").await;
    prof.expect_next("* loud is muted for 0.02 minutes.").await;
    loud.expect("* You have been muted by prof for 0.02 minutes.")
        .await;
    loud.send("can you hear me").await;
    loud.expect_next("! You are muted for less than a minute more; that message was not sent.")
        .await;
    loud.send("/msg other psst").await;
    loud.expect_next("! You are muted for less than a minute more; that message was not sent.")
        .await;
    // Nobody got either line.
    other.expect_nothing_pending().await;
    // 1.2 seconds later the lines go through again; poll, bounded.
    let mut tries = 0;
    while !other_sees_back(&mut loud, &mut other).await {
        tries += 1;
        assert!(tries < 100, "never unmuted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Muting without a time lasts until /unmute.
    prof.send("/mute loud").await;
    prof.expect("* loud is muted.").await;
    loud.expect("* You have been muted by prof.").await;
    loud.send("still?").await;
    loud.expect_next("! You are muted; that message was not sent.")
        .await;
    prof.send("/unmute loud").await;
    prof.expect_next("* loud can talk again.").await;
    loud.expect_next("* prof has unmuted you; you can talk again.")
        .await;
    loud.send("thanks").await;
    other.expect("loud: thanks").await;
    prof.send("/unmute loud").await;
    prof.expect("! loud is not muted").await;
}

/// Sends one line from `loud`; true if `other` received it.
async fn other_sees_back(loud: &mut TestClient, other: &mut TestClient) -> bool {
    loud.send("back now").await;
    loud.send("/who").await;
    let reply = loud.next_body().await;
    if reply.starts_with("! You are muted") {
        loud.expect_prefix("= #lobby").await;
        return false;
    }
    assert!(reply.starts_with("= #lobby"), "{reply}");
    other.expect("loud: back now").await;
    true
}

#[tokio::test]
async fn announcements_reach_every_room() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut lab = server.login("labrat").await;
    lab.send("/join lab").await;
    lab.expect("* You are now in #lab with 0 others.").await;
    let mut lobby = server.login("lobbyist").await;
    prof.send("/announce Quiz in 5 minutes").await;
    for client in [&mut prof, &mut lab, &mut lobby] {
        client
            .expect("* Announcement from prof: Quiz in 5 minutes")
            .await;
    }
}

#[tokio::test]
async fn quiet_mode_lets_only_instructors_talk() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut amy = server.login("amy").await;
    let mut ben = server.login("ben").await;
    prof.expect("* ben has joined #lobby").await;
    amy.expect("* ben has joined #lobby").await;
    prof.send("/quiet on").await;
    for client in [&mut prof, &mut amy, &mut ben] {
        client
            .expect("* Quiet mode is on: only instructors can talk.")
            .await;
    }
    amy.send("hello?").await;
    amy.expect_next("! The room is in quiet mode; only instructors can talk.")
        .await;
    amy.send("/msg ben psst").await;
    amy.expect_next("! The room is in quiet mode; only instructors can talk.")
        .await;
    amy.send("/msg prof may I ask something?").await;
    amy.expect_next("[PM to prof] may I ask something?").await;
    prof.expect_next("[PM from amy] may I ask something?").await;
    prof.send("Yes, after the quiz").await;
    amy.expect_next("prof: Yes, after the quiz").await;
    ben.expect_next("prof: Yes, after the quiz").await;
    prof.send("/quiet off").await;
    amy.expect_next("* Quiet mode is off: everyone can talk again.")
        .await;
    amy.send("thanks").await;
    ben.expect("amy: thanks").await;
}

#[tokio::test]
async fn moderation_is_recorded_and_the_password_is_never_stored() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut sam = server.login("sam").await;
    prof.expect("* sam has joined #lobby").await;
    prof.send("/op wrong-password-here").await;
    prof.send("/mute sam 10").await;
    prof.expect("* sam is muted for 10 minutes.").await;
    prof.send("/unmute sam").await;
    prof.expect("* sam can talk again.").await;
    prof.send("/announce break").await;
    prof.expect("* Announcement from prof: break").await;
    prof.send("/quiet on").await;
    prof.expect_prefix("* Quiet mode is on").await;
    prof.send("/quiet off").await;
    prof.expect_prefix("* Quiet mode is off").await;
    prof.send("/kick sam bye").await;
    sam.expect_closed().await;
    prof.expect("* sam has been kicked.").await;
    let config = server.config.clone();
    let _dir = server.stop().await;

    let kinds: Vec<String> = stored_events(&config.storage.database)
        .iter()
        .filter(|e| e.kind.as_str() != "join")
        .map(|e| format!("{} {}", e.kind, e.text.as_deref().unwrap_or("-")))
        .collect();
    assert_eq!(
        kinds,
        vec![
            "op -",
            "mute 10",
            "unmute -",
            "announce break",
            "quiet on",
            "quiet off",
            "kick bye",
            "leave Kicked: bye",
            "leave Server shutting down",
        ]
    );
    let transcript = transcript_lines(&config.log.dir).join("\n");
    assert!(
        transcript.contains(" kick prof -> sam (bye)"),
        "{transcript}"
    );
    assert!(
        transcript.contains(" mute prof -> sam (10)"),
        "{transcript}"
    );
    for file in walk(config.storage.database.parent().unwrap())
        .into_iter()
        .chain(walk(&config.log.dir))
    {
        let bytes = std::fs::read(&file).unwrap();
        for secret in [PASSWORD, "wrong-password-here"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {}",
                file.display()
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[tokio::test]
async fn one_address_cannot_take_every_seat() {
    let server = TestServer::start_with(|c| c.limits.max_per_ip = 2).await;
    let _a = server.login("a").await;
    let mut b = server.login("b").await;
    let mut third = server.connect().await;
    assert_eq!(
        third.expect_closed().await,
        vec!["! Too many connections from your address (max 2)."]
    );
    // A seat frees up when someone leaves.
    b.send("/quit").await;
    b.expect_closed().await;
    let mut retry = server.connect().await;
    retry.expect_prefix("* Please enter a username").await;
}

#[tokio::test]
async fn the_password_never_reaches_the_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let access = format!(
        "[access]\ninstructors = [\"prof\"]\ninstructor_password = {:?}\n",
        password_hash()
    );
    let (child, addr) = crate::harness::spawn_logging(dir.path(), "level = \"trace\"", &access);
    let mut prof = TestClient::connect(addr).await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's.").await;
    prof.send("wrong-password-here").await;
    prof.expect_prefix("! Wrong code").await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    let stopped = tokio::task::spawn_blocking(move || crate::harness::stop_for_stderr(child));
    prof.expect_closed().await;
    let stderr = stopped.await.unwrap();
    assert!(stderr.contains("wrong instructor password"), "{stderr}");
    assert!(stderr.contains("127.0.0.1"), "the peer is logged: {stderr}");
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains("wrong-password-here"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reconnecting_does_not_lift_a_mute() {
    let server = TestServer::start_with(with_instructor).await;
    let mut prof = instructor(&server).await;
    let mut loud = server.login("loud").await;
    prof.send("/mute loud").await;
    prof.expect("* loud is muted.").await;
    loud.send("/quit").await;
    loud.expect_closed().await;
    let mut again = server.login("LOUD").await;
    again.send("I'm back").await;
    again
        .expect("! You are muted; that message was not sent.")
        .await;
    // SPEC 6: a muted student keeps the name the mute is on.
    again.send("/nick quiet_one").await;
    again.expect_next("! You are muted.").await;
    again.send("still me").await;
    again
        .expect_next("! You are muted; that message was not sent.")
        .await;
}
