//! SPEC 9, "Rolling restart": three nodes restarted one at a time under a steady
//! chat of 100 clients lose no line. Each client that loses its node logs in
//! again through another, as a balancer would send it; what every connection
//! received is then held against the record in PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::cluster::{engines, node_config, recorded_chat};
use crate::harness::{TestServer, WAIT};
use crate::nats::Nats;
use crate::postgres::Postgres;

const CLIENTS: usize = 100;
/// Each client says a line this often: 100 clients, 50 lines a second.
const EVERY: Duration = Duration::from_millis(2000);

async fn node(nats: &Nats, pg: &Postgres) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), nats, pg);
    // A hundred clients on one loopback address, each logging in twice or more.
    config.limits.max_per_ip = 0;
    config.limits.max_pending_per_ip = 0;
    config.limits.connects_per_minute_per_ip = 0;
    TestServer::start_in(dir, config).await
}

/// What one connection of a client received: the others' chat lines, in order
/// (a sender gets no echo of its own).
type Run = Vec<String>;

/// A client's whole life: the lines it wrote (before its node said it was
/// stopping), and what each of its connections received.
#[derive(Default)]
struct Life {
    name: String,
    written: Vec<String>,
    runs: Vec<Run>,
}

/// The line that ends the test: every line before it in the stream's order has
/// been delivered to whoever receives it.
const END: &str = "closer: end";

/// Logs `name` in on one of the `nodes` (trying the next while the name is
/// still held by a connection being taken out), then chats every [`EVERY`]
/// until `quiet` (which it counts in `hushed`), logging in again elsewhere
/// whenever its node goes away, and reads on until [`END`].
async fn client(
    name: String,
    first: usize,
    nodes: Arc<Mutex<Vec<Option<SocketAddr>>>>,
    speaks: bool,
    mut quiet: watch::Receiver<bool>,
    hushed: Arc<AtomicUsize>,
) -> Life {
    let mut life = Life {
        name: name.clone(),
        ..Life::default()
    };
    let mut attempt = first;
    let mut said = 0;
    let mut silent = false;
    let hush = |silent: &mut bool| {
        if !*silent {
            *silent = true;
            hushed.fetch_add(1, Ordering::SeqCst);
        }
    };
    let mut ended = false;
    while !ended {
        let addr = {
            let nodes = nodes.lock().unwrap();
            let up: Vec<SocketAddr> = nodes.iter().flatten().copied().collect();
            up[attempt % up.len()]
        };
        attempt += 1;
        let Ok(stream) = TcpStream::connect(addr).await else {
            continue;
        };
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        write.write_all(format!("{name}\n").as_bytes()).await.ok();
        let welcome = format!("* Welcome, {name}!");
        let mut welcomed = false;
        while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, lines.next_line()).await {
            if body(&line).starts_with(&welcome) {
                welcomed = true;
                break;
            }
            if body(&line).starts_with("! ") {
                break;
            }
        }
        if !welcomed {
            // The name is still being let go of, or the node is stopping.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let mut run = Run::new();
        let mut speaking = true;
        if *quiet.borrow() {
            hush(&mut silent);
        }
        let mut tick = tokio::time::interval(EVERY);
        tick.reset_after(EVERY.mul_f64(first as f64 / CLIENTS as f64));
        loop {
            // What arrived is read before anything is said: a client hears of
            // the shutdown as soon as it can.
            tokio::select! {
                biased;
                line = lines.next_line() => match line {
                    Ok(Some(line)) if body(&line) == "* Server is shutting down." => {
                        // Told: a client says nothing more here.
                        speaking = false;
                    }
                    Ok(Some(line)) if body(&line) == END => {
                        ended = true;
                        break;
                    }
                    Ok(Some(line)) => {
                        if let Some((_, text)) = body(&line).split_once(": ") {
                            if text.starts_with('c') && text.contains('-') {
                                run.push(text.to_owned());
                            }
                        }
                    }
                    _ => break,
                },
                _ = tick.tick(), if speaks && speaking && !silent => {
                    let text = format!("{name}-{said}");
                    said += 1;
                    life.written.push(text.clone());
                    if write.write_all(format!("{text}\n").as_bytes()).await.is_err() {
                        break;
                    }
                }
                _ = quiet.changed(), if !silent => hush(&mut silent),
            }
        }
        life.runs.push(run);
    }
    life
}

fn body(line: &str) -> &str {
    line.split_once("] ").map_or(line, |(_, body)| body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_restarted_one_at_a_time_under_chat_lose_no_line() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(Some(node(&nats, &pg).await));
    }
    let addrs = servers.iter().map(|s| s.as_ref().map(|s| s.addr)).collect();
    let nodes = Arc::new(Mutex::new(addrs));
    let (quiet, hushing) = watch::channel(false);
    let hushed = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    // One listener per node, who never speaks, and the chatters spread over them.
    for i in 0..3 {
        let name = format!("listener{i}");
        let task = client(
            name,
            i,
            nodes.clone(),
            false,
            hushing.clone(),
            hushed.clone(),
        );
        clients.push(tokio::spawn(task));
    }
    for i in 0..CLIENTS {
        let name = format!("c{i}");
        let task = client(
            name,
            i,
            nodes.clone(),
            true,
            hushing.clone(),
            hushed.clone(),
        );
        clients.push(tokio::spawn(task));
    }
    // Steady chat first, then each node in turn: stopped (its clients go to the
    // others), started again, and given a moment of steady chat.
    let steady = || tokio::time::sleep(EVERY * 2);
    steady().await;
    for (i, server) in servers.iter_mut().enumerate() {
        nodes.lock().unwrap()[i] = None;
        server.take().unwrap().stop().await;
        let again = node(&nats, &pg).await;
        nodes.lock().unwrap()[i] = Some(again.addr);
        *server = Some(again);
        steady().await;
    }
    // Everyone stops talking; once nobody can be writing a line, one last line
    // marks the end of the record: each client reads up to it.
    quiet.send(true).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while hushed.load(Ordering::SeqCst) < clients.len() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "clients still talking"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut closer = servers[0].as_ref().unwrap().login("closer").await;
    closer.send("end").await;
    let mut lives = Vec::new();
    for task in clients {
        let life = tokio::time::timeout(WAIT, task).await;
        lives.push(life.expect("every client reads to the end").unwrap());
    }

    let written: usize = lives.iter().map(|l| l.written.len()).sum();
    // The chat and the closer's last line.
    let recorded = recorded_chat(&pg, written + 1, WAIT).await;
    assert_eq!(
        recorded.last().map(String::as_str),
        Some(END),
        "the end is last"
    );
    let order: Vec<String> = recorded[..recorded.len() - 1]
        .iter()
        .map(|line| line.split_once(": ").unwrap().1.to_owned())
        .collect();
    let place: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, text)| (text.as_str(), i))
        .collect();
    assert_eq!(place.len(), order.len(), "a line recorded twice");
    let all_written: HashSet<&str> = lives
        .iter()
        .flat_map(|l| l.written.iter().map(String::as_str))
        .collect();
    assert!(order.iter().all(|t| all_written.contains(t.as_str())));
    // Every line written before the node said it was stopping is recorded.
    let lost: Vec<&str> = all_written
        .iter()
        .filter(|t| !place.contains_key(*t))
        .copied()
        .collect();
    assert!(lost.is_empty(), "not recorded: {lost:?}");
    // Every connection received, in the record's order, every line recorded
    // from its first line to its last but its own (a sender gets no echo):
    // nothing skipped while it was there.
    let mut seen: HashSet<&str> = HashSet::new();
    let mut connections = 0;
    for life in &lives {
        let own = format!("{}-", life.name);
        for run in life.runs.iter().filter(|r| !r.is_empty()) {
            connections += 1;
            let at: Vec<usize> = run.iter().map(|t| place[t.as_str()]).collect();
            let (first, last) = (at[0], at[at.len() - 1]);
            // A line of its own comes back only when sent through its previous
            // connection, just before it moved.
            let expected: Vec<usize> = (first..=last)
                .filter(|&i| !order[i].starts_with(&own) || at.contains(&i))
                .collect();
            assert_eq!(
                at, expected,
                "{} missed lines or saw them out of order",
                life.name
            );
            seen.extend(run.iter().map(String::as_str));
        }
    }
    // And between them, the listeners and the chatters saw the whole record.
    assert_eq!(seen.len(), order.len(), "lines nobody received");
    assert!(
        written > CLIENTS * 5,
        "{written} lines: the chat was not steady"
    );
    assert!(connections > CLIENTS + 3, "nobody moved node");
    eprintln!(
        "{written} lines written, {} recorded, {connections} connections",
        order.len()
    );
}
