//! Many clients at once: every delivery arrives.

use std::sync::Arc;

use tokio::sync::Barrier;

use crate::harness::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_five_messages_each_every_delivery_arrives() {
    const CLIENTS: usize = 200;
    const MESSAGES: usize = 5;
    // Every client comes from 127.0.0.1: lift the limits per address.
    let server = TestServer::start_with(|c| {
        c.limits.max_clients = 1000;
        c.limits.connects_per_minute_per_ip = 0;
    })
    .await;
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        clients.push(server.login(&format!("u{i}")).await);
    }
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let mut tasks = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            for m in 0..MESSAGES {
                client.send(&format!("message {m} from u{i}")).await;
            }
            let expected = (CLIENTS - 1) * MESSAGES;
            let mut received = 0;
            let mut next_from = vec![0usize; CLIENTS];
            while received < expected {
                let body = client.next_body().await;
                let Some((sender, text)) = body.split_once(": ") else {
                    continue;
                };
                let Some(n) = sender
                    .strip_prefix('u')
                    .and_then(|n| n.parse::<usize>().ok())
                else {
                    continue;
                };
                // Each sender's lines arrive complete and in order.
                assert_eq!(text, format!("message {} from u{n}", next_from[n]));
                assert_ne!(n, i, "u{i} got its own message back");
                next_from[n] += 1;
                received += 1;
            }
            received
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 199_000);
}
