//! A cluster node's switchboard without NATS: entries are handed to
//! [`Switchboard::replay`] as the stream would hand them, and a relay that only
//! keeps what it is given stands in for the publisher.

use std::sync::{Arc, Mutex};

use super::*;
use crate::event::Event;
use crate::hub::{History, Settings};

fn settings() -> Settings {
    Settings::example()
}

#[derive(Clone, Default)]
struct Kept(Arc<Mutex<Vec<Entry>>>);

impl Relay for Kept {
    fn is_up(&self) -> bool {
        true
    }

    fn send(&self, entry: Entry) {
        self.0.lock().unwrap().push(entry);
    }
}

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl EventSink for Events {
    fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

/// Node `number`'s switchboard, what it sends, and what it records.
fn node(number: u64) -> (Switchboard, Kept, Events) {
    let hub = Hub::new(settings(), History::new(3));
    let (kept, events) = (Kept::default(), Events::default());
    let clock = Clock::new("%H:%M", true);
    let board = Switchboard::node(hub, events.clone(), clock, number, kept.clone());
    (board, kept, events)
}

fn member(board: &Switchboard, id: ConnId, nick: &str) -> mailbox::Receiver<Arc<Stamped>> {
    let (outbox, queue) = mailbox::bounded(64);
    board
        .register(
            id,
            nick,
            Identity::default(),
            outbox,
            CancellationToken::new(),
        )
        .unwrap();
    queue
}

fn lines(queue: &mut mailbox::Receiver<Arc<Stamped>>) -> Vec<String> {
    std::iter::from_fn(|| queue.try_recv())
        .map(|line| line.line.to_string())
        .collect()
}

/// Everything `kept` holds, as the stream would return it (through JSON).
fn stream(kept: &Kept) -> Vec<Entry> {
    kept.0
        .lock()
        .unwrap()
        .drain(..)
        .map(|e| serde_json::from_slice(&serde_json::to_vec(&e).unwrap()).unwrap())
        .collect()
}

#[test]
fn a_node_applies_nothing_until_the_stream_returns_it() {
    let (board, kept, _) = node(7);
    let id = action::first_id(7);
    let mut amy = member(&board, id, "amy");
    assert!(
        lines(&mut amy).is_empty(),
        "not welcomed before it is ordered"
    );
    assert!(board.is_name_free("amy"));
    for entry in stream(&kept) {
        board.replay(entry);
    }
    assert_eq!(
        lines(&mut amy),
        ["* Welcome, amy! You are in #lobby with 0 others. Type /help for commands."]
    );
    assert!(!board.is_name_free("AMY"));
}

#[test]
fn two_nodes_fed_one_stream_agree_on_everything_and_record_the_same() {
    let (one, kept_one, events_one) = node(1);
    let (two, kept_two, events_two) = node(2);
    let (a, b) = (action::first_id(1), action::first_id(2));
    let mut amy = member(&one, a, "amy");
    let mut bob = member(&two, b, "bob");
    // Both claim "sam" before either hears of the other: the order decides.
    let mut order = stream(&kept_one);
    order.extend(stream(&kept_two));
    one.perform(a, Command::Nick("sam".into())).unwrap();
    two.perform(b, Command::Nick("Sam".into())).unwrap();
    order.extend(stream(&kept_two));
    order.extend(stream(&kept_one));
    one.chat(a, "hello".into()).unwrap();
    order.extend(stream(&kept_one));
    for entry in &order {
        one.replay(entry.clone());
        two.replay(entry.clone());
    }
    assert_eq!(one.nick(b).as_deref(), Some("Sam"));
    assert_eq!(two.nick(a).as_deref(), Some("amy"));
    assert_eq!(one.rooms_snapshot(), two.rooms_snapshot());
    // The refusal reaches only the loser, on its own node.
    assert!(lines(&mut amy).contains(&"! Username sam is already taken".to_owned()));
    assert!(lines(&mut bob).contains(&"amy: hello".to_owned()));
    let recorded = events_one.0.lock().unwrap().clone();
    assert_eq!(
        recorded.len(),
        4,
        "two joins, one nick, one chat: {recorded:?}"
    );
    assert_eq!(recorded, *events_two.0.lock().unwrap());
}

#[test]
fn a_gone_node_s_members_leave_everywhere_and_its_own_connections_close() {
    let (one, kept_one, _) = node(1);
    let (two, kept_two, _) = node(2);
    let (a, b) = (action::first_id(1), action::first_id(2));
    let mut amy = member(&one, a, "amy");
    let (outbox, _bob) = mailbox::bounded(64);
    let dropped = CancellationToken::new();
    two.register(b, "bob", Identity::default(), outbox, dropped.clone())
        .unwrap();
    let mut order = stream(&kept_one);
    order.extend(stream(&kept_two));
    one.declare_gone(2);
    order.extend(stream(&kept_one));
    for entry in order {
        one.replay(entry.clone());
        two.replay(entry);
    }
    assert!(lines(&mut amy).contains(&"* bob has left #lobby (Connection lost)".to_owned()));
    assert!(one.is_name_free("bob") && two.is_name_free("bob"));
    assert!(dropped.is_cancelled(), "declared gone, node 2 closes bob");
    assert_eq!(one.member_nodes(), [1].into());
}

#[test]
fn departures_are_sent_even_while_nats_is_unreachable() {
    struct Down(Kept);
    impl Relay for Down {
        fn is_up(&self) -> bool {
            false
        }
        fn send(&self, entry: Entry) {
            self.0.send(entry);
        }
    }
    let kept = Kept::default();
    let hub = Hub::new(settings(), History::new(3));
    let clock = Clock::new("%H:%M", true);
    let board = Switchboard::node(hub, Events::default(), clock, 1, Down(kept.clone()));
    let id = action::first_id(1);
    let (outbox, _queue) = mailbox::bounded(8);
    let refused = board.register(
        id,
        "amy",
        Identity::default(),
        outbox,
        CancellationToken::new(),
    );
    assert_eq!(refused, Err(CommandError::Undeliverable.into()));
    assert_eq!(
        board.chat(id, "hi".into()),
        Err(CommandError::Undeliverable)
    );
    board.leave(id, LeaveReason::Closed);
    let sent = stream(&kept);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].action.is_departure());
}

/// A log-in stored after its own departure (a publish retried after a reconnect
/// can land behind later ones) leaves no member behind on any node.
#[test]
fn a_log_in_ordered_after_its_departure_leaves_no_ghost() {
    let (one, kept_one, _) = node(1);
    let (two, kept_two, _) = node(2);
    let a = action::first_id(1);
    let _amy = member(&one, a, "amy");
    let register = stream(&kept_one);
    one.leave(a, LeaveReason::Closed);
    let departure = stream(&kept_one);
    for entry in departure.iter().chain(&register) {
        one.replay(entry.clone());
        two.replay(entry.clone());
    }
    // Node 1 owns the connection: it orders a departure after the log-in.
    let mut after = stream(&kept_one);
    after.extend(stream(&kept_two));
    assert_eq!(after.len(), 1, "one departure: {after:?}");
    for entry in &after {
        one.replay(entry.clone());
        two.replay(entry.clone());
    }
    assert!(one.is_name_free("amy") && two.is_name_free("amy"));
    assert_eq!(one.member_count(), 0);
    assert_eq!(two.member_count(), 0);
}

/// Every refusal the stream's order decides comes back to the member who asked,
/// typed, with what it asked for, exactly as a single server refuses it at once.
#[test]
fn each_refusal_on_the_asynchronous_path_says_what_it_refuses() {
    let (board, kept, _) = node(3);
    let single = Switchboard::new(
        Hub::new(settings(), History::new(3)),
        Events::default(),
        Clock::new("%H:%M", true),
    );
    let ids: Vec<ConnId> = (0..5).map(|n| action::first_id(3) + n).collect();
    let nicks = ["amy", "bob", "cat", "dan", "eve"];
    let mut queues = Vec::new();
    let mut single_queues = Vec::new();
    for (id, nick) in ids.iter().zip(nicks) {
        queues.push(member(&board, *id, nick));
        single_queues.push(member(&single, *id, nick));
    }
    let settle = |board: &Switchboard| {
        for entry in stream(&kept) {
            board.replay(entry);
        }
    };
    settle(&board);
    // Three more rooms, so that a fifth is one too many (`max_rooms` is 4).
    for (n, id) in ids[1..4].iter().enumerate() {
        let room = Command::Join(format!("r{n}"));
        board.perform(*id, room.clone()).unwrap();
        single.perform(*id, room).unwrap();
    }
    settle(&board);
    let amy = ids[0];
    let pm = Command::Msg {
        to: "dave".into(),
        text: "hi".into(),
    };
    let cases = [
        (pm, CommandError::NoSuchUser("dave".into())),
        (
            Command::Nick("BOB".into()),
            CommandError::Nick(NickError::Taken("BOB".into())),
        ),
        (Command::Join("r9".into()), CommandError::TooManyRooms(4)),
        (
            Command::Unmute("bob".into()),
            CommandError::PermissionDenied,
        ),
    ];
    let refusals = |queue: &mut mailbox::Receiver<Arc<Stamped>>| {
        std::iter::from_fn(|| queue.try_recv())
            .filter_map(|line| match &line.line {
                ServerLine::Refused { error, asked } => Some((error.clone(), asked.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    for (command, error) in cases {
        refusals(&mut queues[0]);
        refusals(&mut single_queues[0]);
        board.perform(amy, command.clone()).unwrap();
        assert!(
            refusals(&mut queues[0]).is_empty(),
            "nothing before the stream"
        );
        settle(&board);
        let expected = vec![(error, Asked::Command(command.clone()))];
        assert_eq!(refusals(&mut queues[0]), expected, "{command:?}");
        single.perform(amy, command.clone()).unwrap();
        assert_eq!(refusals(&mut single_queues[0]), expected, "{command:?}");
    }
    // The refused join left her where she was.
    assert_eq!(board.room(amy).as_deref(), Some("lobby"));
    assert_eq!(board.nick(amy).as_deref(), Some("amy"));
}
