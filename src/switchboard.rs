//! The switchboard: the [`Hub`] behind one lock, the members' outgoing queues, and
//! the event sink. Front ends call it; it asks the hub what an action means, then
//! applies the [`Outcome`]: queues each line for its audience, records each event,
//! and closes whom the hub removed.
//!
//! One [`std::sync::Mutex`], not an actor task and not a Tokio mutex: nothing under
//! it awaits (queueing is a non-blocking `try_send` into each member's bounded
//! queue, recording a push onto the store's queue), so it is held for microseconds,
//! the state is never seen half-changed, and members receive lines in the order in
//! which the events are recorded.
//!
//! A member whose queue is full is removed on the spot (reason `Too slow`) and its
//! connection is told to close; nobody else ever waits for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::event::{EventKind, EventSink};
use crate::hub::{Audience, ConnId, Hub, Identity, Outcome};
use crate::protocol::{Command, CommandError, LeaveReason, Name, NickError, Stamped};

/// The sending side of a connection's bounded outgoing queue. Every front end
/// renders the same stamped lines in its own wire format.
pub type Outbox = mpsc::Sender<Arc<Stamped>>;

/// How the switchboard reaches one member's connection.
struct Member {
    outbox: Outbox,
    /// Cancelled when the hub removes this member, so its connection closes too.
    dropped: CancellationToken,
}

struct Inner {
    hub: Hub,
    members: HashMap<ConnId, Member>,
}

/// See the module docs. Shared as `Arc<Switchboard>`.
pub struct Switchboard {
    inner: Mutex<Inner>,
    sink: Box<dyn EventSink>,
    clock: Clock,
}

impl Switchboard {
    /// A switchboard for `hub`, recording into `sink`, stamping with `clock`.
    pub fn new(hub: Hub, sink: impl EventSink + 'static, clock: Clock) -> Switchboard {
        Switchboard {
            inner: Mutex::new(Inner {
                hub,
                members: HashMap::new(),
            }),
            sink: Box::new(sink),
            clock,
        }
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

    /// A member's current name.
    pub fn nick(&self, id: ConnId) -> Option<Name> {
        self.lock().hub.nick(id).cloned()
    }

    /// How many members there are now.
    pub fn member_count(&self) -> usize {
        self.lock().hub.member_count()
    }

    /// Every room and who is in it; see [`Hub::rooms_snapshot`].
    pub fn rooms_snapshot(&self) -> Vec<(Name, Vec<(Name, bool)>)> {
        self.lock().hub.rooms_snapshot()
    }

    /// Makes connection `id` a member called `nick`, reached through `outbox`.
    pub fn register(
        &self,
        id: ConnId,
        nick: &str,
        identity: Identity,
        outbox: Outbox,
        dropped: CancellationToken,
    ) -> Result<(), NickError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.register(id, nick, identity, now)?;
        inner.members.insert(id, Member { outbox, dropped });
        // The instructor at the server's console sees who comes and goes.
        tracing::info!(online = inner.hub.member_count(), "{nick} logged in");
        self.apply(&mut inner, outcome, now);
        Ok(())
    }

    /// A chat line from `id` to its room.
    pub fn chat(&self, id: ConnId, text: &str) -> Result<(), CommandError> {
        self.check_backlog()?;
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.chat(id, text, now)?;
        self.apply(&mut inner, outcome, now);
        Ok(())
    }

    /// Any command but `/op` (see [`Switchboard::op`]).
    pub fn perform(&self, id: ConnId, command: Command) -> Result<(), CommandError> {
        if matches!(command, Command::Msg { .. }) {
            self.check_backlog()?;
        }
        let quitting = matches!(command, Command::Quit(_));
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.perform(id, command, now)?;
        self.apply(&mut inner, outcome, now);
        if quitting {
            inner.members.remove(&id);
        }
        Ok(())
    }

    /// Makes `id` an instructor; the caller has checked the password.
    pub fn op(&self, id: ConnId) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.op(id, now);
        self.apply(&mut inner, outcome, now);
    }

    /// Removes `id` if it is still a member, telling its room why. Safe to call
    /// twice: every departure produces exactly one leave notice.
    pub fn leave(&self, id: ConnId, reason: LeaveReason) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.leave(id, reason, now);
        inner.members.remove(&id);
        self.apply(&mut inner, outcome, now);
    }

    /// Tells every member the server is stopping; from now on departures are
    /// recorded without notices to the others.
    pub fn shutdown(&self) {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let outcome = inner.hub.shutdown(now);
        self.apply(&mut inner, outcome, now);
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
    /// found too slow meanwhile (which is an outcome of its own).
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
                if event.kind == EventKind::Leave {
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
                let left = hub.leave(id, LeaveReason::TooSlow, now);
                gone.deliveries.extend(left.deliveries);
                gone.events.extend(left.events);
            }
            if !gone.events.is_empty() {
                next = Some(gone);
            }
        }
    }
}
