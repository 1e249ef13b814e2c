//! Every row of the bad-input table: a clear error, the connection stays, nothing
//! else is affected.

use std::time::{Duration, Instant};

use crate::harness::TestServer;

#[tokio::test]
async fn a_long_line_is_refused_and_the_next_line_works() {
    let server = TestServer::start_with(|c| c.limits.max_line_bytes = 100).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;

    let long = "x".repeat(5000);
    bob.send_raw(format!("{long}\nafter\n").as_bytes()).await;
    bob.expect_next("! Line too long (max 100 bytes); it was not sent.")
        .await;
    alice.expect_next("bob: after").await;

    // Exactly the limit passes, with or without a carriage return.
    let exact = "y".repeat(100);
    bob.send_raw(format!("{exact}\r\n{exact}\n").as_bytes())
        .await;
    alice.expect_next(&format!("bob: {exact}")).await;
    alice.expect_next(&format!("bob: {exact}")).await;
    bob.send_raw(format!("{exact}z\n").as_bytes()).await;
    bob.expect_next("! Line too long (max 100 bytes); it was not sent.")
        .await;
    alice.expect_nothing_pending().await;
}

#[tokio::test]
async fn invalid_utf8_is_refused() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    bob.send_raw(b"caf\xe9 \xff\xfe\n").await;
    bob.expect_next("! Invalid UTF-8; the line was not sent.")
        .await;
    bob.send("caf\u{e9} ok").await;
    alice.expect_next("bob: caf\u{e9} ok").await;
}

#[tokio::test]
async fn control_characters_and_escapes_are_removed() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    bob.send_raw(b"\x1b[31mred\x1b[0m\tand\x07 bell\x7f \xc2\x9b2Jc1 \x1b]0;title\x07done\n")
        .await;
    alice.expect_next("bob: red and bell c1 done").await;
    // A line of nothing but controls is empty, so it is not sent at all.
    bob.send_raw(b"\x1b[2J\x07\n").await;
    bob.send("visible").await;
    alice.expect_next("bob: visible").await;
}

#[tokio::test]
async fn flooding_is_refused_line_by_line_and_nothing_is_lost_silently() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.burst = 3;
    })
    .await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    let mut batch = String::new();
    for i in 0..8 {
        batch.push_str(&format!("m{i}\n"));
    }
    bob.send_raw(batch.as_bytes()).await;
    // Every line is either delivered or refused; the first three (the burst) pass.
    let mut delivered = Vec::new();
    for _ in 0..3 {
        delivered.push(alice.next_body().await);
    }
    assert_eq!(delivered, vec!["bob: m0", "bob: m1", "bob: m2"]);
    let mut refusals = 0;
    for _ in 0..5 {
        let body = bob.next_body().await;
        assert!(body.starts_with("! Slow down"), "{body}");
        assert!(body.ends_with("that message was not sent."), "{body}");
        refusals += 1;
    }
    assert_eq!(refusals, 5);
}

#[tokio::test]
async fn a_reader_that_stalls_is_dropped_and_never_delays_others() {
    let server = TestServer::start_with(|c| {
        c.limits.outbound_queue = 16;
        c.limits.messages_per_sec = 0;
    })
    .await;
    let mut staller = server.login("staller").await;
    let mut flooder = server.login("flooder").await;
    let mut third = server.login("third").await;
    staller.expect("* third has joined #lobby").await;
    flooder.expect("* third has joined #lobby").await;

    // The staller reads nothing from here on. Enough traffic to fill its socket
    // buffers and then its queue.
    let text = "f".repeat(1000);
    let started = Instant::now();
    let mut sent = 0;
    let mut dropped_notice = false;
    while sent < 20_000 {
        flooder.send(&text).await;
        sent += 1;
        let body = third.next_body().await;
        if body == "* staller has left #lobby (Too slow)" {
            dropped_notice = true;
            assert_eq!(third.next_body().await, format!("flooder: {text}"));
            break;
        }
        assert_eq!(body, format!("flooder: {text}"));
    }
    assert!(
        dropped_notice,
        "the staller was never dropped after {sent} lines"
    );
    // The third client got every line as it was sent, one round trip each.
    assert!(started.elapsed() < Duration::from_secs(60));
    flooder.send("/who").await;
    flooder.expect("= #lobby (2): flooder, third").await;
    // Exactly one leave notice for the dropped client.
    third.expect_nothing_pending().await;
    drop(staller);
}

#[tokio::test]
async fn an_idle_client_is_timed_out() {
    let server = TestServer::start_with(|c| {
        c.limits.idle_timeout_secs = 1;
        c.limits.messages_per_sec = 0;
    })
    .await;
    let mut watcher = server.connect().await;
    watcher.send("watcher").await;
    watcher.expect_prefix("* Welcome, watcher!").await;
    let mut idle = server.login("idle").await;
    watcher.expect_next("* idle has joined #lobby").await;
    // The watcher keeps talking (to itself) so only the idle one times out.
    let bodies_idle = tokio::spawn(async move { idle.expect_closed().await });
    loop {
        watcher.send("/who").await;
        let body = watcher.next_body().await;
        if body == "* idle has left #lobby (Timed out)" {
            break;
        }
        assert!(body.starts_with("= #lobby"), "{body}");
    }
    bodies_idle.await.unwrap();
    // Exactly one leave notice for the timed-out client.
    watcher.expect_nothing_pending().await;
}

#[tokio::test]
async fn bad_bytes_as_a_username_get_an_error_and_the_prompt_again() {
    let server = TestServer::start_with(|c| c.limits.max_line_bytes = 64).await;
    let mut client = server.connect().await;
    client.expect_prefix("* Please enter a username").await;
    client.send(&"n".repeat(100)).await;
    client
        .expect_next("! Line too long (max 64 bytes); it was not sent.")
        .await;
    client.expect_next("* Please enter a username:").await;
    client.send_raw(b"b\xffd\n").await;
    client
        .expect_next("! Invalid UTF-8; the line was not sent.")
        .await;
    client.expect_next("* Please enter a username:").await;
    client.send_raw(b"\x1b[1mbob\x1b[0m\n").await;
    client.expect_prefix("* Welcome, bob!").await;
}

#[tokio::test]
async fn blank_lines_and_quit_are_never_rate_limited() {
    let server = TestServer::start_with(|c| {
        c.limits.messages_per_sec = 1;
        c.limits.burst = 1;
    })
    .await;
    let mut watcher = server.login("watcher").await;
    let mut bob = server.login("bob").await;
    watcher.expect_next("* bob has joined #lobby").await;
    bob.send_raw(b"\n\n\n\nonly line\n/quit\n").await;
    watcher.expect_next("bob: only line").await;
    watcher.expect_next("* bob has left #lobby (Quit)").await;
    assert_eq!(bob.expect_closed().await, vec!["* Goodbye, bob."]);
}
