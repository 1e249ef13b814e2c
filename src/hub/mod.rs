//! The room manager: who is connected, under which name, in which room, and the
//! fan-out of every line to the right queues.
//!
//! All of it lives in one [`std::sync::Mutex`], not in an actor task and not in a
//! Tokio mutex: no method awaits while holding it (sending is a non-blocking
//! `try_send` into each member's bounded queue), so the lock is held for
//! microseconds, the state can never be seen half-changed, and the order in which
//! members receive lines is the order in which the events are recorded. An actor
//! would add a channel hop and a reply per command for the same guarantee.
//!
//! A member whose queue is full is removed on the spot (reason `Too slow`) and its
//! connection is told to close; nobody else ever waits for it.
//!
//! The instructor commands live in [`moderation`]; they change the same state.

mod moderation;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::event::{Event, EventKind};
use crate::protocol::{self, CommandError, NickError};
use crate::store::{HistoryLine, StoreHandle};

/// Identifies one connection; also its `session` in the database.
pub type ConnId = i64;

/// What a connection's writer task is asked to send.
#[derive(Debug)]
pub enum Outbound {
    /// One finished line, shared by every recipient.
    Line(Bytes),
    /// A room's history, still being read from the store. The writer waits for it,
    /// so the replay stays ahead of every live line queued after the join.
    Replay {
        /// When the join happened, for the header and footer lines.
        ts_ms: i64,
        /// The room, for the header line.
        room: Arc<str>,
        /// The store's answer.
        history: oneshot::Receiver<Vec<HistoryLine>>,
    },
}

/// The sending side of a member's bounded outgoing queue.
pub type Outbox = mpsc::Sender<Outbound>;

/// Why a member left, as shown in `* NICK has left #ROOM (REASON)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaveReason {
    /// `/quit`, with the reason given.
    Quit(Option<String>),
    /// The client closed the connection.
    Closed,
    /// The connection failed (reset, broken pipe).
    Lost,
    /// No line within `limits.idle_timeout_secs`.
    TimedOut,
    /// Its outgoing queue filled up.
    TooSlow,
    /// The server is stopping.
    Shutdown,
    /// An instructor removed them, with the reason given.
    Kicked(Option<String>),
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::Quit(Some(reason)) => write!(f, "Quit: {reason}"),
            LeaveReason::Quit(None) => f.write_str("Quit"),
            LeaveReason::Closed => f.write_str("Connection closed"),
            LeaveReason::Lost => f.write_str("Connection lost"),
            LeaveReason::TimedOut => f.write_str("Timed out"),
            LeaveReason::TooSlow => f.write_str("Too slow"),
            LeaveReason::Shutdown => f.write_str("Server shutting down"),
            LeaveReason::Kicked(Some(reason)) => write!(f, "Kicked: {reason}"),
            LeaveReason::Kicked(None) => f.write_str("Kicked"),
        }
    }
}

struct Member {
    nick: Arc<str>,
    room: Arc<str>,
    outbox: Outbox,
    /// Cancelled when the hub drops this member, so its connection closes too.
    dropped: CancellationToken,
    /// Logged in with `/op`.
    instructor: bool,
}

struct Room {
    /// Outboxes next to ids, so a broadcast needs no lookup per recipient.
    members: Vec<(ConnId, Outbox)>,
    permanent: bool,
}

#[derive(Default)]
struct State {
    members: HashMap<ConnId, Member>,
    /// Lower-cased nick to its owner: names are unique case-insensitively.
    nicks: HashMap<String, ConnId>,
    rooms: BTreeMap<Arc<str>, Room>,
    shutting_down: bool,
    /// Only instructors may chat.
    quiet: bool,
    /// Muted names (lower-cased) and until when. Kept by name, not by connection,
    /// so reconnecting does not lift a mute.
    mutes: HashMap<String, Instant>,
    /// Wrong `/op` passwords per address, so reconnecting does not reset the count.
    op_failures: HashMap<IpAddr, u32>,
}

/// The room manager; see the module docs. Shared as `Arc<Hub>`.
pub struct Hub {
    state: Mutex<State>,
    store: StoreHandle,
    clock: Clock,
    config: Arc<Config>,
}

impl Hub {
    /// A hub with the permanent rooms of `config`, recording into `store`.
    pub fn new(config: Arc<Config>, store: StoreHandle) -> Self {
        let mut state = State::default();
        for name in config.permanent_rooms() {
            state.rooms.insert(
                name.into(),
                Room {
                    members: Vec::new(),
                    permanent: true,
                },
            );
        }
        Hub {
            state: Mutex::new(state),
            store,
            clock: Clock::new(&config.server.timestamp_format, config.server.utc),
            config,
        }
    }

    /// The clock every line is stamped with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Adds a member with a name already checked by [`protocol::check_nick`], puts it
    /// in the default room, welcomes it, replays the room's history and tells the room.
    pub fn register(
        &self,
        id: ConnId,
        nick: &str,
        outbox: Outbox,
        dropped: CancellationToken,
    ) -> Result<(), NickError> {
        self.with_state(|tx| {
            let key = nick.to_ascii_lowercase();
            if tx.state.nicks.contains_key(&key) {
                return Err(NickError::Taken(nick.to_owned()));
            }
            let nick: Arc<str> = nick.into();
            let room: Arc<str> = self.config.server.default_room.as_str().into();
            tx.state.nicks.insert(key, id);
            tx.state.members.insert(
                id,
                Member {
                    nick: nick.clone(),
                    room: room.clone(),
                    outbox,
                    dropped,
                    instructor: false,
                },
            );
            let others = others(tx.room_size(&room));
            tx.tell(
                id,
                format_args!(
                    "* Welcome, {nick}! You are in #{room} with {others}. Type /help for commands."
                ),
            );
            tx.enter_room(id, &nick, &room);
            if tx.state.shutting_down {
                // Got in just as the server stopped: it must hear why it is closed.
                tx.tell(id, format_args!("* Server is shutting down."));
            }
            Ok(())
        })
    }

    /// A chat line from `id` to its room.
    pub fn chat(&self, id: ConnId, text: String) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let Some((nick, room)) = tx.name_and_room(id) else {
                return Ok(());
            };
            tx.check_may_talk(id, false)?;
            let line = tx.line(format_args!("{nick}: {text}"));
            tx.broadcast(&room, Some(id), &line);
            tx.record(EventKind::Chat, id, &room, &nick, None, Some(text));
            Ok(())
        })
    }

    /// `/msg TO TEXT`.
    pub fn private(&self, id: ConnId, to: &str, text: String) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let Some((nick, room)) = tx.name_and_room(id) else {
                return Ok(());
            };
            let (target, target_nick) = tx.find(to)?;
            tx.check_may_talk(id, tx.state.members[&target].instructor)?;
            let incoming = tx.line(format_args!("[PM from {nick}] {text}"));
            tx.send(target, incoming);
            tx.tell(id, format_args!("[PM to {target_nick}] {text}"));
            tx.record(
                EventKind::Private,
                id,
                &room,
                &nick,
                Some(target_nick),
                Some(text),
            );
            Ok(())
        })
    }

    /// `/who`: the members of `id`'s room, sorted case-insensitively.
    pub fn who(&self, id: ConnId) {
        self.with_state(|tx| {
            let Some((_, room)) = tx.name_and_room(id) else {
                return;
            };
            let mut names: Vec<(Arc<str>, bool)> = tx.state.rooms[&room]
                .members
                .iter()
                .filter_map(|(member, _)| tx.state.members.get(member))
                .map(|member| (member.nick.clone(), member.instructor))
                .collect();
            names.sort_by_key(|(name, _)| name.to_ascii_lowercase());
            let list: Vec<String> = names
                .iter()
                .map(|(name, instructor)| match instructor {
                    true => format!("{name} [instructor]"),
                    false => name.to_string(),
                })
                .collect();
            let list = list.join(", ");
            tx.tell(id, format_args!("= #{room} ({}): {list}", names.len()));
        });
    }

    /// `/rooms`: every room with its head count, sorted by name.
    pub fn rooms(&self, id: ConnId) {
        self.with_state(|tx| {
            let list: Vec<String> = tx
                .state
                .rooms
                .iter()
                .map(|(name, room)| format!("#{name} ({})", room.members.len()))
                .collect();
            tx.tell(id, format_args!("= Rooms: {}", list.join(", ")));
        });
    }

    /// Checks the form of a username (not whether it is free): the rules of
    /// [`protocol::check_nick`] with this server's limits and reserved names.
    pub fn check_name(&self, nick: &str) -> Result<(), NickError> {
        let server = &self.config.server;
        protocol::check_nick(
            nick,
            self.config.limits.max_nick_len,
            &server.reserved_nicks,
        )
    }

    /// `/nick NEW`.
    pub fn rename(&self, id: ConnId, new: &str) -> Result<(), CommandError> {
        self.check_name(new)?;
        self.with_state(|tx| {
            let Some((old, room)) = tx.name_and_room(id) else {
                return Ok(());
            };
            let new_key = new.to_ascii_lowercase();
            match tx.state.nicks.get(&new_key) {
                Some(&owner) if owner != id => return Err(NickError::Taken(new.to_owned()).into()),
                _ if *old == *new => return Err(CommandError::SameNick(old.to_string())),
                _ => {}
            }
            let old_key = old.to_ascii_lowercase();
            tx.state.nicks.remove(&old_key);
            if let Some(until) = tx.state.mutes.remove(&old_key) {
                tx.state.mutes.insert(new_key.clone(), until);
            }
            tx.state.nicks.insert(new_key, id);
            let new: Arc<str> = new.into();
            if let Some(member) = tx.state.members.get_mut(&id) {
                member.nick = new.clone();
            }
            let line = tx.line(format_args!("* {old} is now known as {new}"));
            tx.broadcast(&room, None, &line);
            tx.record(
                EventKind::Nick,
                id,
                &room,
                &old,
                None,
                Some(new.to_string()),
            );
            Ok(())
        })
    }

    /// `/join ROOM`, with `room` already normalized.
    pub fn join(&self, id: ConnId, room: &str) -> Result<(), CommandError> {
        self.with_state(|tx| {
            let Some((nick, old)) = tx.name_and_room(id) else {
                return Ok(());
            };
            if *old == *room {
                return Err(CommandError::AlreadyInRoom(room.to_owned()));
            }
            let max_rooms = self.config.limits.max_rooms;
            // The room being left does not count if it is about to vanish.
            let old_vanishes = tx
                .state
                .rooms
                .get(&old)
                .is_some_and(|r| !r.permanent && r.members.len() == 1);
            let rooms_after = tx.state.rooms.len() - usize::from(old_vanishes);
            if !tx.state.rooms.contains_key(room) && rooms_after >= max_rooms {
                return Err(CommandError::TooManyRooms(max_rooms));
            }
            tx.leave_room(id, &nick, &old, &format!("joined #{room}"));
            let room: Arc<str> = room.into();
            if let Some(member) = tx.state.members.get_mut(&id) {
                member.room = room.clone();
            }
            let others = others(tx.room_size(&room));
            tx.tell(id, format_args!("* You are now in #{room} with {others}."));
            tx.enter_room(id, &nick, &room);
            Ok(())
        })
    }

    /// `/help`: the commands, and the instructor's too for an instructor.
    pub fn help(&self, id: ConnId) {
        self.with_state(|tx| {
            let instructor = tx.state.members.get(&id).is_some_and(|m| m.instructor);
            let extra = if instructor {
                protocol::INSTRUCTOR_HELP
            } else {
                &[]
            };
            for line in protocol::HELP.iter().chain(extra) {
                tx.tell(id, format_args!("= {line}"));
            }
        });
    }

    /// Whether no member has this name, compared case-insensitively.
    pub fn is_name_free(&self, nick: &str) -> bool {
        !self.lock().nicks.contains_key(&nick.to_ascii_lowercase())
    }

    /// Sends one line to `id` alone: a `!` error, an `=` answer, a `*` notice.
    pub fn tell(&self, id: ConnId, body: fmt::Arguments<'_>) {
        self.with_state(|tx| tx.tell(id, body));
    }

    /// `/quit`: says goodbye to `id`, then removes it.
    pub fn quit(&self, id: ConnId, reason: Option<String>) {
        self.with_state(|tx| {
            let Some((nick, _)) = tx.name_and_room(id) else {
                return;
            };
            tx.tell(id, format_args!("* Goodbye, {nick}."));
            tx.remove(id, &LeaveReason::Quit(reason));
        });
    }

    /// Removes `id` if it is still a member, telling its room why. Safe to call twice:
    /// every departure produces exactly one leave notice.
    pub fn leave(&self, id: ConnId, reason: LeaveReason) {
        self.with_state(|tx| tx.remove(id, &reason));
    }

    /// Starts a shutdown: every member is told, and from now on departures are
    /// recorded without notices to the others.
    pub fn shutdown(&self) {
        self.with_state(|tx| {
            tx.state.shutting_down = true;
            tx.tell_everyone(format_args!("* Server is shutting down."));
        });
    }

    /// How many members there are now.
    pub fn member_count(&self) -> usize {
        self.lock().members.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics on a client's input; should a bug do so, the
        // chat is better served by going on with the state as it is than by stopping.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` under the lock, then removes the members found too slow meanwhile.
    fn with_state<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let mut state = self.lock();
        let mut tx = Txn {
            state: &mut state,
            hub: self,
            ts_ms: self.clock.now_ms(),
            too_slow: Vec::new(),
        };
        let result = f(&mut tx);
        while let Some(id) = tx.too_slow.pop() {
            tx.remove(id, &LeaveReason::TooSlow);
        }
        result
    }
}

/// "0 others", "1 other", "2 others".
fn others(count: usize) -> String {
    match count {
        1 => "1 other".to_owned(),
        n => format!("{n} others"),
    }
}

/// One locked change of the hub's state, with its single timestamp.
struct Txn<'a> {
    state: &'a mut State,
    hub: &'a Hub,
    ts_ms: i64,
    /// Members whose queue was full; removed before the lock is released.
    too_slow: Vec<ConnId>,
}

impl Txn<'_> {
    fn name_and_room(&self, id: ConnId) -> Option<(Arc<str>, Arc<str>)> {
        let member = self.state.members.get(&id)?;
        Some((member.nick.clone(), member.room.clone()))
    }

    /// Refuses a line from a muted member, or from a student in quiet mode unless
    /// it is a private message to an instructor.
    fn check_may_talk(&mut self, id: ConnId, to_instructor: bool) -> Result<(), CommandError> {
        let Some(member) = self.state.members.get(&id) else {
            return Ok(());
        };
        let instructor = member.instructor;
        // Every chat line passes here: look a name up only when someone is muted.
        let key = match self.state.mutes.is_empty() {
            true => String::new(),
            false => member.nick.to_ascii_lowercase(),
        };
        if let Some(&until) = self.state.mutes.get(&key) {
            let now = Instant::now();
            if until > now {
                let minutes = (until - now).as_secs().div_ceil(60);
                return Err(CommandError::Muted(
                    (minutes < moderation::FOREVER_MINUTES).then_some(minutes),
                ));
            }
            self.state.mutes.remove(&key);
        }
        if self.state.quiet && !instructor && !to_instructor {
            return Err(CommandError::QuietMode);
        }
        Ok(())
    }

    /// The member called `nick` (any case) and its name as spelled.
    fn find(&self, nick: &str) -> Result<(ConnId, Arc<str>), CommandError> {
        self.state
            .nicks
            .get(&nick.to_ascii_lowercase())
            .and_then(|id| Some((*id, self.state.members.get(id)?.nick.clone())))
            .ok_or_else(|| CommandError::NoSuchUser(nick.to_owned()))
    }

    fn tell_everyone(&mut self, body: std::fmt::Arguments<'_>) {
        let line = self.line(body);
        let ids: Vec<ConnId> = self.state.members.keys().copied().collect();
        for id in ids {
            self.send(id, line.clone());
        }
    }

    fn room_size(&self, room: &str) -> usize {
        self.state.rooms.get(room).map_or(0, |r| r.members.len())
    }

    fn line(&self, body: fmt::Arguments<'_>) -> Bytes {
        self.hub.clock.line(self.ts_ms, body)
    }

    fn tell(&mut self, id: ConnId, body: fmt::Arguments<'_>) {
        let line = self.line(body);
        self.send(id, line);
    }

    fn send(&mut self, id: ConnId, line: Bytes) {
        let Some(member) = self.state.members.get(&id) else {
            return;
        };
        if member.outbox.try_send(Outbound::Line(line)).is_err() {
            self.too_slow.push(id);
        }
    }

    /// Sends `line` to everyone in `room` but `except`.
    fn broadcast(&mut self, room: &str, except: Option<ConnId>, line: &Bytes) {
        let Some(room) = self.state.rooms.get(room) else {
            return;
        };
        for (id, outbox) in &room.members {
            if Some(*id) != except && outbox.try_send(Outbound::Line(line.clone())).is_err() {
                self.too_slow.push(*id);
            }
        }
    }

    fn record(
        &self,
        kind: EventKind,
        session: ConnId,
        room: &Arc<str>,
        sender: &Arc<str>,
        recipient: Option<Arc<str>>,
        text: Option<String>,
    ) {
        self.hub.store.record(Event {
            ts_ms: self.ts_ms,
            kind,
            room: room.clone(),
            sender: sender.clone(),
            recipient,
            text,
            session,
        });
    }

    /// Puts `id` into `room` (created if new), announces it and queues the replay.
    fn enter_room(&mut self, id: ConnId, nick: &Arc<str>, room: &Arc<str>) {
        let line = self.line(format_args!("* {nick} has joined #{room}"));
        self.broadcast(room, None, &line);
        let Some(outbox) = self.state.members.get(&id).map(|m| m.outbox.clone()) else {
            return;
        };
        let replay_lines = self.hub.config.history.replay_lines;
        if replay_lines > 0 {
            let history = self.hub.store.history(room.clone(), replay_lines);
            let replay = Outbound::Replay {
                ts_ms: self.ts_ms,
                room: room.clone(),
                history,
            };
            if outbox.try_send(replay).is_err() {
                self.too_slow.push(id);
            }
        }
        self.state
            .rooms
            .entry(room.clone())
            .or_insert_with(|| Room {
                members: Vec::new(),
                permanent: false,
            })
            .members
            .push((id, outbox));
        self.record(EventKind::Join, id, room, nick, None, None);
    }

    /// Takes `id` out of `room`, tells the others why, and drops the room if it is
    /// empty and not permanent.
    fn leave_room(&mut self, id: ConnId, nick: &Arc<str>, room: &Arc<str>, reason: &str) {
        let Some(entry) = self.state.rooms.get_mut(room) else {
            return;
        };
        entry.members.retain(|(member, _)| *member != id);
        if entry.members.is_empty() && !entry.permanent {
            self.state.rooms.remove(room);
        } else if !self.state.shutting_down {
            let line = self.line(format_args!("* {nick} has left #{room} ({reason})"));
            self.broadcast(room, None, &line);
        }
        self.record(
            EventKind::Leave,
            id,
            room,
            nick,
            None,
            Some(reason.to_owned()),
        );
    }

    fn remove(&mut self, id: ConnId, reason: &LeaveReason) {
        let Some(member) = self.state.members.remove(&id) else {
            return;
        };
        self.state.nicks.remove(&member.nick.to_ascii_lowercase());
        self.leave_room(id, &member.nick, &member.room, &reason.to_string());
        if matches!(reason, LeaveReason::TooSlow | LeaveReason::Kicked(_)) {
            member.dropped.cancel();
        }
    }
}
