//! Limits per address across cluster nodes (SPEC section 9, "Limits across
//! nodes"): three nodes allow an address what one server allows, no more.

use crate::cluster::{engines, node_config};
use crate::harness::{TestClient, TestServer};

const CODE: &str = "owl-42";
/// Guesses codes.
const GUESSER: [u8; 4] = [127, 0, 0, 1];
/// Reconnects over and over.
const FLOODER: [u8; 4] = [127, 0, 0, 4];
/// A classmate at another address.
const CLASSMATE: [u8; 4] = [127, 0, 0, 2];

const CODES_PER_ADDRESS: u32 = 20;
const CONNECTS_PER_ADDRESS: u32 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_allow_an_address_what_one_allows() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut config = node_config(dir.path(), &nats, &pg);
        config.access.join_code = CODE.into();
        config.access.code_attempts_per_minute = 100;
        config.access.code_attempts_per_minute_per_ip = CODES_PER_ADDRESS;
        config.limits.connects_per_minute_per_ip = CONNECTS_PER_ADDRESS;
        nodes.push(TestServer::start_in(dir, config).await);
    }

    // Wrong codes from another address, spread over the nodes, at a different
    // name each time, up to one server's limit for the address.
    for i in 0..CODES_PER_ADDRESS as usize {
        let mut guess = TestClient::connect_from(nodes[i % 3].addr, GUESSER).await;
        guess.send(&format!("guess{i}")).await;
        guess.expect_prefix("* This class needs a join code").await;
        guess.send("wrong").await;
        guess.expect_prefix("! Wrong code").await;
    }
    // An address's connections, spread over the nodes, up to one server's limit.
    for i in 0..CONNECTS_PER_ADDRESS as usize {
        let mut client = TestClient::connect_from(nodes[i % 3].addr, FLOODER).await;
        client.expect("* Please enter a username:").await;
    }
    // Every node now refuses that address even the right code, unchecked...
    for node in &nodes {
        let mut amy = TestClient::connect_from(node.addr, GUESSER).await;
        amy.send("amy").await;
        amy.expect_prefix("* This class needs a join code").await;
        amy.send(CODE).await;
        let bodies = amy.expect_closed().await;
        assert!(
            bodies
                .iter()
                .any(|b| b.starts_with("! Too many wrong codes from your address; try again in ")),
            "{bodies:?}"
        );
    }
    // ...and more connections from the other. The last connects reach the other
    // nodes within milliseconds, so a node may still let one or two through; one
    // counting alone would let a third of the flood through again.
    for node in &nodes {
        let mut refused = None;
        for _ in 0..3 {
            let mut again = TestClient::connect_from(node.addr, FLOODER).await;
            let first = again.next_body().await;
            if first.starts_with("! Too many connections from your address; try again in ") {
                refused = Some(first);
                break;
            }
            assert!(first.starts_with("* Connected to "), "{first:?}");
        }
        assert!(refused.is_some(), "node {} counted alone", node.addr);
    }
    // A classmate elsewhere is not affected.
    let mut bob = TestClient::connect_from(nodes[0].addr, CLASSMATE).await;
    bob.send("bob").await;
    bob.expect_prefix("* This class needs a join code").await;
    bob.send(CODE).await;
    bob.expect_prefix("* Welcome, bob!").await;
}
