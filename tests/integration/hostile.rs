//! One student against everyone (SPEC 10): each attack tried from outside, with
//! the counts that show it failed.

use crate::access::{password_hash, PASSWORD};
use crate::harness::{enable_irc, TestClient, TestServer};

fn with_instructor(config: &mut classchat::config::Config) {
    config.access.instructors = vec!["prof".into()];
    config.access.instructor_password = password_hash().to_owned();
    config.limits.messages_per_sec = 0;
}

async fn instructor(server: &TestServer) -> TestClient {
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
async fn nobody_renames_to_an_instructors_name() {
    let server = TestServer::start_with(|c| {
        with_instructor(c);
        enable_irc(c);
    })
    .await;
    let mut mallory = server.login("mallory").await;
    mallory.send("/nick prof").await;
    mallory.expect_next("! Username prof is reserved").await;
    mallory.send("/nick PROF").await;
    mallory.expect_next("! Username PROF is reserved").await;

    let mut irc = server.irc_login("eve").await;
    irc.send("NICK Prof").await;
    let refused = irc.expect_verb("432").await;
    assert_eq!(refused.text(), "Username Prof is reserved");

    // The name is still the instructor's to take, with the password.
    let mut prof = instructor(&server).await;
    prof.send("/who").await;
    let who = prof.expect_prefix("= #lobby").await;
    assert_eq!(who.matches("prof").count(), 1, "{who}");
    assert!(who.contains("mallory") && who.contains("eve"), "{who}");
}
