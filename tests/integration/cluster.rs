//! Cluster mode (SPEC section 9): nodes on one real `nats-server -js` and one real
//! PostgreSQL, each started by the test on free ports in temporary folders. Where
//! either program is missing the test prints one line and passes (see
//! [`Nats::start`], [`Postgres::start`]).

use std::process::Stdio;
use std::time::{Duration, Instant};

use classchat::config::Config;

use crate::access::{password_hash, PASSWORD};
use crate::harness::{
    enable_web, spawn_listening, test_config, TestClient, TestServer, SERVER_BIN, WAIT,
};
use crate::nats::Nats;
use crate::postgres::Postgres;
use crate::web::http;

/// The engines and the nodes running on them.
struct Cluster {
    nats: Nats,
    pg: Postgres,
    nodes: Vec<TestServer>,
}

/// A node's configuration: its own (unused) files, the shared NATS and PostgreSQL.
pub(crate) fn node_config(dir: &std::path::Path, nats: &Nats, pg: &Postgres) -> Config {
    let mut config = test_config(dir);
    config.cluster.nats_url = nats.url();
    config.storage.postgres_url = pg.url();
    config.access.instructors = vec!["prof".into()];
    config.access.instructor_password = password_hash().to_owned();
    config.limits.messages_per_sec = 0;
    config
}

/// Fresh engines, or `None` (with one line printed) without them.
pub(crate) async fn engines() -> Option<(Nats, Postgres)> {
    let nats = Nats::start()?;
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .unwrap()?;
    Some((nats, pg))
}

/// `n` nodes on fresh engines.
async fn cluster(n: usize) -> Option<Cluster> {
    let (nats, pg) = engines().await?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(start_node(&nats, &pg).await);
    }
    Some(Cluster { nats, pg, nodes })
}

pub(crate) async fn start_node(nats: &Nats, pg: &Postgres) -> TestServer {
    start_node_with(nats, pg, |_| {}).await
}

/// A node whose configuration `tweak` changes (every node needs the same).
pub(crate) async fn start_node_with(
    nats: &Nats,
    pg: &Postgres,
    tweak: impl FnOnce(&mut Config),
) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), nats, pg);
    crate::harness::enable_irc(&mut config);
    tweak(&mut config);
    TestServer::start_in(dir, config).await
}

/// A node as its own `chat-server` process (to be killed, or its log read), with
/// its configuration file in `dir`; stderr goes to `stderr`.
fn spawn_node(
    dir: &std::path::Path,
    nats: &Nats,
    pg: &Postgres,
    stderr: Stdio,
) -> (std::process::Child, std::net::SocketAddr) {
    let path = dir.join("node.toml");
    let config = node_config(dir, nats, pg);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    spawn_listening(
        std::process::Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&path)
            .stderr(stderr),
    )
}

/// `one` logged in on node 0 and `other` on node 1, once `one` has seen `other`
/// arrive.
async fn two_users(c: &Cluster, one: &str, other: &str) -> (TestClient, TestClient) {
    let mut first = c.nodes[0].login(one).await;
    let second = c.nodes[1].login(other).await;
    first.expect(&format!("* {other} has joined #lobby")).await;
    (first, second)
}

/// A user on each node, `PREFIX0` on node 0 and so on.
async fn one_per_node(c: &Cluster, prefix: &str) -> Vec<TestClient> {
    let mut clients = Vec::new();
    for (i, node) in c.nodes.iter().enumerate() {
        clients.push(node.login(&format!("{prefix}{i}")).await);
    }
    clients
}

/// Logs in as the instructor (a reserved name asks for the password).
async fn instructor(node: &TestServer) -> TestClient {
    let mut prof = node.connect().await;
    prof.send("prof").await;
    prof.expect_prefix("* This name is an instructor's.").await;
    prof.send(PASSWORD).await;
    prof.expect_prefix("* Welcome, prof!").await;
    prof
}

/// Reads until `count` chat lines (`NICK: TEXT`) have arrived; returns them.
async fn chat_lines(client: &mut TestClient, count: usize) -> Vec<String> {
    let mut lines = Vec::new();
    while lines.len() < count {
        let body = client.next_body().await;
        if !body.starts_with(['*', '!', '=', '[']) {
            lines.push(body);
        }
    }
    lines
}

/// The chat rows of the cluster's record, `NICK: TEXT`, in the table's order,
/// once there are at least `count` of them.
pub(crate) async fn recorded_chat(pg: &Postgres, count: usize, within: Duration) -> Vec<String> {
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let deadline = Instant::now() + within;
    loop {
        let rows = client
            .query(
                "SELECT sender, text FROM events WHERE kind = 'chat' ORDER BY seq, idx",
                &[],
            )
            .await
            .unwrap_or_default();
        let lines: Vec<String> = rows
            .iter()
            .map(|r| format!("{}: {}", r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_room_spread_over_three_nodes_sees_one_order_and_records_it_once() {
    let Some(c) = cluster(3).await else { return };
    let mut listeners = one_per_node(&c, "listener").await;
    let mut talkers = one_per_node(&c, "talker").await;
    // Everyone has seen the last talker arrive before anyone talks.
    for client in listeners.iter_mut().chain(talkers.iter_mut().take(2)) {
        client.expect("* talker2 has joined #lobby").await;
    }
    const EACH: usize = 30;
    for round in 0..EACH {
        for (i, talker) in talkers.iter_mut().enumerate() {
            talker.send(&format!("line {round} from node {i}")).await;
        }
    }
    let mut seen = Vec::new();
    for listener in &mut listeners {
        seen.push(chat_lines(listener, 3 * EACH).await);
    }
    assert_eq!(seen[0], seen[1], "nodes 0 and 1 saw different orders");
    assert_eq!(seen[0], seen[2], "nodes 0 and 2 saw different orders");
    // A talker sees the same order, less its own lines.
    for (i, talker) in talkers.iter_mut().enumerate() {
        let others = chat_lines(talker, 2 * EACH).await;
        let expected: Vec<String> = seen[0]
            .iter()
            .filter(|l| !l.starts_with(&format!("talker{i}:")))
            .cloned()
            .collect();
        assert_eq!(others, expected, "talker{i} saw another order");
    }
    // Written once each, in that order, by whichever node holds the lease.
    let recorded = recorded_chat(&c.pg, 3 * EACH, WAIT).await;
    assert_eq!(recorded, seen[0]);
}

/// Chat that never pauses for the recorder's flush delay still reaches PostgreSQL
/// within moments, not once a whole batch has piled up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_record_keeps_up_with_chat_that_never_pauses() {
    let Some(c) = cluster(2).await else { return };
    let (mut amy, mut bob) = two_users(&c, "amy", "bob").await;
    // A line every 20 ms for 5 s: never the 50 ms of quiet that used to flush.
    let talking = tokio::spawn(async move {
        for i in 0..250 {
            amy.send(&format!("steady {i}")).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    chat_lines(&mut bob, 25).await;
    let recorded = recorded_chat(&c.pg, 10, Duration::from_secs(2)).await;
    assert!(
        !talking.is_finished(),
        "the chat ended before the record was read"
    );
    assert!(
        recorded.len() >= 10,
        "25 lines into steady chat and 2 s later, PostgreSQL had {} of them",
        recorded.len()
    );
    talking.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_name_claimed_on_three_nodes_at_once_goes_to_exactly_one() {
    let Some(c) = cluster(3).await else { return };
    let mut clients = one_per_node(&c, "racer").await;
    for client in clients.iter_mut().take(2) {
        client.expect("* racer2 has joined #lobby").await;
    }
    // One name, spelled three ways: names are compared case-insensitively.
    let claims = ["sam", "SAM", "Sam"];
    for (client, claim) in clients.iter_mut().zip(claims) {
        client.send(&format!("/nick {claim}")).await;
    }
    let mut won = 0;
    let mut lost = 0;
    for (i, (client, claim)) in clients.iter_mut().zip(claims).enumerate() {
        loop {
            let body = client.next_body().await;
            if body == format!("* racer{i} is now known as {claim}") {
                won += 1;
                break;
            }
            if body == format!("! Username {claim} is already taken") {
                lost += 1;
                break;
            }
        }
    }
    assert_eq!((won, lost), (1, 2));
    // Every node agrees on who holds it.
    for client in &mut clients {
        client.send("/who").await;
        let who = client.expect_prefix("= ").await;
        assert_eq!(who.to_lowercase().matches("sam").count(), 1, "{who}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn who_rooms_private_messages_and_moderation_work_across_nodes() {
    let Some(c) = cluster(3).await else { return };
    let mut prof = instructor(&c.nodes[0]).await;
    let mut stu = c.nodes[1].login("stu").await;
    let mut ada = c.nodes[2].login("ada").await;
    stu.expect("* ada has joined #lobby").await;
    prof.expect("* ada has joined #lobby").await;

    ada.send("/who").await;
    let who = ada.expect_prefix("= ").await;
    for name in ["prof", "stu", "ada"] {
        assert!(who.contains(name), "{who}");
    }
    stu.send("/join lab").await;
    stu.expect_prefix("* You are now in #lab").await;
    ada.send("/rooms").await;
    let rooms = ada.expect_prefix("= ").await;
    assert!(rooms.contains("#lab"), "{rooms}");

    prof.send("/msg stu see me after class").await;
    stu.expect("[PM from prof] see me after class").await;
    stu.send("/msg ada psst").await;
    ada.expect("[PM from stu] psst").await;

    // A mute from node 0 silences a student on node 1 ...
    prof.send("/mute stu").await;
    stu.expect("* You have been muted by prof.").await;
    stu.send("hello?").await;
    stu.expect_prefix("! You are muted").await;
    prof.send("/unmute stu").await;
    stu.expect("* prof has unmuted you; you can talk again.")
        .await;
    // ... and a kick from node 0 closes its connection on node 1.
    prof.send("/kick ada spamming").await;
    let last = ada.expect_closed().await;
    assert!(
        last.iter()
            .any(|l| l.ends_with("You have been kicked by prof: spamming")),
        "ada was told why: {last:?}"
    );
    prof.expect("* ada has been kicked.").await;
    stu.send("/who").await;
    let who = stu.expect_prefix("= ").await;
    assert!(!who.contains("ada"), "{who}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_node_s_users_leave_everywhere_within_15_seconds() {
    let Some(c) = cluster(2).await else { return };
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = spawn_node(dir.path(), &c.nats, &c.pg, Stdio::null());
    let mut watcher = c.nodes[0].login("watcher").await;
    let mut other = c.nodes[1].login("other").await;
    let doomed = ["zed", "zoe"];
    let mut on_doomed_node = Vec::new();
    for name in doomed {
        let mut client = TestClient::connect(addr).await;
        client.send(name).await;
        client.expect_prefix(&format!("* Welcome, {name}!")).await;
        for seer in [&mut watcher, &mut other] {
            seer.expect(&format!("* {name} has joined #lobby")).await;
        }
        on_doomed_node.push(client);
    }

    child.kill().unwrap();
    crate::harness::exited(child).await;
    let killed = Instant::now();
    let limit = Duration::from_secs(15);
    for client in [&mut watcher, &mut other] {
        // Each of its users leaves, in whatever order the node declared them.
        let mut left = Vec::new();
        while left.len() < doomed.len() {
            let body =
                tokio::time::timeout(limit.saturating_sub(killed.elapsed()), client.next_body())
                    .await
                    .expect("every leave within 15 s of the kill");
            if let Some(name) = doomed
                .iter()
                .find(|name| body == format!("* {name} has left #lobby (Connection lost)"))
            {
                left.push(*name);
            }
        }
        left.sort_unstable();
        assert_eq!(left, doomed);
    }
    // The names are free again, on any node.
    for name in doomed {
        c.nodes[1].login(name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_nats_is_down_chat_is_refused_and_afterwards_nothing_is_lost_or_doubled() {
    let Some(mut c) = cluster(2).await else {
        return;
    };
    let (mut ann, mut bob) = two_users(&c, "ann", "bob").await;
    ann.send("before").await;
    bob.expect("ann: before").await;

    c.nats.stop();
    let refused = "! Messages cannot be delivered right now; try again shortly.";
    send_until(&mut ann, "during", |answer| answer == Some(refused)).await;
    c.nats.start_again();
    // Without restarting anything, chat works again once the node reconnects.
    let last = send_until(&mut ann, "after", |answer| answer.is_none()).await;
    let mut delivered = vec!["ann: before".to_owned()];
    loop {
        let line = chat_lines(&mut bob, 1).await.remove(0);
        delivered.push(line.clone());
        if line == format!("ann: {last}") {
            break;
        }
    }
    // What bob saw is exactly what was recorded: nothing twice, nothing lost, and
    // nothing refused slipped through later.
    let recorded = recorded_chat(&c.pg, delivered.len(), WAIT).await;
    assert_eq!(recorded, delivered);
}

/// Sends `PREFIX 1`, `PREFIX 2`, ... from `client` until what the client hears
/// back within four seconds (`None`: nothing) satisfies `done`; returns the last
/// line sent. Gives up after thirty seconds.
async fn send_until(
    client: &mut TestClient,
    prefix: &str,
    done: impl Fn(Option<&str>) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 1.. {
        let line = format!("{prefix} {n}");
        client.send(&line).await;
        let answer = tokio::time::timeout(Duration::from_secs(4), client.next_body())
            .await
            .ok();
        if done(answer.as_deref()) {
            return line;
        }
        assert!(Instant::now() < deadline, "still {answer:?} after {line}");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chat_goes_on_while_postgresql_is_down_and_every_line_is_recorded_once() {
    let Some(c) = cluster(2).await else { return };
    let (mut ann, mut bob) = two_users(&c, "ann", "bob").await;
    ann.send("first").await;
    bob.expect("ann: first").await;
    recorded_chat(&c.pg, 1, WAIT).await;

    c.pg.stop();
    let outage = Instant::now();
    let mut sent = vec!["ann: first".to_owned()];
    let mut n = 0;
    while outage.elapsed() < Duration::from_secs(10) {
        n += 1;
        let line = format!("during the outage {n}");
        ann.send(&line).await;
        bob.expect(&format!("ann: {line}")).await;
        sent.push(format!("ann: {line}"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    c.pg.start_again();
    let recorded = recorded_chat(&c.pg, sent.len(), Duration::from_secs(30)).await;
    assert_eq!(recorded, sent, "every line once, in order");
}

/// What `chat-server ARGS` prints; it must succeed.
fn chat_server(args: &[&str]) -> String {
    let out = std::process::Command::new(SERVER_BIN)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chat-server {args:?}: {stderr}");
    String::from_utf8(out.stdout).unwrap()
}

/// `chat-server report ARGS --format json`, without the columns that depend on
/// when the session ran.
fn report_without_times(args: &[&str]) -> serde_json::Value {
    let args = [&["report"], args, &["--format", "json"]].concat();
    let mut rows: serde_json::Value = serde_json::from_str(&chat_server(&args)).unwrap();
    for row in rows.as_array_mut().unwrap() {
        let row = row.as_object_mut().unwrap();
        for when in ["first_seen", "last_seen", "online_secs"] {
            assert!(row.remove(when).is_some(), "the report has {when}");
        }
    }
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_report_from_postgresql_equals_the_single_server_report_of_the_same_session() {
    let Some(c) = cluster(2).await else { return };
    let single = TestServer::start().await;
    crate::persistence::scripted_session(&single).await;
    let config = single.config.clone();
    let _dir = single.stop().await;
    let db = config.storage.database.to_str().unwrap().to_owned();
    let expected = report_without_times(&["--db", &db]);
    assert!(!expected.as_array().unwrap().is_empty());

    crate::persistence::scripted_session_on(&c.nodes[0], &c.nodes[1]).await;
    // The recorders write shortly after; the report is read until it has it all.
    let url = c.pg.url();
    let deadline = Instant::now() + WAIT;
    loop {
        let report = report_without_times(&["--postgres", &url]);
        if report == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{report:#}\nis not\n{expected:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_roster_in_postgresql_binds_names_on_every_node() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let printed = chat_server(&["roster", "add", "amy", "--postgres", &pg.url()]);
    let code = printed
        .lines()
        .find_map(|l| l.strip_prefix("amy,"))
        .expect("amy's code is printed")
        .to_owned();
    let one = start_node(&nats, &pg).await;
    let two = start_node(&nats, &pg).await;
    for node in [&one, &two] {
        let mut amy = node.connect().await;
        amy.send("amy").await;
        amy.expect("* Please enter your personal code:").await;
        amy.send("WRONG-CODE").await;
        amy.expect_prefix("! Wrong code").await;
        amy.send(&code).await;
        amy.expect_prefix("* Welcome, amy!").await;
        amy.send("/quit").await;
        amy.expect_closed().await;
    }
    // Someone added while the nodes run is known to every node within seconds.
    chat_server(&["roster", "add", "bea", "--postgres", &pg.url()]);
    for node in [&one, &two] {
        let deadline = Instant::now() + WAIT;
        loop {
            let mut bea = node.connect().await;
            bea.send("bea").await;
            let answer = loop {
                let body = bea.next_body().await;
                if body.starts_with("! ") || body == "* Please enter your personal code:" {
                    break body;
                }
            };
            if answer == "* Please enter your personal code:" {
                break;
            }
            assert_eq!(answer, "! bea is not on the class roster.");
            assert!(Instant::now() < deadline, "bea was never read");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn a_node_that_cannot_reach_nats_says_so_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Nothing listens on port 1.
    config.cluster.nats_url = "nats://127.0.0.1:1".into();
    config.storage.postgres_url = "postgres://nobody@127.0.0.1:1/none".into();
    // Runs a server with `config` until it exits; its exit code and stderr.
    let serve = |config: &Config| {
        let path = dir.path().join("node.toml");
        std::fs::write(&path, toml::to_string(config).unwrap()).unwrap();
        let out = std::process::Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = serve(&config);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cannot reach NATS at nats://127.0.0.1:1"),
        "{stderr}"
    );
    // One URL without the other is refused before anything starts.
    config.cluster.nats_url.clear();
    let (code, stderr) = serve(&config);
    assert_eq!(code, Some(2), "a bad configuration");
    assert!(stderr.contains("needs cluster.nats_url too"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_irc_client_on_one_node_talks_with_a_line_client_on_another() {
    let Some(c) = cluster(2).await else { return };
    let mut bob = c.nodes[1].login("bob").await;
    let mut ann = c.nodes[0].irc_login("ann").await;
    bob.expect("* ann has joined #lobby").await;
    ann.send("PRIVMSG #lobby :hello across").await;
    bob.expect("ann: hello across").await;
    bob.send("hi ann").await;
    let chat = ann.expect_verb("PRIVMSG").await;
    assert_eq!(chat.params, ["#lobby", "hi ann"]);
    ann.send("PRIVMSG bob :psst").await;
    bob.expect("[PM from ann] psst").await;
    // A name held on the other node is in use for IRC too.
    let mut late = c.nodes[0].irc().await;
    late.send("NICK bob").await;
    late.send("USER bob 0 * :bob").await;
    late.expect_verb("433").await;
}

/// What the hub refuses once the stream returns the request reaches an IRC
/// client as the numeric a single server sends, and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn over_irc_a_node_s_refusals_are_numerics_and_change_nothing() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let two_rooms = |c: &mut Config| c.limits.max_rooms = 2;
    let one = start_node_with(&nats, &pg, two_rooms).await;
    let two = start_node_with(&nats, &pg, two_rooms).await;
    let mut cat = two.login("cat").await;
    let mut bob = two.login("bob").await;
    let mut ann = one.irc_login("ann").await;
    bob.expect("* ann has joined #lobby").await;

    ann.send("PRIVMSG ghost :hello?").await;
    assert_eq!(ann.expect_next("401").await.params[1], "ghost");

    ann.send("NICK Bob").await;
    let taken = ann.expect_next("433").await;
    assert_eq!(taken.params[..2], ["ann", "Bob"], "{}", taken.raw);
    ann.expect_nothing_pending().await;

    // #lobby and #lab are the two rooms there may be.
    bob.send("/join lab").await;
    bob.expect_prefix("* You are now in #lab").await;
    ann.expect_where("bob's PART", |l| l.verb == "PART").await;
    ann.send("JOIN #other").await;
    let refused = ann.expect_next("405").await;
    assert_eq!(refused.params[1], "#other", "{}", refused.raw);
    ann.expect_nothing_pending().await;
    // Still in #lobby, under the old name.
    ann.send("PRIVMSG #lobby :still here").await;
    cat.expect("ann: still here").await;
    ann.send("NAMES").await;
    let names = ann.expect_next("353").await;
    assert_eq!(names.params[2], "#lobby", "{}", names.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_stops_cleanly_takes_its_users_out_at_once() {
    let Some(mut c) = cluster(2).await else {
        return;
    };
    let (mut stays, mut goes) = two_users(&c, "stays", "goes").await;
    let stopping = c.nodes.remove(1);
    let stopped = tokio::spawn(stopping.stop());
    goes.expect("* Server is shutting down.").await;
    // Well before a silent node would be declared gone.
    tokio::time::timeout(
        Duration::from_secs(5),
        stays.expect("* goes has left #lobby (Server shutting down)"),
    )
    .await
    .expect("the leave is published as the node stops");
    stopped.await.unwrap();
    c.nodes[0].login("goes").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_stream_is_never_recorded_over_an_old_one() {
    let Some(c) = cluster(1).await else { return };
    let mut amy = c.nodes[0].login("amy").await;
    amy.send("last term").await;
    recorded_chat(&c.pg, 1, WAIT).await;
    let Cluster { nats, pg, nodes } = c;
    for node in nodes {
        node.stop().await;
    }
    // A new term done halfway: the stream deleted, the old database kept.
    let client = async_nats::connect(nats.url()).await.unwrap();
    async_nats::jetstream::new(client)
        .delete_stream("CLASSCHAT")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = node_config(dir.path(), &nats, &pg).validate().unwrap();
    let refused = classchat::server::Server::bind(config).await;
    let Err(err) = refused else {
        panic!("a node started on a database of another stream")
    };
    assert!(
        err.to_string().contains("give the nodes a new database"),
        "{err}"
    );
    assert_eq!(recorded_chat(&pg, 1, WAIT).await, ["amy: last term"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hung_nats_longer_than_a_node_timeout_declares_no_healthy_node_gone() {
    let Some(c) = cluster(2).await else { return };
    let (mut ann, mut bob) = two_users(&c, "ann", "bob").await;
    // Longer than the 8 s after which a silent node is declared gone; every
    // node hears nothing from anyone, itself included.
    c.nats.pause();
    tokio::time::sleep(Duration::from_secs(12)).await;
    c.nats.resume();
    let last = send_until(&mut ann, "after the hang", |answer| answer.is_none()).await;
    bob.expect(&format!("ann: {last}")).await;
    bob.send("/who").await;
    let who = bob.expect_prefix("= ").await;
    assert!(who.contains("ann") && who.contains("bob"), "{who}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_while_nats_hangs_gets_in_once_it_answers_and_leaves_no_ghost() {
    let Some(c) = cluster(2).await else { return };
    let mut ann = c.nodes[0].login("ann").await;
    c.nats.pause();
    let mut carol = c.nodes[1].connect().await;
    carol.send("carol").await;
    // Past the acknowledgement timeout: the log-in may or may not be stored, so
    // it is published again (under the same id) rather than refused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    c.nats.resume();
    carol.expect_prefix("* Welcome, carol!").await;
    ann.expect("* carol has joined #lobby").await;
    carol.send("/quit").await;
    carol.expect_closed().await;
    ann.expect("* carol has left #lobby (Quit)").await;
    c.nodes[0].login("carol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_other_rules_is_reported_by_the_running_ones() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut running, addr) = spawn_node(dir.path(), &nats, &pg, Stdio::piped());
    let stderr = running.stderr.take().unwrap();
    let (said, mut heard) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = said.send(line);
        }
    });
    let report = "a node started with other [server], [limits] or [history] settings";
    let mut watcher = TestClient::connect(addr).await;
    watcher.send("watcher").await;
    watcher.expect_prefix("* Welcome, watcher!").await;

    // The same rules: once the running node has seen a member of the new one
    // arrive, it has applied the new node's start, and said nothing of it.
    let same = start_node(&nats, &pg).await;
    same.login("alike").await;
    watcher.expect("* alike has joined #lobby").await;
    while let Ok(line) = heard.try_recv() {
        assert!(!line.contains(report), "{line}");
    }

    let other_dir = tempfile::tempdir().unwrap();
    let mut other = node_config(other_dir.path(), &nats, &pg);
    other.limits.max_nick_len = 30;
    let different = TestServer::start_in(other_dir, other).await;
    tokio::time::timeout(WAIT, async {
        while let Some(line) = heard.recv().await {
            if line.contains(report) {
                return;
            }
        }
        panic!("the running node ended");
    })
    .await
    .expect("the running node reports the node with other rules");
    running.kill().unwrap();
    running.wait().unwrap();
    different.stop().await;
    same.stop().await;
}

/// Logs in as `name` on `node`: the client once welcomed, or the refusal.
async fn try_login(node: &TestServer, name: &str) -> Result<TestClient, String> {
    let mut client = node.connect().await;
    client.send(name).await;
    loop {
        let body = client.next_body().await;
        if body.starts_with(&format!("* Welcome, {name}!")) {
            return Ok(client);
        }
        if body.starts_with("! ") {
            return Err(body);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_started_while_postgresql_is_down_lets_nobody_in_until_it_has_the_class_list() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    pg.stop();
    let node = start_node(&nats, &pg).await;
    // An unread roster is not an empty one: nobody is let in under any name.
    let refused = try_login(&node, "amy").await.err();
    let unread = "! The class list cannot be read right now; try again shortly.";
    assert_eq!(refused.as_deref(), Some(unread));

    pg.start_again();
    let deadline = Instant::now() + WAIT;
    let mut amy = loop {
        match try_login(&node, "amy").await {
            Ok(amy) => break amy,
            Err(refused) => assert_eq!(refused, unread),
        }
        assert!(Instant::now() < deadline, "the roster was not read again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut bob = node.login("bob").await;
    amy.expect("* bob has joined #lobby").await;
    bob.send("recorded").await;
    amy.expect("bob: recorded").await;
    assert_eq!(recorded_chat(&pg, 1, WAIT).await, ["bob: recorded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_cluster_replays_the_stream_and_records_nothing_twice() {
    let Some(c) = cluster(1).await else { return };
    let Cluster { nats, pg, nodes } = c;
    let node = nodes.into_iter().next().unwrap();
    let mut amy = node.login("amy").await;
    let mut bob = node.login("bob").await;
    amy.expect("* bob has joined #lobby").await;
    let mut said = Vec::new();
    for n in 0..20 {
        bob.send(&format!("before {n}")).await;
        amy.expect(&format!("bob: before {n}")).await;
        said.push(format!("bob: before {n}"));
    }
    assert_eq!(recorded_chat(&pg, 20, WAIT).await, said);
    node.stop().await;

    // A new node reads the whole stream again, its recorder too; the table
    // keeps each line once, and the history comes from the stream.
    let node = start_node(&nats, &pg).await;
    let mut cat = node.connect().await;
    cat.send("cat").await;
    cat.expect_prefix("* Welcome, cat!").await;
    cat.expect("bob: before 19").await;
    cat.send("after the restart").await;
    said.push("cat: after the restart".to_owned());
    let recorded = recorded_chat(&pg, 21, WAIT).await;
    assert_eq!(recorded, said);
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let joins: i64 = client
        .query_one("SELECT count(*) FROM events WHERE kind = 'join'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(joins, 3, "amy, bob and cat joined once each");
}

/// SPEC 10 in cluster mode: nobody renames to the instructor's name on any node,
/// and the instructor, back on another node after a dead connection, takes the
/// name over at once.
#[tokio::test]
async fn reserved_names_hold_and_pass_to_their_owner_across_nodes() {
    let Some(c) = cluster(2).await else { return };
    let (mut mallory, mut amy) = two_users(&c, "mallory", "amy").await;
    mallory.send("/nick prof").await;
    mallory.expect_next("! Username prof is reserved").await;
    let mut stale = instructor(&c.nodes[0]).await;
    amy.expect("* prof has joined #lobby").await;
    // Back on the other node while the first connection still looks alive.
    let mut prof = instructor(&c.nodes[1]).await;
    let closed = stale.expect_closed().await;
    assert_eq!(
        closed.last().map(String::as_str),
        Some("* You logged in again from another connection; this one is closed.")
    );
    amy.expect("* prof has left #lobby (Logged in again)").await;
    amy.expect_next("* prof has joined #lobby").await;
    prof.send("/who").await;
    let who = prof.expect_prefix("= #lobby (3): ").await;
    assert_eq!(who.matches("prof").count(), 1, "{who}");
}

/// `roster remove` while the student is on one node and a classmate on the
/// other: the node she is on ends her connection within seconds, and the other
/// node's members see her leave once.
#[tokio::test]
async fn a_revoked_code_ends_the_connection_on_its_node() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let printed = chat_server(&["roster", "add", "amy", "bob", "--postgres", &pg.url()]);
    let code = |name: &str| {
        let prefix = format!("{name},");
        printed
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .expect("a code is printed")
            .to_owned()
    };
    let one = start_node(&nats, &pg).await;
    let two = start_node(&nats, &pg).await;
    let log_in = |node: &TestServer, name: &'static str, code: String| {
        let addr = node.addr;
        async move {
            let mut client = TestClient::connect(addr).await;
            client.send(name).await;
            client.expect("* Please enter your personal code:").await;
            client.send(&code).await;
            client.expect_prefix(&format!("* Welcome, {name}!")).await;
            client
        }
    };
    let mut amy = log_in(&one, "amy", code("amy")).await;
    let mut bob = log_in(&two, "bob", code("bob")).await;
    amy.expect("* bob has joined #lobby").await;
    chat_server(&["roster", "remove", "amy", "--postgres", &pg.url()]);
    let closed = amy.expect_closed().await;
    assert_eq!(
        closed.last().map(String::as_str),
        Some("* Your code was changed; log in again.")
    );
    bob.expect("* amy has left #lobby (Code changed)").await;
    bob.send("/who").await;
    bob.expect_next("= #lobby (1): bob").await;
}

/// A kick made on one node holds on every node: the kicked student cannot come
/// back through another one.
#[tokio::test]
async fn a_kick_holds_on_every_node() {
    let Some(c) = cluster(2).await else { return };
    let mut prof = instructor(&c.nodes[0]).await;
    let mut sam = c.nodes[1].login("sam").await;
    prof.expect("* sam has joined #lobby").await;
    prof.send("/kick sam").await;
    prof.expect("* sam has been kicked.").await;
    sam.expect_closed().await;
    for node in &c.nodes {
        let mut again = node.connect().await;
        again.send("sam").await;
        let closed = again.expect_closed().await;
        assert_eq!(
            closed.last().map(String::as_str),
            Some("! You were kicked; you can log in again in 10 minutes.")
        );
    }
}

/// A node's instructor page reports and charts the cluster's record in
/// PostgreSQL, which holds what was said on every node, not the node's own file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_s_instructor_page_reports_the_whole_cluster() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let one = start_node(&nats, &pg).await;
    let two = start_node_with(&nats, &pg, crate::harness::enable_web).await;
    let mut bob = two.login("bob").await;
    let mut sam = one.login("sam").await;
    bob.expect("* sam has joined #lobby").await;
    for line in ["one", "two", "three"] {
        sam.send(line).await;
        bob.expect(&format!("sam: {line}")).await;
    }
    let web = two.web.expect("node two serves the page");
    let login = crate::web::post_login(web, "prof", PASSWORD).await;
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").expect("a session cookie");
    let cookie = format!("Cookie: {}", cookie.split(';').next().unwrap());
    // The record is written a moment after the lines are delivered.
    let deadline = Instant::now() + WAIT;
    let row = loop {
        let report = crate::web::http(web, "GET", "/instructor/report.csv", &[&cookie], "").await;
        assert_eq!(report.status, 200, "{}", report.text());
        let text = report.text();
        let row = text
            .lines()
            .find(|l| l.starts_with("sam,"))
            .map(str::to_owned);
        match row {
            Some(row) if row.starts_with("sam,,3,") => break row,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            _ => panic!("sam's three lines never reached the page's report:\n{text}"),
        }
    };
    assert!(row.starts_with("sam,,3,0,3,"), "{row}");
    let timeline = crate::web::http(web, "GET", "/instructor/api/timeline", &[&cookie], "").await;
    let timeline: serde_json::Value = serde_json::from_slice(timeline.text().as_bytes()).unwrap();
    let total: i64 = timeline["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[1].as_i64().unwrap())
        .sum();
    assert_eq!(total, 3, "{timeline}");
}

/// SPEC 9, "One sign-in": a login made through one node's web port holds on
/// every node and across a restart, and a logout through any node ends it on all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_instructor_signed_in_through_one_node_uses_the_page_through_another_and_after_a_restart(
) {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let one = start_node_with(&nats, &pg, enable_web).await;
    let two = start_node_with(&nats, &pg, enable_web).await;
    let login = crate::web::post_login(one.web.unwrap(), "prof", PASSWORD).await;
    assert_eq!(login.status, 303, "{}", login.text());
    let cookie = login.header("set-cookie").expect("a session cookie");
    let session = format!("Cookie: {}", cookie.split(';').next().unwrap());
    let cookie: &str = &session;
    let live =
        move |web| async move { http(web, "GET", "/instructor/api/live", &[cookie], "").await };
    for node in [&one, &two] {
        let answer = live(node.web.unwrap()).await;
        assert_eq!(answer.status, 200, "{}", answer.text());
    }
    let page = http(two.web.unwrap(), "GET", "/instructor", &[&session], "").await;
    assert!(page.text().contains("/instructor.js"), "the dashboard");

    // Node 1 restarted (on a new port): the browser is still signed in.
    one.stop().await;
    let again = start_node_with(&nats, &pg, enable_web).await;
    let answer = live(again.web.unwrap()).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // Only the token's hash is stored.
    let token = session.split('=').nth(1).unwrap();
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let stored: Vec<String> = client
        .query("SELECT token_hash FROM web_sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], token);

    let logout = http(
        two.web.unwrap(),
        "POST",
        "/instructor/logout",
        &[&session],
        "",
    )
    .await;
    assert_eq!(logout.status, 303);
    for web in [two.web.unwrap(), again.web.unwrap()] {
        assert_eq!(live(web).await.status, 401, "logged out everywhere");
    }
}

/// A node process, killed if the test ends before it kills it itself.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Who holds the record writer's lease: the node number in the bucket, if any.
async fn lease_holder(js: &async_nats::jetstream::Context) -> Option<String> {
    use classchat::cluster::lease::{BUCKET, KEY};
    let kv = js.get_key_value(BUCKET).await.ok()?;
    let value = kv.get(KEY).await.ok()??;
    Some(String::from_utf8_lossy(&value).into_owned())
}

/// Waits (up to `within`) until the lease is held by a node other than `not`.
pub(crate) async fn lease_taken(
    js: &async_nats::jetstream::Context,
    not: Option<&str>,
    within: Duration,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        match lease_holder(js).await {
            Some(holder) if Some(holder.as_str()) != not => return holder,
            _ => assert!(Instant::now() < deadline, "nobody took the lease over"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `application_name`s of the record writers connected to PostgreSQL.
async fn writers(pg: &Postgres) -> Vec<String> {
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let pattern = format!("{}%", classchat::cluster::record::WRITER);
    client
        .query(
            "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE $1",
            &[&pattern],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// SPEC 9, "One writer": one node writes the record; killed mid-chat, another
/// takes over within 15 s and the record goes on from what PostgreSQL holds, each
/// event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_writer_killed_mid_chat_another_node_records_the_rest_within_15_seconds_once_each() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    // The first node takes the lease; the others then find it held.
    let dir = tempfile::tempdir().unwrap();
    let (first, _) = spawn_node(dir.path(), &nats, &pg, Stdio::null());
    let mut first = KillOnDrop(Some(first));
    let writer = lease_taken(&js, None, WAIT).await;
    let one = start_node(&nats, &pg).await;
    let two = start_node(&nats, &pg).await;
    let mut amy = one.login("amy").await;
    let mut bob = two.login("bob").await;
    amy.expect("* bob has joined #lobby").await;

    let mut sent = Vec::new();
    let mut say = async |amy: &mut TestClient, n: usize| {
        let line = format!("line {n}");
        amy.send(&line).await;
        sent.push(format!("amy: {line}"));
    };
    for n in 0..20 {
        say(&mut amy, n).await;
    }
    chat_lines(&mut bob, 20).await;
    assert_eq!(recorded_chat(&pg, 20, WAIT).await.len(), 20);
    // Three nodes, one writer: the first.
    assert_eq!(lease_holder(&js).await.as_deref(), Some(writer.as_str()));
    let expected = format!("{} {writer}", classchat::cluster::record::WRITER);
    assert_eq!(writers(&pg).await, [expected]);

    // Killed while lines are on their way, and the chat goes on.
    for n in 20..40 {
        say(&mut amy, n).await;
    }
    let mut first = first.0.take().unwrap();
    first.kill().unwrap();
    crate::harness::exited(first).await;
    let killed = Instant::now();
    for n in 40..60 {
        say(&mut amy, n).await;
    }
    assert_eq!(chat_lines(&mut bob, 40).await, sent[20..]);
    let limit = Duration::from_secs(15);
    let recorded = recorded_chat(&pg, sent.len(), limit.saturating_sub(killed.elapsed())).await;
    assert!(
        killed.elapsed() < limit,
        "recorded {} s after the kill",
        killed.elapsed().as_secs()
    );
    assert_eq!(recorded, sent, "each line once, in order");
    let successor = lease_taken(&js, Some(&writer), Duration::ZERO).await;
    assert_ne!(successor, writer);
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let joins: i64 = client
        .query_one("SELECT count(*) FROM events WHERE kind = 'join'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(joins, 2, "amy and bob joined once each");
}
