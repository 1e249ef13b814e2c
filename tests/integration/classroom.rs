//! The tools of a live class (SPEC 11) from outside: the private-message policy,
//! raised hands, polls and anonymous questions on the line port and over IRC.

use crate::access::{password_hash, PASSWORD};
use crate::harness::{TestClient, TestServer};

async fn class() -> TestServer {
    TestServer::start_with(|c| {
        crate::harness::enable_irc(c);
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = password_hash().to_owned();
    })
    .await
}

async fn prof(server: &TestServer) -> TestClient {
    let mut prof = server.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's").await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    prof
}

#[tokio::test]
async fn dm_staff_keeps_students_from_messaging_each_other_only() {
    let server = TestServer::start_with(|c| {
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = password_hash().to_owned();
        c.access.private_messages = classchat::protocol::DmPolicy::Staff;
    })
    .await;
    let mut prof = prof(&server).await;
    let mut amy = server.login("amy").await;
    let mut bob = server.login("bob").await;
    amy.expect("* bob has joined #lobby").await;
    amy.send("/msg bob psst").await;
    amy.expect_next("! Private messages between students are off in this class.")
        .await;
    amy.send("/msg prof a question").await;
    prof.expect("[PM from amy] a question").await;
    // Staff open it up again, in front of everyone.
    prof.send("/dm everyone").await;
    bob.expect("* prof opened private messages to everyone.")
        .await;
    amy.expect("* prof opened private messages to everyone.")
        .await;
    amy.send("/msg bob psst").await;
    bob.expect("[PM from amy] psst").await;
    bob.send("/dm off").await;
    bob.expect_next("! Permission denied").await;
}

#[tokio::test]
async fn hands_polls_and_questions_on_the_line_port_and_over_irc() {
    let server = class().await;
    let mut prof = prof(&server).await;
    let mut amy = server.login("amy").await;
    let mut ian = server.irc_login("ian").await;
    prof.expect("* ian has joined #lobby").await;
    amy.expect("* ian has joined #lobby").await;

    // Hands: in order, called on in front of the room.
    amy.send("/hand part 2?").await;
    amy.expect_next("* Your hand is up (number 1 in the queue); /hand again lowers it.")
        .await;
    prof.expect("* amy raised a hand: part 2?").await;
    ian.send("HAND").await;
    let up = ian.expect_verb("NOTICE").await;
    assert_eq!(up.params[0], "#lobby", "{}", up.raw);
    assert!(
        up.text().starts_with("Your hand is up (number 2"),
        "{}",
        up.raw
    );
    prof.expect("* ian raised a hand").await;
    prof.send("/hands").await;
    prof.expect_prefix("* Hands up in #lobby: 1) amy (0 min): part 2?, 2) ian (0 min)")
        .await;
    prof.send("/next").await;
    amy.expect("* prof calls on amy").await;
    let called = ian.expect_verb("NOTICE").await;
    assert_eq!(called.text(), "prof calls on amy");

    // A poll: one vote each, the last one counts, counts shown on closing.
    prof.send("/poll Ready for the quiz? | yes | no | not yet")
        .await;
    amy.expect(
        "* Poll 1: Ready for the quiz? \u{2014} 1) yes 2) no 3) not yet; answer with /vote N",
    )
    .await;
    ian.expect_where("the poll", |l| l.text().starts_with("Poll 1: "))
        .await;
    amy.send("/vote 1").await;
    amy.expect_prefix("* Your vote in poll 1: 1) yes.").await;
    amy.send("/vote 3").await;
    amy.expect_prefix("* Your vote in poll 1: 3) not yet.")
        .await;
    ian.send("VOTE 3").await;
    ian.expect_where("the vote", |l| {
        l.text().starts_with("Your vote in poll 1: 3)")
    })
    .await;
    amy.send("/vote 7").await;
    amy.expect_next("! Vote with a number from 1 to 3.").await;
    prof.send("/poll close").await;
    amy.expect("* Poll 1 closed: Ready for the quiz? \u{2014} 1) yes: 0, 2) no: 0, 3) not yet: 2")
        .await;

    // A question: the room sees it without its author, staff with it.
    ian.send("ASK :is it on the exam?").await;
    amy.expect("* Question: is it on the exam?").await;
    prof.expect("* Question: is it on the exam? [from ian]")
        .await;
    let asked = ian
        .expect_where("the question", |l| l.text().starts_with("Question: "))
        .await
        .0;
    assert_eq!(asked.params[0], "#lobby");
    assert_eq!(asked.text(), "Question: is it on the exam?");

    // Every step is in the record, the question with its author.
    let db = server.db_path();
    let _dir = server.stop().await;
    let kinds: Vec<(String, String)> = crate::persistence::stored_events(&db)
        .into_iter()
        .filter(|e| !matches!(e.kind.as_str(), "join" | "leave" | "op"))
        .map(|e| (e.kind.as_str().to_owned(), e.sender.to_string()))
        .collect();
    let expected = [
        ("hand", "amy"),
        ("hand", "ian"),
        ("call", "prof"),
        ("poll", "prof"),
        ("vote", "amy"),
        ("vote", "amy"),
        ("vote", "ian"),
        ("close", "prof"),
        ("ask", "ian"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect();
    assert_eq!(kinds, expected);

    // The report: each student's hands, questions and answers (the last vote).
    let out = std::process::Command::new(crate::harness::SERVER_BIN)
        .args(["report", "--format", "json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap().clone();
    let amy = row("amy");
    assert_eq!(
        (amy["hands"].as_u64(), amy["questions"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(amy["answers"], serde_json::json!(["1: 3) not yet"]));
    let ian = row("ian");
    assert_eq!(
        (ian["hands"].as_u64(), ian["questions"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(ian["answers"], serde_json::json!(["1: 3) not yet"]));
}
