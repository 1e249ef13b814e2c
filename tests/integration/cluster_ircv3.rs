//! IRCv3 in cluster mode (SPEC 7 and 9): a client on one node logs in with SASL,
//! asks for the history said through another node, and gets the same message
//! ids that node's clients see; its away state reaches the other node.

use crate::access::PASSWORD;
use crate::cluster::{engines, start_node};
use crate::ircv3::{batch, texts, v3_login, EVERY_CAP};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_ircv3_client_on_one_node_shares_ids_history_and_away_with_another() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let one = start_node(&nats, &pg).await;
    let two = start_node(&nats, &pg).await;
    let mut amy = one.login("amy").await;
    for line in ["first", "second"] {
        amy.send(line).await;
    }
    // SASL with the instructor's name and password, on the other node.
    let mut prof = v3_login(&two, EVERY_CAP, "prof", PASSWORD).await;
    amy.expect("* prof has joined #lobby").await;
    prof.expect_nothing_pending().await;
    prof.send("CHATHISTORY LATEST #lobby * 10").await;
    assert_eq!(
        texts(&batch(&mut prof, "#lobby").await),
        ["first", "second"]
    );

    // A line through node one: node two's client sees it with the id its own
    // history then gives it.
    amy.send("third").await;
    let seen = prof.expect_next("PRIVMSG").await;
    assert_eq!(seen.text(), "third");
    let id = seen.tag("msgid").expect("a msgid").to_owned();
    prof.send("CHATHISTORY LATEST #lobby * 1").await;
    let latest = batch(&mut prof, "#lobby").await;
    assert_eq!(latest[0].tag("msgid"), Some(id.as_str()));
    // Its own line comes back (echo-message) as node one's user reads it.
    prof.send("PRIVMSG #lobby :hello class").await;
    let echo = prof.expect_next("PRIVMSG").await;
    assert_eq!(echo.text(), "hello class");
    amy.expect("prof: hello class").await;

    // Away, set on node two, answers a private message sent through node one.
    prof.send("AWAY :grading").await;
    prof.expect_next("306").await;
    amy.send("/msg prof a question").await;
    amy.expect("* prof is away: grading").await;
    let pm = prof.expect_next("PRIVMSG").await;
    assert_eq!(pm.params, ["prof", "a question"]);
}
