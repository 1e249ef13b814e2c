//! The tools of a live class (SPEC 11) in cluster mode: a session, hands, a poll
//! and a question spread over two nodes, each step applied in the stream's order
//! on both, and attendance read from PostgreSQL afterwards.

use std::time::{Duration, Instant};

use crate::access::PASSWORD;
use crate::cluster::{engines, start_node};
use crate::harness::{TestServer, SERVER_BIN, WAIT};

async fn prof(node: &TestServer) -> crate::harness::TestClient {
    let mut prof = node.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's.").await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    prof
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lecture_spread_over_two_nodes_runs_and_is_attended() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let one = start_node(&nats, &pg).await;
    let two = start_node(&nats, &pg).await;
    let mut prof = prof(&one).await;
    let mut amy = one.login("amy").await;
    let mut bob = two.login("bob").await;
    prof.expect("* bob has joined #lobby").await;
    amy.expect("* bob has joined #lobby").await;

    prof.send("/session start Quiz").await;
    bob.expect("* prof started the session: Quiz").await;
    amy.expect("* prof started the session: Quiz").await;
    // A refusal decided where the stream is applied comes back typed.
    bob.send("/session end").await;
    bob.expect_next("! Permission denied").await;

    bob.send("/hand me please").await;
    bob.expect_next("* Your hand is up (number 1 in the queue); /hand again lowers it.")
        .await;
    prof.expect("* bob raised a hand: me please").await;
    amy.send("/hand").await;
    amy.expect_next("* Your hand is up (number 2 in the queue); /hand again lowers it.")
        .await;
    prof.send("/next").await;
    amy.expect("* prof calls on bob").await;

    prof.send("/poll Ready? | yes | no").await;
    bob.expect("* Poll 1: Ready? \u{2014} 1) yes 2) no; answer with /vote N")
        .await;
    amy.expect_prefix("* Poll 1: Ready?").await;
    bob.send("/vote 1").await;
    bob.expect_prefix("* Your vote in poll 1: 1) yes.").await;
    bob.send("/vote 2").await;
    bob.expect_prefix("* Your vote in poll 1: 2) no.").await;
    amy.send("/vote 2").await;
    amy.expect_prefix("* Your vote in poll 1: 2) no.").await;
    bob.send("/ask can we use notes?").await;
    amy.expect("* Question: can we use notes?").await;
    prof.expect("* Question: can we use notes? [from bob]")
        .await;
    prof.send("/poll close").await;
    bob.expect("* Poll 1 closed: Ready? \u{2014} 1) yes: 0, 2) no: 2")
        .await;

    prof.send("/dm staff").await;
    bob.expect_prefix("* prof turned private messages between students off")
        .await;
    bob.send("/msg amy psst").await;
    bob.expect_next("! Private messages between students are off in this class.")
        .await;
    amy.send("done").await;
    bob.expect("amy: done").await;
    // Not to wait for anything: a session needs a length for anyone to attend.
    tokio::time::sleep(Duration::from_millis(20)).await;
    prof.send("/session end").await;
    bob.expect_prefix("* prof ended the session: Quiz").await;

    // Attendance from PostgreSQL once the record writer has it all.
    let url = pg.url();
    let deadline = Instant::now() + WAIT;
    loop {
        let out = std::process::Command::new(SERVER_BIN)
            .args([
                "report",
                "--postgres",
                &url,
                "--by",
                "session",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let present: Vec<(&str, bool)> = rows
            .iter()
            .map(|r| (r["name"].as_str().unwrap(), r["present"] == true))
            .collect();
        if present == [("amy", true), ("bob", true)] {
            assert!(rows[0]["session"]
                .as_str()
                .unwrap()
                .ends_with(" Quiz #lobby"));
            break;
        }
        assert!(Instant::now() < deadline, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
