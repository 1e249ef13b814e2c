//! The hot pure parts, measured: parsing a client line, formatting a server line,
//! the store's batched insert, and the history replay query at a million rows.
//!
//! `cargo bench --bench hot_paths`; numbers are in docs/PERFORMANCE.md.

use std::sync::Arc;

use bytes::BytesMut;
use classchat::clock::Clock;
use classchat::event::{Event, EventKind};
use classchat::protocol::{self, LineCodec, ServerLine, Stamped};
use classchat::store;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rusqlite::Connection;
use tokio_util::codec::Decoder;

fn client_line(c: &mut Criterion) {
    let wire = b"bench:17:4242:123456789: has anyone finished part two of the lab yet?\r\n";
    let mut group = c.benchmark_group("client line");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame + utf8 + sanitize + parse", |b| {
        let mut codec = LineCodec::new(1024);
        b.iter(|| {
            let mut buf = BytesMut::from(&wire[..]);
            let Some(protocol::Inbound::Line(line)) = codec.decode(&mut buf).unwrap() else {
                unreachable!()
            };
            let text = std::str::from_utf8(&line).unwrap();
            protocol::parse(&protocol::sanitize(text)).unwrap()
        });
    });
    group.bench_function("sanitize with escapes", |b| {
        let text = "\x1b[31mred\x1b[0m\tand a bell\x07 in a longer line of chat text";
        b.iter(|| protocol::sanitize(std::hint::black_box(text)).into_owned());
    });
    group.finish();
}

fn server_line(c: &mut Criterion) {
    let mut group = c.benchmark_group("server line");
    group.throughput(Throughput::Elements(1));
    for (name, utc) in [("local time", false), ("utc", true)] {
        let clock = Clock::new("%H:%M:%S", utc);
        group.bench_function(name, |b| {
            let from: Arc<str> = "u17".into();
            let text: Arc<str> = "bench:17:4242:123456789: has anyone finished part two?".into();
            b.iter(|| {
                let line = ServerLine::Chat {
                    from: from.clone(),
                    text: text.clone(),
                };
                Stamped::new(clock.now_ms(), line).wire(&clock).clone()
            });
        });
    }
    group.finish();
}

fn event(i: i64, room: &Arc<str>, sender: &Arc<str>) -> Event {
    Event {
        ts_ms: 1_764_000_000_000 + i,
        kind: if i % 10 == 0 {
            EventKind::Join
        } else {
            EventKind::Chat
        },
        room: room.clone(),
        sender: sender.clone(),
        recipient: None,
        text: Some(format!(
            "bench:{i}: has anyone finished part two of the lab yet?"
        )),
        session: i % 300,
        account: None,
    }
}

fn temp_db(dir: &tempfile::TempDir, name: &str) -> Connection {
    store::open_database(&dir.path().join(name)).unwrap()
}

fn store_insert(c: &mut Criterion) {
    const BATCH: i64 = 8192;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = temp_db(&dir, "insert.db");
    let (room, sender): (Arc<str>, Arc<str>) = ("lobby".into(), "u17".into());
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    let mut next = 0;
    group.bench_function("insert batch of 8192", |b| {
        b.iter_batched(
            || {
                next += BATCH;
                (next..next + BATCH)
                    .map(|i| event(i, &room, &sender))
                    .collect::<Vec<_>>()
            },
            |events| store::insert_events(&mut conn, &events).unwrap(),
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

fn replay_query(c: &mut Criterion) {
    const ROWS: i64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let mut conn = temp_db(&dir, "replay.db");
    let rooms: Vec<Arc<str>> = ["lobby", "lab", "help"]
        .iter()
        .map(|r| Arc::from(*r))
        .collect();
    let sender: Arc<str> = "u17".into();
    for chunk in (0..ROWS).collect::<Vec<_>>().chunks(50_000) {
        let events: Vec<Event> = chunk
            .iter()
            .map(|&i| event(i, &rooms[(i % 3) as usize], &sender))
            .collect();
        store::insert_events(&mut conn, &events).unwrap();
    }
    let mut group = c.benchmark_group("history");
    group.bench_function("last 20 of one room, 1M rows stored", |b| {
        b.iter(|| {
            let lines = store::query_history(&conn, "lab", 20).unwrap();
            assert_eq!(lines.len(), 20);
            lines
        });
    });
    group.bench_function("last 20 of every room at start-up, 1M rows stored", |b| {
        b.iter(|| {
            let rooms = store::recent_history(&conn, 20).unwrap();
            assert_eq!(rooms.len(), 3);
            rooms
        });
    });
    group.finish();
}

criterion_group!(
    benches,
    client_line,
    server_line,
    store_insert,
    replay_query
);
criterion_main!(benches);
