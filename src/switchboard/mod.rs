//! The switchboard: the [`Hub`] behind one lock, the members' outgoing queues, and
//! the event sink. Front ends call it; it turns each request into an [`Action`],
//! asks the hub what that means, then applies the [`Outcome`]: queues each line
//! for its audience, records each event, and closes whom the hub removed.
//!
//! A single server applies an action at once. A cluster node hands it to a
//! [`Relay`] (NATS JetStream) instead, and applies it when the stream returns it
//! ([`Switchboard::replay`]), like every other node: see [`action`]. Its answers
//! (a refusal, say) then reach the member as lines rather than as return values.
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
use crate::event::{EventKind, EventSink};
use crate::hub::{Audience, ConnId, Hub, Identity, Outcome};
use crate::mailbox;
use crate::protocol::{
    Command, CommandError, LeaveReason, LoginError, Name, NickError, Notice, ServerLine, Stamped,
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

/// How the switchboard reaches one member's connection.
struct Member {
    outbox: Outbox,
    /// Cancelled when the hub removes this member, so its connection closes too.
    dropped: CancellationToken,
}

struct Inner {
    hub: Hub,
    /// The members connected here (in a cluster, to this node).
    members: HashMap<ConnId, Member>,
}

/// This server alone, one node of a cluster, or a cluster node's recorder.
enum Mode {
    Single,
    /// Applies what the stream says to turn it into events: nobody is connected,
    /// and it logs nothing (the live switchboard beside it does).
    Recorder,
    Node {
        /// This node's number (see [`Action::NodeStarted`]).
        number: u64,
        relay: Box<dyn Relay>,
    },
}

/// See the module docs. Shared as `Arc<Switchboard>`.
pub struct Switchboard {
    inner: Mutex<Inner>,
    sink: Box<dyn EventSink>,
    clock: Clock,
    mode: Mode,
    /// Cluster: the stream has been applied up to this node's start, so what it
    /// applies now is news rather than history.
    live: AtomicBool,
}

impl Switchboard {
    /// A single server's switchboard for `hub`, recording into `sink`, stamping
    /// with `clock`.
    pub fn new(hub: Hub, sink: impl EventSink + 'static, clock: Clock) -> Switchboard {
        Switchboard::with_mode(hub, Box::new(sink), clock, Mode::Single)
    }

    /// A cluster node's recorder: [`Switchboard::replay`] turns the stream's
    /// actions into events for `sink`.
    pub fn recorder(hub: Hub, sink: impl EventSink + 'static, clock: Clock) -> Switchboard {
        Switchboard::with_mode(hub, Box::new(sink), clock, Mode::Recorder)
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
        Switchboard::with_mode(hub, Box::new(sink), clock, Mode::Node { number, relay })
    }

    fn with_mode(hub: Hub, sink: Box<dyn EventSink>, clock: Clock, mode: Mode) -> Switchboard {
        Switchboard {
            inner: Mutex::new(Inner {
                hub,
                members: HashMap::new(),
            }),
            sink,
            clock,
            mode,
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

    /// A member's current name.
    pub fn nick(&self, id: ConnId) -> Option<Name> {
        self.lock().hub.nick(id).cloned()
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

    /// Every room and who is in it; see [`Hub::rooms_snapshot`].
    pub fn rooms_snapshot(&self) -> Vec<(Name, Vec<(Name, bool)>)> {
        self.lock().hub.rooms_snapshot()
    }

    /// Whether a request would be taken now: always on a single server; on a
    /// cluster node, while NATS can be reached.
    pub fn available(&self) -> Result<(), CommandError> {
        match &self.mode {
            Mode::Node { relay, .. } if !relay.is_up() => Err(CommandError::Undeliverable),
            _ => Ok(()),
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
    /// On a cluster node the name is checked against this node's view first; if
    /// another node's member took it a moment earlier, the stream's order decides,
    /// and the loser is told `! Username ... is already taken` and closed.
    pub fn register(
        &self,
        id: ConnId,
        nick: &str,
        identity: Identity,
        outbox: Outbox,
        dropped: CancellationToken,
    ) -> Result<(), LoginError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        // Checked before the member is added, so a refused name leaves nothing.
        inner.hub.check_name(nick)?;
        if !inner.hub.may_register(nick, &identity) {
            return Err(NickError::Taken(nick.to_owned()).into());
        }
        let action = Action::Register {
            id,
            nick: nick.to_owned(),
            identity,
        };
        match &self.mode {
            Mode::Single | Mode::Recorder => {
                inner.members.insert(id, Member { outbox, dropped });
                match self.act(&mut inner, action, now) {
                    Ok(()) => {
                        let online = inner.hub.member_count();
                        tracing::info!(online, "{nick} logged in");
                        Ok(())
                    }
                    Err(err) => {
                        inner.members.remove(&id);
                        Err(match err {
                            CommandError::Nick(err) => LoginError::Nick(err),
                            err => LoginError::Line(err),
                        })
                    }
                }
            }
            Mode::Node { number, relay } => {
                if !relay.is_up() {
                    return Err(CommandError::Undeliverable.into());
                }
                inner.members.insert(id, Member { outbox, dropped });
                relay.send(Entry {
                    at: now,
                    node: *number,
                    action,
                });
                Ok(())
            }
        }
    }

    /// A chat line from `id` to its room.
    pub fn chat(&self, id: ConnId, text: String) -> Result<(), CommandError> {
        self.check_backlog()?;
        self.request(Action::Chat { id, text })
    }

    /// Any command but `/op` (see [`Switchboard::op`]).
    pub fn perform(&self, id: ConnId, command: Command) -> Result<(), CommandError> {
        if matches!(command, Command::Msg { .. }) {
            self.check_backlog()?;
        }
        self.request(Action::Perform { id, command })
    }

    /// Makes `id` an instructor; the caller has checked the password.
    pub fn op(&self, id: ConnId) {
        let _ = self.request(Action::Op { id });
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
        match self.mode {
            Mode::Single | Mode::Recorder => {
                let outcome = inner.hub.shutdown(now);
                self.apply(&mut inner, outcome, now);
            }
            Mode::Node { .. } => {
                let line = Stamped::new(now, ServerLine::Notice(Notice::ShuttingDown));
                for member in inner.members.values() {
                    let _ = member.outbox.try_send(line.clone());
                }
            }
        }
    }

    /// Cluster: applies one action from the stream, in the stream's order. Lines go
    /// to the members connected here; a refusal goes to the member who asked, if
    /// it is connected here.
    pub fn replay(&self, entry: Entry) {
        let mut inner = self.lock();
        let from_here = matches!(self.mode, Mode::Node { number, .. } if number == entry.node);
        let asker = entry.action.member();
        let registering = matches!(entry.action, Action::Register { .. });
        let quitting = matches!(
            entry.action,
            Action::Perform {
                command: Command::Quit(_),
                ..
            }
        );
        let result = self.act(&mut inner, entry.action, entry.at);
        // Only the node the member is connected to answers it.
        let Some(id) = asker.filter(|_| from_here) else {
            return;
        };
        match result {
            Err(error) => {
                self.refuse(&mut inner, id, &error, entry.at);
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
                let _ = self.dispatch(
                    &mut inner,
                    Action::Leave {
                        id,
                        reason: LeaveReason::Lost,
                    },
                );
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
    }

    /// Cluster: `entry` was given up on, unacknowledged; its member hears why. A
    /// log-in given up on may have been stored after all: the connection is closed
    /// and its departure sent, so that it leaves no ghost behind.
    pub fn undelivered(&self, entry: &Entry) {
        let mut inner = self.lock();
        if let Some(id) = entry.action.member() {
            self.refuse(&mut inner, id, &CommandError::Undeliverable, entry.at);
            if matches!(entry.action, Action::Register { .. }) {
                if let Some(member) = inner.members.remove(&id) {
                    member.dropped.cancel();
                }
                let reason = LeaveReason::Lost;
                let _ = self.dispatch(&mut inner, Action::Leave { id, reason });
            }
        }
    }

    /// Queues `! ERROR` for member `id`, if it is connected here.
    fn refuse(&self, inner: &mut Inner, id: ConnId, error: &CommandError, now: i64) {
        if let Some(member) = inner.members.get(&id) {
            let line = Stamped::new(now, ServerLine::Error(error.to_string()));
            let _ = member.outbox.try_send(line);
        }
    }

    /// A member's request: applied now on a single server; on a cluster node,
    /// sent to be ordered, unless NATS is out of reach. Leaving is never refused.
    fn request(&self, action: Action) -> Result<(), CommandError> {
        let mut inner = self.lock();
        self.dispatch(&mut inner, action)
    }

    fn dispatch(&self, inner: &mut Inner, action: Action) -> Result<(), CommandError> {
        let now = self.clock.now_ms();
        match &self.mode {
            Mode::Single | Mode::Recorder => {
                let quit = match &action {
                    Action::Perform {
                        id,
                        command: Command::Quit(_),
                    } => Some(*id),
                    _ => None,
                };
                self.act(inner, action, now)?;
                if let Some(id) = quit {
                    inner.members.remove(&id);
                }
                Ok(())
            }
            Mode::Node { number, relay } => {
                if !relay.is_up() && !action.is_departure() {
                    return Err(CommandError::Undeliverable);
                }
                relay.send(Entry {
                    at: now,
                    node: *number,
                    action,
                });
                Ok(())
            }
        }
    }

    /// What `action` means, applied.
    fn act(&self, inner: &mut Inner, action: Action, now: i64) -> Result<(), CommandError> {
        let hub = &mut inner.hub;
        let outcome = match action {
            Action::Register { id, nick, identity } => hub.register(id, &nick, identity, now)?,
            Action::Chat { id, text } => hub.chat(id, &text, now)?,
            Action::Perform { id, command } => hub.perform(id, command, now)?,
            Action::Op { id } => hub.op(id, now),
            Action::Leave { id, reason } => hub.leave(id, reason, now),
            Action::Revoke { id } => hub.revoke(id, now),
            Action::NodeStarted { settings } => {
                let ours = hub.settings().fingerprint();
                if settings != 0
                    && settings != ours
                    && matches!(self.mode, Mode::Node { .. })
                    && self.is_live()
                {
                    tracing::error!(
                        "a node started with other [server], [limits] or [history] settings \
                         (or another version) than this one: every node needs the same \
                         configuration, or they will disagree about names and rooms"
                    );
                }
                Outcome::default()
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
                    // Declared gone while it still runs (cut off from NATS too
                    // long): its connections end, as the others were told.
                    outcome.closed.push(id);
                }
                outcome
            }
        };
        self.apply(inner, outcome, now);
        Ok(())
    }

    /// Whether departures of connection `id` are logged here: on a cluster node,
    /// only those of its own connections, so each is logged once.
    fn logs(&self, id: ConnId) -> bool {
        match self.mode {
            Mode::Single => true,
            Mode::Recorder => false,
            Mode::Node { number, .. } => action::node_of(id) == number,
        }
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

    /// Queues, records and closes what `outcome` says, then removes the members
    /// found too slow meanwhile (which is an outcome of its own; on a cluster node,
    /// an action for the stream).
    fn apply(&self, inner: &mut Inner, outcome: Outcome, now: i64) {
        let mut next = Some(outcome);
        while let Some(outcome) = next.take() {
            let Inner { hub, members } = &mut *inner;
            let mut too_slow = Vec::new();
            for delivery in outcome.deliveries {
                let mut send = |id: ConnId| {
                    let Some(member) = members.get(&id) else {
                        return;
                    };
                    if member.outbox.try_send(delivery.line.clone()).is_err() {
                        too_slow.push(id);
                    }
                };
                match &delivery.to {
                    Audience::One(id) => send(*id),
                    Audience::Room { room, except } => hub
                        .room_members(room)
                        .iter()
                        .filter(|id| Some(**id) != *except)
                        .for_each(|id| send(*id)),
                    Audience::Everyone => hub.member_ids().for_each(send),
                }
            }
            for event in outcome.events {
                if event.kind == EventKind::Leave && self.logs(event.session) {
                    let reason = event.text.as_deref().unwrap_or("");
                    if !reason.starts_with("joined #") {
                        tracing::info!(
                            online = hub.member_count(),
                            "{} left ({reason})",
                            event.sender
                        );
                    }
                }
                self.sink.record(event);
            }
            for id in outcome.closed {
                if let Some(member) = members.remove(&id) {
                    member.dropped.cancel();
                }
            }
            too_slow.sort_unstable();
            too_slow.dedup();
            let mut gone = Outcome::default();
            for id in too_slow {
                if let Some(member) = members.remove(&id) {
                    member.dropped.cancel();
                }
                let reason = LeaveReason::TooSlow;
                match &self.mode {
                    Mode::Single | Mode::Recorder => {
                        let left = hub.leave(id, reason, now);
                        gone.deliveries.extend(left.deliveries);
                        gone.events.extend(left.events);
                    }
                    Mode::Node { number, relay } => relay.send(Entry {
                        at: now,
                        node: *number,
                        action: Action::Leave { id, reason },
                    }),
                }
            }
            if !gone.events.is_empty() {
                next = Some(gone);
            }
        }
    }
}
