//! SPEC 9, "Bounded start": a node starts from the newest snapshot whatever the
//! stream's length, with the state of a node that replayed everything, and the
//! stream is trimmed only below what PostgreSQL holds.
//!
//! The long term is published straight to the stream (as a node's relay would,
//! without clients), so a term of a million actions takes seconds to make. The
//! regular test uses 200,000 actions; the SPEC's measure is
//! `cargo test --release --test integration -- --ignored --nocapture a_node_starts_from_a_snapshot_after`
//! (a million actions; `CLASSCHAT_START_ACTIONS` sets another count), whose
//! output gives the start with no snapshot (the whole stream replayed) and
//! from one (docs/PERFORMANCE.md).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use classchat::clock::Clock;
use classchat::cluster::{self, snapshot, Node};
use classchat::hub::Identity;
use classchat::protocol::{Command, LeaveReason};
use classchat::switchboard::{action, Action, Entry};

use crate::cluster::{engines, node_config, recorded_chat};
use crate::harness::{TestClient, TestServer, WAIT};
use crate::nats::Nats;
use crate::postgres::Postgres;

/// Members of the generated term.
const MEMBERS: i64 = 200;
/// Rooms they spread over.
const ROOMS: i64 = 10;

/// A term of `count` actions from a node numbered 1 (the stream's first
/// action): members log in and join rooms, an instructor mutes two of them, the
/// rest chat, and some leave at the end. Made one action at a time, so that a
/// long term need not be held in memory.
struct Term {
    count: usize,
    at: i64,
    /// The log-ins, joins and mutes.
    setup: Vec<Entry>,
    /// Chat lines, after the setup.
    chats: usize,
    /// Who leaves, after the chat.
    leaving: Vec<i64>,
}

impl Term {
    fn new(count: usize, at: i64) -> Term {
        let mut setup = vec![Entry {
            at,
            node: 0,
            action: Action::NodeStarted { settings: 0 },
        }];
        let entry = |action| Entry {
            at,
            node: 1,
            action,
        };
        for k in 0..MEMBERS {
            setup.push(entry(Action::Register {
                id: member(k),
                nick: format!("s{k}"),
                identity: Identity::default(),
            }));
            if k > 0 {
                setup.push(entry(Action::Perform {
                    id: member(k),
                    command: Command::Join(format!("room{}", k % ROOMS)),
                }));
            }
        }
        setup.push(entry(Action::Op { id: member(0) }));
        for (nick, minutes) in [("s5", None), ("s6", Some(600.0))] {
            setup.push(entry(Action::Perform {
                id: member(0),
                command: Command::Mute {
                    nick: nick.into(),
                    minutes,
                },
            }));
        }
        let leaving: Vec<i64> = (150..MEMBERS).chain([5]).collect();
        let chats = count - setup.len() - leaving.len();
        Term {
            count,
            at,
            setup,
            chats,
            leaving,
        }
    }

    /// Who says chat line `n`.
    fn speaker(n: usize) -> i64 {
        1 + (n as i64 % (MEMBERS - 1))
    }

    /// The `i`th action (from 0).
    fn entry(&self, i: usize) -> Entry {
        if let Some(entry) = self.setup.get(i) {
            return entry.clone();
        }
        let action = match i - self.setup.len() {
            n if n < self.chats => Action::Chat {
                id: member(Term::speaker(n)),
                text: format!("line {n}"),
            },
            n => Action::Leave {
                id: member(self.leaving[n - self.chats]),
                reason: LeaveReason::Quit(None),
            },
        };
        Entry {
            at: self.at,
            node: 1,
            action,
        }
    }

    /// The last line said in `room3` by someone still there, as a member sees it.
    fn last_in_room3(&self) -> String {
        (0..self.chats)
            .rev()
            .find_map(|n| {
                let k = Term::speaker(n);
                (k % ROOMS == 3 && k < 150).then(|| format!("s{k}: line {n}"))
            })
            .unwrap()
    }
}

/// Member `k`'s connection id, on node 1.
fn member(k: i64) -> i64 {
    action::first_id(1) + k
}

/// Publishes `term` to the cluster's stream (made here, as a node makes it),
/// thousands of acknowledgements in flight at once (fewer than the client's
/// limit on unacknowledged publishes, or it would wait for ever); returns the
/// last sequence.
async fn publish(js: &jetstream::Context, term: &Term) -> u64 {
    js.get_or_create_stream(stream::Config {
        name: cluster::STREAM.to_owned(),
        subjects: vec![cluster::SUBJECT.to_owned()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut last = 0;
    let mut next = 0;
    while next < term.count {
        let end = (next + 4_000).min(term.count);
        let mut acks = Vec::with_capacity(end - next);
        for i in next..end {
            let payload = serde_json::to_vec(&term.entry(i)).unwrap();
            acks.push(js.publish(cluster::SUBJECT, payload.into()).await.unwrap());
        }
        for ack in acks {
            last = ack.await.unwrap().sequence;
        }
        next = end;
    }
    last
}

/// The sequences of the snapshots in the bucket, ascending.
async fn snapshots(js: &jetstream::Context) -> Vec<u64> {
    snapshot::sequences(js).await.unwrap()
}

/// Waits (up to `within`) for a snapshot at or after `seq`.
async fn snapshot_at_least(js: &jetstream::Context, seq: u64, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    loop {
        let seqs = snapshots(js).await;
        if seqs.last().is_some_and(|&last| last >= seq) {
            return seqs;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot at or after {seq}: {seqs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The stream's first and last sequences.
async fn stream_bounds(js: &jetstream::Context) -> (u64, u64) {
    let mut stream = js.get_stream(cluster::STREAM).await.unwrap();
    let state = &stream.info().await.unwrap().state;
    (state.first_sequence, state.last_sequence)
}

/// What PostgreSQL holds: its highest `seq`.
async fn watermark(pg: &Postgres) -> u64 {
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    classchat::store::postgres::watermark(&client)
        .await
        .unwrap()
}

/// A node of the library's own, in this process, saving every `every` actions.
async fn node(nats: &Nats, pg: &Postgres, every: u64) -> (Node, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), nats, pg);
    config.cluster.snapshot_every = every;
    let valid = config.validate().unwrap();
    let started = Instant::now();
    let node = Node::start(&valid, Clock::new("%H:%M:%S", true))
        .await
        .unwrap();
    (node, started.elapsed())
}

/// Waits until both nodes have applied the whole stream, then checks they hold
/// the same state (read twice: a node-gone declaration may come in between).
async fn same_state(js: &jetstream::Context, one: &Node, other: &Node) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, last) = stream_bounds(js).await;
        if one.applied() == last && other.applied() == last {
            let (a, b) = (one.board.saved(), other.board.saved());
            let unchanged = one.applied() == last && other.applied() == last;
            if unchanged && stream_bounds(js).await.1 == last {
                assert!(a == b, "a node started from a snapshot differs");
                return;
            }
        }
        assert!(Instant::now() < deadline, "the nodes never caught up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn starts_from_a_snapshot(count: usize, every: u64) {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let made = Instant::now();
    let term = Term::new(count, chrono::Utc::now().timestamp_millis());
    let last_in_room3 = term.last_in_room3();
    let last = publish(&js, &term).await;
    assert_eq!(last, count as u64);
    eprintln!("published {count} actions in {:?}", made.elapsed());

    // The first node replays it all, writes the record, and saves snapshots.
    let (whole, took) = node(&nats, &pg, every).await;
    eprintln!("a node with no snapshot started in {took:?} ({count} actions)");
    snapshot_at_least(&js, last, Duration::from_secs(120)).await;

    let (from_snapshot, took) = node(&nats, &pg, every).await;
    eprintln!("a node started from a snapshot in {took:?} ({count} actions)");
    assert!(took < Duration::from_secs(5), "started in {took:?}");
    same_state(&js, &whole, &from_snapshot).await;

    // A whole server started now accepts within 5 s, and knows the mutes and
    // the history.
    let dir = tempfile::tempdir().unwrap();
    let mut config = node_config(dir.path(), &nats, &pg);
    config.cluster.snapshot_every = every;
    let started = Instant::now();
    let server = TestServer::start_in(dir, config).await;
    let mut s5 = server.login("s5").await;
    let took = started.elapsed();
    eprintln!("a server started from a snapshot accepted in {took:?} ({count} actions)");
    assert!(took < Duration::from_secs(5), "accepting after {took:?}");
    s5.send("may I?").await;
    s5.expect_prefix("! You are muted").await;
    s5.send("/join room3").await;
    s5.expect(&last_in_room3).await;

    server.stop().await;
    from_snapshot.close(Duration::from_secs(2)).await;
    whole.close(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_starts_from_a_snapshot_with_the_state_of_one_that_replayed_everything() {
    starts_from_a_snapshot(200_000, 20_000).await;
}

/// The SPEC's measure: see the module docs for the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a million actions: run with --release --ignored"]
async fn a_node_starts_from_a_snapshot_after_a_million_actions_within_5_seconds() {
    let count = std::env::var("CLASSCHAT_START_ACTIONS")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1_000_000);
    starts_from_a_snapshot(count, 100_000).await;
}

/// Sends `count` lines from `from`, numbered from `first`, each seen by `to`.
async fn say(
    from: &mut TestClient,
    to: &mut TestClient,
    first: usize,
    count: usize,
    sent: &mut Vec<String>,
) {
    for n in first..first + count {
        from.send(&format!("line {n}")).await;
        sent.push(format!("amy: line {n}"));
    }
    to.expect(sent.last().unwrap()).await;
}

/// The stream is trimmed below a snapshot PostgreSQL covers, never past what it
/// holds: with PostgreSQL down, snapshots go on and the stream keeps everything
/// after its last row; back up, every line is recorded once and trimming goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_stream_is_trimmed_only_below_what_postgresql_holds() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let node =
        crate::cluster::start_node_with(&nats, &pg, |c| c.cluster.snapshot_every = 100).await;
    let mut amy = node.login("amy").await;
    let mut bob = node.login("bob").await;
    amy.expect("* bob has joined #lobby").await;
    let mut sent = Vec::new();
    say(&mut amy, &mut bob, 0, 350, &mut sent).await;
    assert_eq!(recorded_chat(&pg, 350, WAIT).await, sent);
    // Trimmed once PostgreSQL covered two snapshots.
    say(&mut amy, &mut bob, 350, 100, &mut sent).await;
    let deadline = Instant::now() + WAIT;
    while stream_bounds(&js).await.0 == 1 {
        assert!(Instant::now() < deadline, "the stream was never trimmed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The snapshots are read before the stream: a trim deletes the snapshots
    // below the one it keeps before it trims the stream below it.
    let seqs = snapshots(&js).await;
    let (first, _) = stream_bounds(&js).await;
    assert!(first - 1 <= watermark(&pg).await);
    assert!(seqs.contains(&(first - 1)), "{seqs:?} from {first}");

    recorded_chat(&pg, sent.len(), WAIT).await;
    let held = watermark(&pg).await;
    pg.stop();
    say(&mut amy, &mut bob, 450, 400, &mut sent).await;
    // Snapshots beyond what PostgreSQL holds are saved, and the trim after each
    // one is done before the next is saved.
    let (_, last) = stream_bounds(&js).await;
    let before = snapshot_at_least(&js, last - 100, WAIT).await;
    say(&mut amy, &mut bob, 850, 150, &mut sent).await;
    let seqs = snapshot_at_least(&js, before.last().unwrap() + 1, WAIT).await;
    assert!(*seqs.last().unwrap() > held + 300, "{seqs:?} past {held}");
    let (first, _) = stream_bounds(&js).await;
    assert!(
        first <= held + 1,
        "trimmed to {first} while PostgreSQL held up to {held}"
    );

    pg.start_again();
    assert_eq!(
        recorded_chat(&pg, sent.len(), Duration::from_secs(30)).await,
        sent,
        "every line once, in order"
    );
    // Trimming goes on once PostgreSQL holds more.
    say(&mut amy, &mut bob, 1000, 250, &mut sent).await;
    recorded_chat(&pg, sent.len(), WAIT).await;
    say(&mut amy, &mut bob, 1250, 200, &mut sent).await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (first, _) = stream_bounds(&js).await;
        let held = watermark(&pg).await;
        assert!(first <= held + 1, "trimmed to {first} past {held}");
        if first > 1000 {
            break;
        }
        assert!(Instant::now() < deadline, "trimming stopped at {first}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.stop().await;
}

/// A writer that takes over begins from the newest snapshot at or below what
/// PostgreSQL holds, not a newer one: the writer stopped while PostgreSQL was
/// down, after saving snapshots past its last row, and the next one records
/// every line after that row once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_writer_begins_from_a_snapshot_postgresql_covers_and_records_the_rest_once() {
    let Some((nats, pg)) = engines().await else {
        return;
    };
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let every = |c: &mut classchat::config::Config| {
        c.cluster.snapshot_every = 100;
        c.storage.shutdown_grace_secs = 2;
    };
    let first = crate::cluster::start_node_with(&nats, &pg, every).await;
    let writer = crate::cluster::lease_taken(&js, None, WAIT).await;
    let second = crate::cluster::start_node_with(&nats, &pg, every).await;
    let mut amy = second.login("amy").await;
    let mut bob = second.login("bob").await;
    amy.expect("* bob has joined #lobby").await;
    let mut sent = Vec::new();
    say(&mut amy, &mut bob, 0, 250, &mut sent).await;
    assert_eq!(recorded_chat(&pg, 250, WAIT).await, sent);
    let held = watermark(&pg).await;

    pg.stop();
    say(&mut amy, &mut bob, 250, 250, &mut sent).await;
    let (_, last) = stream_bounds(&js).await;
    let seqs = snapshot_at_least(&js, last - 100, WAIT).await;
    assert!(seqs.iter().any(|&seq| seq <= held), "{seqs:?} to {held}");
    let _ = first.stop_closed().await;
    // The second node writes from now on; it waits for PostgreSQL.
    crate::cluster::lease_taken(&js, Some(&writer), WAIT).await;
    pg.start_again();
    say(&mut amy, &mut bob, 500, 100, &mut sent).await;
    assert_eq!(
        recorded_chat(&pg, sent.len(), Duration::from_secs(30)).await,
        sent,
        "every line once, in order"
    );
    let client = classchat::store::postgres::connect(&pg.url())
        .await
        .unwrap();
    let joins: i64 = client
        .query_one("SELECT count(*) FROM events WHERE kind = 'join'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(joins, 2, "amy and bob joined once each");
    second.stop().await;
}
