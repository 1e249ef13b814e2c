//! The username handshake and its refusals, the handshake timeout and a full server.

use crate::harness::TestServer;

#[tokio::test]
async fn refused_names_get_a_reason_and_the_prompt_again() {
    let server = TestServer::start_with(|c| c.limits.max_nick_len = 8).await;
    let _taken = server.login("Alice").await;
    let mut client = server.connect().await;
    client.expect_prefix("* Please enter a username").await;
    let cases = [
        ("", "! Username must start with a letter"),
        ("1abc", "! Username must start with a letter"),
        (
            "bad name",
            "! Username may contain only letters, digits, _ and -",
        ),
        ("toolongname", "! Username too long (max 8 characters)"),
        ("SYSTEM", "! Username SYSTEM is reserved"),
        ("alice", "! Username alice is already taken"),
        ("ålice", "! Username must start with a letter"),
    ];
    for (name, error) in cases {
        client.send(name).await;
        client.expect_next(error).await;
        client.expect_next("* Please enter a username:").await;
    }
    client.send("bob").await;
    client.expect_prefix("* Welcome, bob!").await;
}

#[tokio::test]
async fn the_name_may_be_sent_before_the_greeting() {
    let server = TestServer::start().await;
    let mut client = server.connect().await;
    client.send_raw(b"eager\r\nfirst words\n").await;
    client.expect_prefix("* Welcome, eager!").await;
    let mut other = server.login("other").await;
    other.send("/who").await;
    other.expect("= #lobby (2): eager, other").await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_after_the_handshake_timeout() {
    let server = TestServer::start_with(|c| c.limits.handshake_timeout_secs = 1).await;
    let mut client = server.connect().await;
    let bodies = client.expect_closed().await;
    let last = bodies.last().unwrap();
    assert!(
        last.starts_with("! No username given within 1 second;"),
        "{bodies:?}"
    );
}

/// The name was given: the time that runs out is the code's, and the refusal says so.
#[tokio::test]
async fn a_code_not_given_in_time_is_named_as_the_code_on_both_ports() {
    let server = TestServer::start_with(|c| {
        c.limits.handshake_timeout_secs = 1;
        c.access.join_code = "cs101".into();
        crate::harness::enable_irc(c);
    })
    .await;
    let mut client = server.connect().await;
    client.send("alice").await;
    client
        .expect("* This class needs a join code. Please enter the code:")
        .await;
    let bodies = client.expect_closed().await;
    assert_eq!(
        bodies.last().map(String::as_str),
        Some("! No code given within 1 second; goodbye."),
        "{bodies:?}"
    );

    let mut irc = server.irc().await;
    irc.send("NICK ann").await;
    irc.send("USER ann 0 * :Ann").await;
    irc.expect_next("464").await;
    let lines = irc.expect_closed().await;
    let error = lines.iter().find(|l| l.verb == "ERROR").expect("an ERROR");
    assert_eq!(error.text(), "No code given within 1 second; goodbye.");
}

#[tokio::test]
async fn a_full_server_refuses_and_closes() {
    let server = TestServer::start_with(|c| c.limits.max_clients = 2).await;
    let _a = server.login("a").await;
    let _b = server.login("b").await;
    // Logging in takes no seat (SPEC 2: connections in the handshake have their
    // own budget); a third name does.
    let mut third = server.connect().await;
    third.send("c").await;
    let bodies = third.expect_closed().await;
    let last = bodies.last().unwrap();
    assert!(last.starts_with("! Server is full"), "{bodies:?}");
}
