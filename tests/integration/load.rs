//! Many clients at once: every delivery arrives, whether the clients are the
//! tests' own or `chat-load`'s on each of the three front ends.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::Barrier;

use crate::harness::{enable_irc, enable_web, TestServer};

const LOAD_BIN: &str = env!("CARGO_BIN_EXE_chat-load");

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

/// A server whose limits let a load generator's clients, all from 127.0.0.1, in.
async fn load_server() -> TestServer {
    TestServer::start_with(|c| {
        enable_web(c);
        enable_irc(c);
        c.limits.max_clients = 1000;
        c.limits.messages_per_sec = 0;
        c.limits.connects_per_minute_per_ip = 0;
        c.limits.max_pending_per_ip = 0;
    })
    .await
}

/// Runs `chat-load` for one measured second against `addr` and returns its JSON,
/// after checking that every client got in and every delivery arrived.
pub(crate) async fn one_second_of_load(proto: &str, addr: SocketAddr, extra: &[&str]) -> Value {
    let mut command = Command::new(LOAD_BIN);
    command.args(["--proto", proto, "--addr", &addr.to_string()]);
    command.args(["--clients", "20", "--rate", "200", "--duration", "1"]);
    command.args(["--warmup", "0.5", "--settle", "0.2", "--drain", "5"]);
    command.args(extra);
    // The server runs on this test's runtime: wait for the child off it.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("chat-load runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "chat-load failed: {stderr}");
    let result: Value = serde_json::from_slice(&output.stdout).expect("one JSON line");
    assert_eq!(result["proto"], proto);
    assert_eq!(result["connected"], 20, "{stderr}");
    assert!(result["sent"].as_u64().unwrap() > 100, "{result}");
    assert_eq!(result["loss_pct"], 0.0, "{result}");
    assert_eq!(result["disconnects"], 0, "{result}");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_over_the_line_port_loses_nothing() {
    let server = load_server().await;
    one_second_of_load("line", server.addr, &["--ready", "Welcome"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_over_the_websocket_loses_nothing() {
    let server = load_server().await;
    let result = one_second_of_load("ws", server.web.unwrap(), &["--ready", "Welcome"]).await;
    assert!(result["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_over_irc_loses_nothing() {
    let server = load_server().await;
    one_second_of_load("irc", server.irc_addr.unwrap(), &["--channel", "#lobby"]).await;
}
