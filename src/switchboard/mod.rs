//! The switchboard: the [`Hub`] behind one lock, the members' outgoing queues, and
//! the event sink. Front ends call it; it turns each request into an [`Action`],
//! asks the hub what that means, then applies the [`Outcome`]: queues each line
//! for its audience, records each event, and closes whom the hub removed.
//!
//! Every action takes one path: a [`Sequencer`] puts it in order, and
//! [`Switchboard::settle`] applies it. A single server's sequencer hands it back
//! at once; a cluster node's hands it to a [`Relay`] (NATS JetStream), and the node
//! applies it when the stream returns it ([`Switchboard::replay`]), like every
//! other node: see [`action`]. Either way a refusal by the hub reaches the member
//! as a [`ServerLine::Refused`] that says what it refuses, so each front end
//! words it its own way; only what is refused before ordering (the stream or the
//! record out of reach) is a return value.
//!
//! One [`std::sync::Mutex`], not an actor task and not a Tokio mutex: nothing under
//! it awaits (queueing is a non-blocking `try_send` into each member's bounded
//! queue, recording a push onto the store's queue), so it is held for microseconds,
//! the state is never seen half-changed, and members receive lines in the order in
//! which the events are recorded.
//!
//! A member whose queue is full is removed on the spot (reason `Too slow`) and its
//! connection is told to close; nobody else ever waits for it.

pub mod action;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::event::EventSink;
use crate::hub::{Audience, ConnId, Hub, Identity, Outcome};
use crate::mailbox;
use crate::protocol::{
    Answer, Asked, Command, CommandError, LeaveReason, LoginError, Name, NickError, Notice,
    ServerLine, Stamped,
};

pub use action::{Action, Entry};

/// The sending side of a connection's bounded outgoing queue. Every front end
/// renders the same stamped lines in its own wire format.
pub type Outbox = mailbox::Sender<Arc<Stamped>>;

/// Where a cluster node sends its actions to be put in the cluster's one order.
pub trait Relay: Send + Sync {
    /// Whether actions can be ordered now (the node reaches NATS).
    fn is_up(&self) -> bool;

    /// Queues `entry` for the stream without waiting. Departures are kept and
    /// sent once the stream can be reached again; anything else that cannot be
    /// sent is reported back with [`Switchboard::undelivered`].
    fn send(&self, entry: Entry);
}

/// Puts actions in the one order every copy of the hub applies them in.
trait Sequencer: Send + Sync {
    /// The node number this server's entries carry; `None` for a recorder, which
    /// applies what others ordered and has nobody to answer.
    fn node(&self) -> Option<u64>;

    /// Whether other servers apply the same actions (a cluster node).
    fn is_shared(&self) -> bool;

    /// Whether an action can be ordered now.
    fn is_up(&self) -> bool;

    /// Orders `entry`: returns it when it is to be applied now, or `None` when it
    /// comes back through [`Switchboard::replay`].
    fn order(&self, entry: Entry) -> Option<Entry>;
}

/// A single server: its own order is the order.
struct Alone;

impl Sequencer for Alone {
    fn node(&self) -> Option<u64> {
        Some(0)
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn is_up(&self) -> bool {
        true
    }

    fn order(&self, entry: Entry) -> Option<Entry> {
        Some(entry)
    }
}

/// A cluster node's recorder: it applies the stream and asks for nothing.
struct Recording;

impl Sequencer for Recording {
    fn node(&self) -> Option<u64> {
        None
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn is_up(&self) -> bool {
        true
    }

    fn order(&self, _: Entry) -> Option<Entry> {
        None
    }
}

/// A cluster node: the stream's order is the order.
struct Stream {
    number: u64,
    relay: Box<dyn Relay>,
}

impl Sequencer for Stream {
    fn node(&self) -> Option<u64> {
        Some(self.number)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn is_up(&self) -> bool {
        self.relay.is_up()
    }

    fn order(&self, entry: Entry) -> Option<Entry> {
        self.relay.send(entry);
        None
    }
}

/// How the switchboard reaches one member's connection.
struct Member {
    outbox: Outbox,
    /// Cancelled when the hub removes this member, so its connection closes too.
    dropped: CancellationToken,
    /// Its own chat lines come back to it (IRC's echo-message): the very line
    /// its room got, so its client sees the same time and id.
    echo: bool,
    /// It is told when others in its room go away or come back (IRC's
    /// `away-notify`); other clients have no way to show it.
    away_notify: bool,
}

struct Inner {
    hub: Hub,
    /// The members connected here (in a cluster, to this node).
    members: HashMap<ConnId, Member>,
}

/// See the module docs. Shared as `Arc<Switchboard>`.
pub struct Switchboard {
    inner: Mutex<Inner>,
    sink: Box<dyn EventSink>,
    clock: Clock,
    sequencer: Box<dyn Sequencer>,
    /// Cluster: the stream has been applied up to this node's start, so what it
    /// applies now is news rather than history.
    live: AtomicBool,
}

impl Switchboard {
    /// A single server's switchboard for `hub`, recording into `sink`, stamping
    /// with `clock`.
    pub fn new(hub: Hub, sink: impl EventSink + 'static, clock: Clock) -> Switchboard {
        Switchboard::with(hub, Box::new(sink), clock, Box::new(Alone))
    }

    /// A cluster node's recorder: [`Switchboard::replay`] turns the stream's
    /// actions into events for `sink`.
    pub fn recorder(hub: Hub, sink: impl EventSink + 'static, clock: Clock) -> Switchboard {
        Switchboard::with(hub, Box::new(sink), clock, Box::new(Recording))
    }

    /// Cluster node `number`'s switchboard: actions go out through `relay` and
    /// take effect in [`Switchboard::replay`]. Its events go to `sink`.
    pub fn node(
        hub: Hub,
        sink: impl EventSink + 'static,
        clock: Clock,
        number: u64,
        relay: impl Relay + 'static,
    ) -> Switchboard {
        let relay = Box::new(relay);
        let sequencer = Box::new(Stream { number, relay });
        Switchboard::with(hub, Box::new(sink), clock, sequencer)
    }

    fn with(
        hub: Hub,
        sink: Box<dyn EventSink>,
        clock: Clock,
        sequencer: Box<dyn Sequencer>,
    ) -> Switchboard {
        Switchboard {
            inner: Mutex::new(Inner {
                hub,
                members: HashMap::new(),
            }),
            sink,
            clock,
            sequencer,
            live: AtomicBool::new(false),
        }
    }

    /// Cluster: this node has applied the stream up to its own start.
    pub fn caught_up(&self) {
        self.live.store(true, Ordering::Relaxed);
    }

    fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    /// The clock every line is stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Checks the form of a username (not whether it is free).
    pub fn check_name(&self, nick: &str) -> Result<(), NickError> {
        self.lock().hub.check_name(nick)
    }

    /// Whether no member has this name, compared case-insensitively.
    pub fn is_name_free(&self, nick: &str) -> bool {
        self.lock().hub.is_name_free(nick)
    }

    /// Minutes until a kick lets `nick` (or `address`) in again ([`Hub::kicked`]).
    pub fn kicked(&self, nick: &str, address: Option<IpAddr>, proven: bool) -> Option<u64> {
        let now = self.clock.now_ms();
        self.lock().hub.kicked(nick, address, proven, now)
    }

    /// Whether `identity` may log in as `nick` now ([`Hub::may_register`]).
    pub fn may_register(&self, nick: &str, identity: &Identity) -> bool {
        self.lock().hub.may_register(nick, identity)
    }

    /// The roster account of whoever has `nick` now (IRC's account-tag).
    pub fn account_of(&self, nick: &str) -> Option<Name> {
        self.lock().hub.account_of(nick).cloned()
    }

    /// Why whoever has `nick` now is away, if they are.
    pub fn away_of(&self, nick: &str) -> Option<String> {
        self.lock().hub.away_of(nick).map(str::to_owned)
    }

    /// The recent history of `room` (IRC's `CHATHISTORY`), oldest first.
    pub fn history_of(&self, room: &str) -> Vec<crate::event::HistoryLine> {
        self.lock().hub.history_of(room)
    }

    /// A member's current name.
    pub fn nick(&self, id: ConnId) -> Option<Name> {
        self.lock().hub.nick(id).cloned()
    }

    /// A member's current room (in a cluster, once the stream has said so).
    pub fn room(&self, id: ConnId) -> Option<Name> {
        self.lock().hub.room(id).cloned()
    }

    /// What `/who` would answer member `id` now, read without asking the hub
    /// through the sequencer (for front ends that show it in other forms).
    pub fn who(&self, id: ConnId) -> Option<Answer> {
        self.lock().hub.who_answer(id)
    }

    /// What `/rooms` would answer now; see [`Switchboard::who`].
    pub fn rooms(&self) -> Answer {
        self.lock().hub.rooms_answer()
    }

    /// How many members there are now (in a cluster, on every node).
    pub fn member_count(&self) -> usize {
        self.lock().hub.member_count()
    }

    /// Removes erased lines, keyed `(room, ts_ms, sender)`, from the rooms'
    /// replay tails (SPEC 12); returns how many.
    pub fn forget_history(
        &self,
        erased: &std::collections::HashSet<(String, i64, String)>,
    ) -> usize {
        self.lock().hub.forget_history(erased)
    }

    /// A copy of the hub's state (cluster: for a snapshot; the copy is made under
    /// the lock, anything slower is for the caller).
    pub fn saved(&self) -> crate::hub::Saved {
        self.lock().hub.save()
    }

    /// Every room and who is in it; see [`Hub::rooms_snapshot`].
    pub fn rooms_snapshot(&self) -> Vec<(Name, Vec<(Name, bool)>)> {
        self.lock().hub.rooms_snapshot()
    }

    /// Each room's class tools now: its session, hands, poll and questions.
    pub fn room_tools(&self) -> Vec<crate::hub::RoomTools> {
        self.lock().hub.room_tools()
    }

    /// Whether a request would be taken now: always on a single server; on a
    /// cluster node, while NATS can be reached.
    pub fn available(&self) -> Result<(), CommandError> {
        match self.sequencer.is_up() {
            true => Ok(()),
            false => Err(CommandError::Undeliverable),
        }
    }

    /// The cluster nodes the members are connected through.
    pub fn member_nodes(&self) -> std::collections::BTreeSet<u64> {
        self.lock().hub.member_ids().map(action::node_of).collect()
    }

    /// Cluster: node `node` stopped answering; its members are to be removed.
    pub fn declare_gone(&self, node: u64) {
        let _ = self.request(Action::NodeGone { node });
    }

    /// Makes connection `id` a member called `nick`, reached through `outbox`.
    ///
    /// The name is checked against this server's view first. If the hub refuses
    /// it when the action is applied (on a cluster node, another node's member
    /// took it a moment earlier, and the stream's order decides), the member is
    /// told `! Username ... is already taken` and closed.
    pub fn register(
        &self,
        id: ConnId,
        nick: &str,
        identity: Identity,
        outbox: Outbox,
        dropped: CancellationToken,
    ) -> Result<(), LoginError> {
        let mut inner = self.lock();
        // Checked before the member is added, so a refused name leaves nothing.
        inner.hub.check_name(nick)?;
        if !inner.hub.may_register(nick, &identity) {
            return Err(NickError::Taken(nick.to_owned()).into());
        }
        self.available()?;
        inner.members.insert(
            id,
            Member {
                outbox,
                dropped,
                echo: false,
                away_notify: false,
            },
        );
        let action = Action::Register {
            id,
            nick: nick.to_owned(),
            identity,
        };
        self.dispatch(&mut inner, action)?;
        Ok(())
    }

    /// A chat line from `id` to its room.
    pub fn chat(&self, id: ConnId, text: String) -> Result<(), CommandError> {
        self.check_backlog()?;
        self.request(Action::Chat { id, text })
    }

    /// Any command but `/op` (see [`Switchboard::op`]).
    pub fn perform(&self, id: ConnId, command: Command) -> Result<(), CommandError> {
        // Everything said is recorded: it waits with the chat for the record.
        if matches!(
            command,
            Command::Msg { .. } | Command::Me(_) | Command::Ask(_)
        ) {
            self.check_backlog()?;
        }
        self.request(Action::Perform { id, command })
    }

    /// Whether member `id`, connected here, gets its own chat lines back.
    pub fn set_echo(&self, id: ConnId, on: bool) {
        if let Some(member) = self.lock().members.get_mut(&id) {
            member.echo = on;
        }
    }

    /// Whether member `id`, connected here, is told of others' `/away`.
    pub fn set_away_notify(&self, id: ConnId, on: bool) {
        if let Some(member) = self.lock().members.get_mut(&id) {
            member.away_notify = on;
        }
    }

    /// Makes `id` an instructor; the caller has checked the password.
    pub fn op(&self, id: ConnId) {
        let _ = self.request(Action::Op { id });
    }

    /// Queues `line` for member `id` alone, if it is connected here: a front end's
    /// own answer, in order with what the hub queues.
    pub fn tell(&self, id: ConnId, line: ServerLine) {
        let line = Stamped::new(self.clock.now_ms(), line);
        if let Some(member) = self.lock().members.get(&id) {
            let _ = member.outbox.try_send(line);
        }
    }

    /// Ends the connections made here under roster account `account`, whose code
    /// was revoked (each node ends its own).
    pub fn revoke(&self, account: &str) {
        let mut inner = self.lock();
        let ids: Vec<ConnId> = inner
            .hub
            .members_of(account)
            .into_iter()
            .filter(|id| inner.members.contains_key(id))
            .collect();
        for id in ids {
            tracing::info!("{account}'s code was revoked: closing their connection");
            let _ = self.dispatch(&mut inner, Action::Revoke { id });
        }
    }

    /// Removes `id` if it is still a member, telling its room why. Safe to call
    /// twice: every departure produces exactly one leave notice.
    pub fn leave(&self, id: ConnId, reason: LeaveReason) {
        let mut inner = self.lock();
        inner.members.remove(&id);
        let _ = self.dispatch(&mut inner, Action::Leave { id, reason });
    }

    /// Tells every member the server is stopping. A single server then records
    /// departures without notices to the others; a cluster node tells only its own
    /// members, whose departures the other nodes see as usual leaves.
    pub fn shutdown(&self) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        if self.sequencer.is_shared() {
            let line = Stamped::new(now, ServerLine::Notice(Notice::ShuttingDown));
            for member in inner.members.values() {
                let _ = member.outbox.try_send(line.clone());
            }
        } else {
            let outcome = inner.hub.shutdown(now);
            for entry in self.apply(&mut inner, outcome) {
                self.settle(&mut inner, entry);
            }
        }
    }

    /// How many members are connected through this server (on a cluster node,
    /// not the whole cluster's).
    pub fn connected_here(&self) -> usize {
        self.lock().members.len()
    }

    /// Sums up the joins and leaves of big rooms since the last call (SPEC 2) for
    /// the members connected here. Not an action: every node's hub saw the same
    /// joins, and each tells its own members.
    pub fn announce_crowds(&self) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.announce_crowds(now);
        for entry in self.apply(&mut inner, outcome) {
            self.settle(&mut inner, entry);
        }
    }

    /// Cluster: applies one action from the stream, in the stream's order.
    pub fn replay(&self, entry: Entry) {
        let mut inner = self.lock();
        self.settle(&mut inner, entry);
    }

    /// Cluster: `entry` was given up on, unacknowledged; its member hears why. A
    /// log-in given up on may have been stored after all: the connection is closed
    /// and its departure sent, so that it leaves no ghost behind.
    pub fn undelivered(&self, entry: &Entry) {
        let mut inner = self.lock();
        if let Some(id) = entry.action.member() {
            let error = CommandError::Undeliverable;
            self.refuse(&mut inner, id, error, asked(&entry.action), entry.at);
            if matches!(entry.action, Action::Register { .. }) {
                if let Some(member) = inner.members.remove(&id) {
                    member.dropped.cancel();
                }
                let reason = LeaveReason::Lost;
                let _ = self.dispatch(&mut inner, Action::Leave { id, reason });
            }
        }
    }

    /// Queues the refusal of what member `id` asked, if it is connected here.
    fn refuse(&self, inner: &mut Inner, id: ConnId, error: CommandError, asked: Asked, now: i64) {
        if let Some(member) = inner.members.get(&id) {
            let line = Stamped::new(now, ServerLine::Refused { error, asked });
            let _ = member.outbox.try_send(line);
        }
    }

    /// A member's request, ordered; refused here only if it cannot be ordered.
    fn request(&self, action: Action) -> Result<(), CommandError> {
        let mut inner = self.lock();
        self.dispatch(&mut inner, action)
    }

    /// Hands `action` to the sequencer (unless it cannot be ordered now: leaving
    /// is never refused), and settles it if it is to be applied now.
    fn dispatch(&self, inner: &mut Inner, action: Action) -> Result<(), CommandError> {
        if !self.sequencer.is_up() && !action.is_departure() {
            return Err(CommandError::Undeliverable);
        }
        let entry = Entry {
            at: self.clock.now_ms(),
            node: self.sequencer.node().unwrap_or(0),
            action,
        };
        if let Some(entry) = self.sequencer.order(entry) {
            self.settle(inner, entry);
        }
        Ok(())
    }

    /// Applies an ordered entry, then what it leads to here (members found too
    /// slow, a log-in whose connection is already gone), one after the other.
    fn settle(&self, inner: &mut Inner, entry: Entry) {
        let mut next = vec![entry];
        while let Some(entry) = next.pop() {
            let follow = self.settle_one(inner, entry);
            next.extend(follow.into_iter().rev());
        }
    }

    /// Applies one entry and answers its member, if it is connected here; returns
    /// the actions it leads to that are to be applied now.
    fn settle_one(&self, inner: &mut Inner, entry: Entry) -> Vec<Entry> {
        let from_here = self.sequencer.node() == Some(entry.node);
        let asker = entry.action.member().filter(|_| from_here);
        let registering = matches!(entry.action, Action::Register { .. });
        let quitting = matches!(
            entry.action,
            Action::Perform {
                command: Command::Quit(_),
                ..
            }
        );
        let asked = asker.map(|_| asked(&entry.action));
        let (result, mut follow) = self.act(inner, entry.action, entry.at);
        // Only the server the member is connected to answers it.
        let Some(id) = asker else {
            return follow;
        };
        match result {
            Err(error) => {
                let asked = asked.unwrap_or(Asked::Line);
                self.refuse(inner, id, error, asked, entry.at);
                if registering {
                    if let Some(member) = inner.members.remove(&id) {
                        member.dropped.cancel();
                    }
                }
            }
            Ok(()) if registering && !inner.members.contains_key(&id) => {
                // The connection ended before its log-in came back from the stream;
                // its departure may even have been ordered first (a publish retried
                // after a reconnect). Without a departure after it, every node would
                // keep a member nobody can reach, holding the name.
                let reason = LeaveReason::Lost;
                follow.extend(self.order(Action::Leave { id, reason }));
            }
            Ok(()) if registering => {
                let online = inner.hub.member_count();
                if let Some(nick) = inner.hub.nick(id) {
                    tracing::info!(online, "{nick} logged in");
                }
            }
            Ok(()) => {}
        }
        if quitting {
            // Its goodbye is queued; dropping the queue lets the connection close.
            inner.members.remove(&id);
        }
        follow
    }

    /// Hands `action`, which follows from another, to the sequencer; returns it
    /// when it is to be applied now.
    fn order(&self, action: Action) -> Option<Entry> {
        let entry = Entry {
            at: self.clock.now_ms(),
            node: self.sequencer.node().unwrap_or(0),
            action,
        };
        self.sequencer.order(entry)
    }

    /// What `action` means, applied; returns the hub's verdict and the actions
    /// that follow from it, to be applied now.
    fn act(
        &self,
        inner: &mut Inner,
        action: Action,
        now: i64,
    ) -> (Result<(), CommandError>, Vec<Entry>) {
        let hub = &mut inner.hub;
        let outcome = match action {
            Action::Register { id, nick, identity } => hub
                .register(id, &nick, identity, now)
                .map_err(CommandError::from),
            Action::Chat { id, text } => hub.chat(id, &text, now),
            Action::Perform { id, command } => hub.perform(id, command, now),
            Action::Op { id } => Ok(hub.op(id, now)),
            Action::Leave { id, reason } => Ok(hub.leave(id, reason, now)),
            Action::Revoke { id } => Ok(hub.revoke(id, now)),
            Action::NodeStarted { settings } => {
                let ours = hub.settings().fingerprint();
                if settings != 0 && settings != ours && self.is_live() {
                    tracing::error!(
                        "a node started with other [server], [limits] or [history] settings \
                         (or another version) than this one: every node needs the same \
                         configuration, or they will disagree about names and rooms"
                    );
                }
                Ok(Outcome::default())
            }
            Action::NodeGone { node } => {
                let mut gone: Vec<ConnId> = hub
                    .member_ids()
                    .filter(|id| action::node_of(*id) == node)
                    .collect();
                gone.sort_unstable();
                let mut outcome = Outcome::default();
                for id in gone {
                    let left = hub.leave(id, LeaveReason::Lost, now);
                    outcome.deliveries.extend(left.deliveries);
                    outcome.events.extend(left.events);
                    outcome.departed.extend(left.departed);
                    // Declared gone while it still runs (cut off from NATS too
                    // long): its connections end, as the others were told.
                    outcome.closed.push(id);
                }
                Ok(outcome)
            }
        };
        match outcome {
            Ok(outcome) => (Ok(()), self.apply(inner, outcome)),
            Err(error) => (Err(error), Vec::new()),
        }
    }

    /// Whether departures of connection `id` are logged here: only those of its
    /// own connections, so that in a cluster each is logged once.
    fn logs(&self, id: ConnId) -> bool {
        self.sequencer.node() == Some(action::node_of(id))
    }

    /// Chat and private messages wait while the record is too far behind.
    fn check_backlog(&self) -> Result<(), CommandError> {
        match self.sink.backlogged() {
            true => Err(CommandError::NotRecorded),
            false => Ok(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing under this lock panics on a client's input; should a bug do so, the
        // chat is better served by going on with the state as it is than by stopping.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues, records and closes what `outcome` says. The members found too slow
    /// meanwhile are removed: returns their departures, when they are to be
    /// applied now.
    fn apply(&self, inner: &mut Inner, outcome: Outcome) -> Vec<Entry> {
        let Inner { hub, members } = &mut *inner;
        let mut too_slow = Vec::new();
        for delivery in outcome.deliveries {
            let echo = match (&delivery.to, &delivery.line.line) {
                (Audience::Room { except, .. }, ServerLine::Chat { .. }) => {
                    except.filter(|id| members.get(id).is_some_and(|m| m.echo))
                }
                _ => None,
            };
            let away_change = matches!(
                delivery.line.line,
                ServerLine::Notice(Notice::AwayChanged { .. })
            );
            let mut send = |id: ConnId| {
                let Some(member) = members.get(&id) else {
                    return;
                };
                if away_change && !member.away_notify {
                    return;
                }
                if member.outbox.try_send(delivery.line.clone()).is_err() {
                    too_slow.push(id);
                }
            };
            match &delivery.to {
                Audience::One(id) => send(*id),
                Audience::Room { room, except } => {
                    hub.room_members(room)
                        .iter()
                        .filter(|id| Some(**id) != *except)
                        .for_each(|id| send(*id));
                    if let Some(id) = echo {
                        send(id);
                    }
                }
                Audience::Everyone => hub.member_ids().for_each(send),
            }
        }
        for (id, nick, reason) in outcome.departed {
            if self.logs(id) {
                let online = hub.member_count();
                tracing::info!(online, "{nick} left ({reason})");
            }
        }
        for event in outcome.events {
            self.sink.record(event);
        }
        for id in outcome.closed {
            if let Some(member) = members.remove(&id) {
                member.dropped.cancel();
            }
        }
        too_slow.sort_unstable();
        too_slow.dedup();
        let mut follow = Vec::new();
        for id in too_slow {
            if let Some(member) = members.remove(&id) {
                member.dropped.cancel();
            }
            let reason = LeaveReason::TooSlow;
            follow.extend(self.order(Action::Leave { id, reason }));
        }
        follow
    }
}

/// What a member's action asked, as its refusal says.
fn asked(action: &Action) -> Asked {
    match action {
        Action::Register { nick, .. } => Asked::LogIn(nick.clone()),
        Action::Chat { .. } => Asked::Chat,
        Action::Perform { command, .. } => Asked::Command(command.clone()),
        _ => Asked::Line,
    }
}
