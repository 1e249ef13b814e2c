//! The room manager as a state machine: who is connected, under which name, in
//! which room, and what each action means for everyone.
//!
//! The hub does no I/O and reads no clock. Each operation takes the time as an
//! argument and returns an [`Outcome`]: the lines to deliver and to whom, the events
//! to record, and the members whose connection must close. The
//! [`Switchboard`](crate::switchboard::Switchboard) applies outcomes (queues the
//! lines, records the events); front ends never touch the hub directly. So the
//! hub's rules are tested in microseconds without sockets, threads or a database,
//! and a cluster node is the same hub with a different switchboard.
//!
//! The instructor commands live in `moderation`, the in-memory history in
//! `history`.

mod classroom;
mod history;
mod moderation;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::Config;
use crate::event::{Event, EventKind, HistoryLine};
use crate::protocol::{
    self, Answer, Command, CommandError, DmPolicy, LeaveReason, Name, NickError, Notice, Role,
    ServerLine, Stamped, WhoEntry,
};

pub use classroom::{LiveHand, LivePoll, LiveQuestion, LiveSession, RoomTools};
pub use history::History;

/// The longest `/away` reason kept, in bytes (IRC's `AWAYLEN`).
pub const AWAY_LEN: usize = 200;

/// The away reason of a student who may not talk to the room now.
const SILENT_AWAY: &str = "away";

/// Identifies one connection; also its `session` in the database.
pub type ConnId = i64;

/// Who gets a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// One member (or a connection still logging in).
    One(ConnId),
    /// Everyone in a room, perhaps but one.
    Room {
        /// The room.
        room: Name,
        /// The member left out (the sender of a chat line).
        except: Option<ConnId>,
    },
    /// Every member in every room.
    Everyone,
}

/// One line for an audience.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who gets it.
    pub to: Audience,
    /// The line, stamped with when it happened.
    pub line: Arc<Stamped>,
}

/// What an operation did, in the order it happened.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Lines to queue, in this order.
    pub deliveries: Vec<Delivery>,
    /// Events to record, in this order.
    pub events: Vec<Event>,
    /// Members removed by someone else (kicked): their connections must close.
    pub closed: Vec<ConnId>,
    /// Members who left the chat (not just a room), with their names and why.
    pub departed: Vec<(ConnId, Name, LeaveReason)>,
}

/// What the hub takes from the configuration.
#[derive(Debug, Clone, Hash)]
pub struct Settings {
    /// Where everyone starts.
    pub default_room: Name,
    /// Rooms that exist even when empty.
    pub permanent_rooms: Vec<Name>,
    /// Rooms at once.
    pub max_rooms: usize,
    /// Chat lines replayed on joining a room.
    pub replay_lines: usize,
    /// Longest name.
    pub max_nick_len: usize,
    /// Names nobody may take.
    pub reserved_nicks: Vec<String>,
    /// Names only an instructor may take (`access.instructors`): one logs in
    /// under them with the instructor password, and no student `/nick`s to them.
    pub instructor_names: Vec<String>,
    /// How long a kick keeps its target out (`access.kick_minutes`), in ms.
    pub kick_ms: i64,
    /// Rooms above this many members sum up joins and leaves; 0 = never.
    pub announce_joins_up_to: usize,
    /// Whom students may message privately at start (`/dm` changes it).
    pub private_messages: DmPolicy,
}

impl Settings {
    /// A number that differs when the rules differ, for cluster nodes to compare
    /// theirs: two copies of the hub with other limits would part ways.
    pub fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::hash::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// Small settings for the tests: `#lobby` only, four rooms, three lines of
    /// history, nobody reserved, joins always announced.
    #[cfg(test)]
    pub fn example() -> Settings {
        Settings {
            default_room: "lobby".into(),
            permanent_rooms: vec!["lobby".into()],
            max_rooms: 4,
            replay_lines: 3,
            max_nick_len: 16,
            reserved_nicks: vec![],
            instructor_names: vec![],
            kick_ms: 600_000,
            announce_joins_up_to: 0,
            private_messages: DmPolicy::Everyone,
        }
    }

    /// The hub's part of a configuration.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            default_room: config.server.default_room.as_str().into(),
            permanent_rooms: config
                .permanent_rooms()
                .into_iter()
                .map(|r| r.into())
                .collect(),
            max_rooms: config.limits.max_rooms,
            replay_lines: config.history.replay_lines,
            max_nick_len: config.limits.max_nick_len,
            reserved_nicks: config.server.reserved_nicks.clone(),
            instructor_names: config.access.instructors.clone(),
            kick_ms: config.access.kick_minutes as i64 * 60_000,
            announce_joins_up_to: config.limits.announce_joins_up_to,
            private_messages: config.access.private_messages,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Member {
    nick: Name,
    room: Name,
    instructor: bool,
    /// A teaching assistant: staff for every command, not an instructor.
    assistant: bool,
    guest: bool,
    /// The roster account; `None` without a roster.
    account: Option<Name>,
    /// Logged in to a rostered class: names come from the roster.
    rostered: bool,
    /// Where it connected from, for a kick to hold against the address.
    address: Option<IpAddr>,
    /// Why it is away (`/away TEXT`); `None` while here. Kept in the hub, not
    /// the front end, so every node and every client sees the same.
    #[serde(default)]
    away: Option<String>,
}

/// Who a new member is, as the login found out.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// The roster account (the roster name), if the class has a roster.
    pub account: Option<Name>,
    /// An instructor from log-in: on the roster as one, or a reserved
    /// instructor name whose password was given.
    pub instructor: bool,
    /// A teaching assistant from the roster: staff, like an instructor.
    #[serde(default)]
    pub assistant: bool,
    /// Not on the roster of a rostered class.
    pub guest: bool,
    /// The class has a roster: names come from it, `/nick` is refused.
    pub rostered: bool,
    /// The address it connected from.
    #[serde(default)]
    pub address: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Room {
    members: Vec<ConnId>,
    permanent: bool,
    /// Students who joined and left since the last summary, in a big room.
    arrived: Crowd,
    departed: Crowd,
    /// Raised hands, first first.
    hands: Vec<classroom::RaisedHand>,
    /// The open poll, if any.
    poll: Option<classroom::Poll>,
    /// The class session running in the room, if staff started one.
    #[serde(default)]
    session: Option<classroom::Session>,
    /// The last questions asked with `/ask`, with their authors, for staff.
    #[serde(default)]
    questions: std::collections::VecDeque<classroom::Asked>,
}

impl Room {
    fn new(permanent: bool) -> Room {
        Room {
            members: Vec::new(),
            permanent,
            arrived: Crowd::default(),
            departed: Crowd::default(),
            hands: Vec::new(),
            poll: None,
            session: None,
            questions: Default::default(),
        }
    }
}

/// Names in a summary of a big room's joins or leaves; the rest are counted.
const CROWD_NAMES: usize = 3;

/// Joins or leaves not yet announced: how many, and the first few names. A
/// thousand people joining hold three names here, not a thousand.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Crowd {
    count: usize,
    names: Vec<Name>,
}

impl Crowd {
    fn add(&mut self, nick: &Name) {
        self.count += 1;
        if self.names.len() < CROWD_NAMES {
            self.names.push(nick.clone());
        }
    }

    /// The summary, if anyone came (or went), and an empty crowd again.
    fn take(&mut self, room: &Name, joined: bool) -> Option<Notice> {
        let Crowd { count, names } = std::mem::take(self);
        (count > 0).then(|| Notice::Crowd {
            room: room.clone(),
            joined,
            count,
            names,
        })
    }
}

/// Why a member may not talk to the room. A silenced student cannot reach the room
/// another way either: no `/nick`, no `/quit` reason, no new room names.
enum Silence {
    Muted { minutes_left: Option<u64> },
    Quiet,
}

impl Silence {
    fn refusal(&self) -> CommandError {
        match self {
            Silence::Muted { .. } => CommandError::MutedNoNick,
            Silence::Quiet => CommandError::QuietNoNick,
        }
    }
}

/// The room manager; see the module docs.
pub struct Hub {
    settings: Settings,
    members: HashMap<ConnId, Member>,
    /// Lower-cased nick to its owner: names are unique case-insensitively.
    nicks: HashMap<String, ConnId>,
    rooms: BTreeMap<Name, Room>,
    history: History,
    shutting_down: bool,
    /// Only instructors may chat.
    quiet: bool,
    /// Muted names (lower-cased) and until when (UTC ms). Kept by name, not by
    /// connection, so reconnecting does not lift a mute.
    mutes: HashMap<String, i64>,
    /// Kicked names (lower-cased; the account too) and addresses, and until when
    /// (UTC ms) they may not log in again: a client that reconnects by itself
    /// does not undo a kick.
    kicked: HashMap<String, i64>,
    kicked_addresses: HashMap<IpAddr, i64>,
    /// Whom students may message privately now.
    dm: DmPolicy,
    /// Polls opened so far: the next one's number is one more.
    polls: u32,
}

/// Everything a hub knows but its settings, as a value: what a cluster node's
/// snapshot holds (see [`crate::cluster::snapshot`]), so that a starting node
/// need not replay the whole stream to know it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Saved {
    members: HashMap<ConnId, Member>,
    nicks: HashMap<String, ConnId>,
    rooms: BTreeMap<Name, Room>,
    history: History,
    shutting_down: bool,
    quiet: bool,
    mutes: HashMap<String, i64>,
    kicked: HashMap<String, i64>,
    kicked_addresses: HashMap<IpAddr, i64>,
    dm: DmPolicy,
    polls: u32,
}

impl Hub {
    /// A hub with the permanent rooms of `settings` and the history loaded from the
    /// record.
    pub fn new(settings: Settings, history: History) -> Hub {
        let rooms = settings
            .permanent_rooms
            .iter()
            .map(|name| (name.clone(), Room::new(true)))
            .collect();
        Hub {
            dm: settings.private_messages,
            settings,
            members: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            history,
            shutting_down: false,
            quiet: false,
            mutes: HashMap::new(),
            kicked: HashMap::new(),
            kicked_addresses: HashMap::new(),
            polls: 0,
        }
    }

    /// A copy of the state, to be saved (cloned while the caller holds the
    /// switchboard's lock; serialized elsewhere).
    pub fn save(&self) -> Saved {
        Saved {
            members: self.members.clone(),
            nicks: self.nicks.clone(),
            rooms: self.rooms.clone(),
            history: self.history.clone(),
            shutting_down: self.shutting_down,
            quiet: self.quiet,
            mutes: self.mutes.clone(),
            kicked: self.kicked.clone(),
            kicked_addresses: self.kicked_addresses.clone(),
            dm: self.dm,
            polls: self.polls,
        }
    }

    /// The hub `saved` describes, under `settings`: the state of the hub that was
    /// saved, with this configuration's permanent rooms and history length.
    pub fn restore(settings: Settings, saved: Saved) -> Hub {
        let Saved {
            members,
            nicks,
            mut rooms,
            mut history,
            shutting_down,
            quiet,
            mutes,
            kicked,
            kicked_addresses,
            dm,
            polls,
        } = saved;
        history.limit(settings.replay_lines);
        for name in &settings.permanent_rooms {
            rooms
                .entry(name.clone())
                .or_insert_with(|| Room::new(true))
                .permanent = true;
        }
        Hub {
            settings,
            members,
            nicks,
            rooms,
            history,
            shutting_down,
            quiet,
            mutes,
            kicked,
            kicked_addresses,
            dm,
            polls,
        }
    }

    /// The members of `room`, in the order they joined.
    pub fn room_members(&self, room: &str) -> &[ConnId] {
        self.rooms.get(room).map_or(&[], |r| &r.members)
    }

    /// The rules this hub applies.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Every member.
    pub fn member_ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.members.keys().copied()
    }

    /// Every room with its members' names and whether each is an instructor, rooms
    /// sorted by name and members in the order they joined: what the instructor
    /// page shows as live presence.
    pub fn rooms_snapshot(&self) -> Vec<(Name, Vec<(Name, bool)>)> {
        self.rooms
            .iter()
            .map(|(name, room)| {
                let members = room
                    .members
                    .iter()
                    .filter_map(|id| self.members.get(id))
                    .map(|m| (m.nick.clone(), m.instructor))
                    .collect();
                (name.clone(), members)
            })
            .collect()
    }

    /// How many members there are.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Removes erased lines, keyed `(room, ts_ms, sender)`, from the replay tails;
    /// see [`History::forget`].
    pub fn forget_history(
        &mut self,
        erased: &std::collections::HashSet<(String, i64, String)>,
    ) -> usize {
        self.history.forget(erased)
    }

    /// The roster account of whoever has `nick` now, if they have one.
    pub fn account_of(&self, nick: &str) -> Option<&Name> {
        let id = self.nicks.get(&nick.to_ascii_lowercase())?;
        self.members.get(id)?.account.as_ref()
    }

    /// The history `room` keeps, oldest first: at most `history.replay_lines`.
    pub fn history_of(&self, room: &str) -> Vec<HistoryLine> {
        self.history.last(room, self.settings.replay_lines)
    }

    /// Why whoever has `nick` now is away, if they are.
    pub fn away_of(&self, nick: &str) -> Option<&str> {
        let id = self.nicks.get(&nick.to_ascii_lowercase())?;
        self.members.get(id)?.away.as_deref()
    }

    /// A member's current name.
    pub fn nick(&self, id: ConnId) -> Option<&Name> {
        self.members.get(&id).map(|m| &m.nick)
    }

    /// A member's room.
    pub fn room(&self, id: ConnId) -> Option<&Name> {
        self.members.get(&id).map(|m| &m.room)
    }

    /// Checks the form of a username (not whether it is free).
    pub fn check_name(&self, nick: &str) -> Result<(), NickError> {
        protocol::check_nick(
            nick,
            self.settings.max_nick_len,
            &self.settings.reserved_nicks,
        )
    }

    /// Whether no member has this name, compared case-insensitively.
    pub fn is_name_free(&self, nick: &str) -> bool {
        !self.nicks.contains_key(&nick.to_ascii_lowercase())
    }

    /// The whole minutes (at least 1) until someone kicked may log in as `nick`
    /// again, or from `address` when the name is not proven by a code (a kicked
    /// student could otherwise come back under any free name; a classmate with
    /// their own code behind the same address is not kept out).
    pub fn kicked(
        &self,
        nick: &str,
        address: Option<IpAddr>,
        proven: bool,
        now: i64,
    ) -> Option<u64> {
        let by_name = self.kicked.get(&nick.to_ascii_lowercase()).copied();
        let by_address = address
            .filter(|_| !proven)
            .and_then(|ip| self.kicked_addresses.get(&ip).copied());
        let until = by_name.max(by_address).filter(|until| *until > now)?;
        Some(((until - now) as u64).div_ceil(60_000).max(1))
    }

    /// Whether `identity` may log in as `nick` now: the name is free, or its
    /// holder is the same person, who proved it with the same code (a roster
    /// account) or the instructor password (an instructor's name). A student
    /// whose Wi-Fi dropped is back at once, and the half-dead connection goes.
    pub fn may_register(&self, nick: &str, identity: &Identity) -> bool {
        match self.nicks.get(&nick.to_ascii_lowercase()) {
            None => true,
            Some(holder) => self.takes_over(*holder, nick, identity),
        }
    }

    fn takes_over(&self, holder: ConnId, nick: &str, identity: &Identity) -> bool {
        let Some(member) = self.members.get(&holder) else {
            return false;
        };
        match &identity.account {
            Some(account) => member.account.as_ref() == Some(account),
            None => identity.instructor && !identity.rostered && self.is_instructor_name(nick),
        }
    }

    /// One of `access.instructors`.
    fn is_instructor_name(&self, nick: &str) -> bool {
        self.settings
            .instructor_names
            .iter()
            .any(|name| name.eq_ignore_ascii_case(nick))
    }

    /// Adds a member under a name already checked by [`Hub::check_name`], puts it in
    /// the default room, welcomes it, replays the room's history and tells the room.
    pub fn register(
        &mut self,
        id: ConnId,
        nick: &str,
        identity: Identity,
        now: i64,
    ) -> Result<Outcome, NickError> {
        self.check_name(nick)?;
        let key = nick.to_ascii_lowercase();
        let mut out = Step::new(now);
        if let Some(&holder) = self.nicks.get(&key) {
            if !self.takes_over(holder, nick, &identity) {
                return Err(NickError::Taken(nick.to_owned()));
            }
            out.tell(holder, Notice::Replaced);
            self.remove(&mut out, holder, LeaveReason::Replaced);
            out.outcome.closed.push(holder);
        }
        let nick: Name = nick.into();
        let room = self.settings.default_room.clone();
        let identity_instructor = identity.instructor;
        self.nicks.insert(key, id);
        self.members.insert(
            id,
            Member {
                nick: nick.clone(),
                room: room.clone(),
                instructor: identity.instructor,
                assistant: identity.assistant,
                guest: identity.guest,
                account: identity.account,
                rostered: identity.rostered,
                address: identity.address,
                away: None,
            },
        );
        let others = self.room_size(&room);
        out.tell(
            id,
            Notice::Welcome {
                nick: nick.clone(),
                room: room.clone(),
                others,
            },
        );
        self.enter_room(&mut out, id, &nick, &room);
        if identity_instructor {
            // Recorded as an `/op` would be, so the report marks the instructor.
            self.record(&mut out, EventKind::Op, id, &room, &nick, None, None);
        }
        if self.shutting_down {
            // Got in just as the server stopped: it must hear why it is closed.
            out.tell(id, Notice::ShuttingDown);
        }
        Ok(out.done())
    }

    /// Carries out one command or chat line from member `id`. `/op` is not handled
    /// here: its password is checked outside, then [`Hub::op`] is called.
    pub fn perform(
        &mut self,
        id: ConnId,
        command: Command,
        now: i64,
    ) -> Result<Outcome, CommandError> {
        let mut out = Step::new(now);
        match command {
            Command::Nick(new) => self.rename(&mut out, id, &new)?,
            Command::Msg { to, text } => self.private(&mut out, id, &to, text)?,
            Command::Who => self.who(&mut out, id),
            Command::Join(room) => self.join(&mut out, id, &room)?,
            Command::Rooms => self.rooms(&mut out, id),
            Command::Help => self.help(&mut out, id),
            Command::Quit(reason) => self.quit(&mut out, id, reason),
            Command::Kick { nick, reason } => self.kick(&mut out, id, &nick, reason)?,
            Command::Mute { nick, minutes } => self.mute(&mut out, id, &nick, minutes)?,
            Command::Unmute(nick) => self.unmute(&mut out, id, &nick)?,
            Command::Announce(text) => self.announce(&mut out, id, text)?,
            Command::Quiet(on) => self.quiet(&mut out, id, on)?,
            Command::Dm(policy) => self.set_dm(&mut out, id, policy)?,
            Command::Hand(text) => self.hand(&mut out, id, text)?,
            Command::Hands => self.hands(&mut out, id)?,
            Command::Next => self.next_hand(&mut out, id)?,
            Command::Poll { question, choices } => {
                self.open_poll(&mut out, id, question, choices)?
            }
            Command::ClosePoll => self.close_poll(&mut out, id)?,
            Command::Vote(choice) => self.vote(&mut out, id, choice)?,
            Command::Ask(text) => self.ask(&mut out, id, text)?,
            Command::StartSession(title) => self.start_session(&mut out, id, title)?,
            Command::EndSession => self.end_session(&mut out, id)?,
            Command::Me(text) => self.say(&mut out, id, &text, true)?,
            Command::Away(text) => self.away(&mut out, id, text),
            Command::Op(_) => return Err(CommandError::PermissionDenied),
        }
        Ok(out.done())
    }

    /// A chat line from `id` to its room.
    pub fn chat(&mut self, id: ConnId, text: &str, now: i64) -> Result<Outcome, CommandError> {
        let mut out = Step::new(now);
        self.say(&mut out, id, text, false)?;
        Ok(out.done())
    }

    /// A chat line, or with `action` a `/me`, from `id` to its room. An action
    /// goes to its author too: nothing else shows a line user it was done (IRC
    /// writers leave out their own client's, which shows it already).
    fn say(
        &mut self,
        out: &mut Step,
        id: ConnId,
        text: &str,
        action: bool,
    ) -> Result<(), CommandError> {
        let Some((nick, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        self.check_may_talk(id, false, out.now)?;
        let text: Arc<str> = text.into();
        self.history.push(
            &room,
            HistoryLine {
                ts_ms: out.now,
                sender: nick.clone(),
                text: text.clone(),
                action,
            },
        );
        let (line, except, kind) = if action {
            let notice = Notice::Action {
                nick: nick.clone(),
                text: text.clone(),
            };
            (ServerLine::Notice(notice), None, EventKind::Action)
        } else {
            let line = ServerLine::Chat {
                from: nick.clone(),
                text: text.clone(),
            };
            (line, Some(id), EventKind::Chat)
        };
        out.for_room(&room, except, line);
        self.record(out, kind, id, &room, &nick, None, Some(text.to_string()));
        Ok(())
    }

    /// Removes `id` if it is still a member, telling its room why. Safe to call
    /// twice: every departure produces exactly one leave notice.
    pub fn leave(&mut self, id: ConnId, reason: LeaveReason, now: i64) -> Outcome {
        let mut out = Step::new(now);
        self.remove(&mut out, id, reason);
        out.done()
    }

    /// Removes a member whose roster code was revoked: it is told why, and its
    /// connection closes.
    pub fn revoke(&mut self, id: ConnId, now: i64) -> Outcome {
        let mut out = Step::new(now);
        if self.members.contains_key(&id) {
            out.tell(id, Notice::CodeChanged);
            self.remove(&mut out, id, LeaveReason::Revoked);
            out.outcome.closed.push(id);
        }
        out.done()
    }

    /// The members logged in under roster account `account` (any case).
    pub fn members_of(&self, account: &str) -> Vec<ConnId> {
        let mut ids: Vec<ConnId> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.account
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(account))
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Starts a shutdown: every member is told, and from now on departures are
    /// recorded without notices to the others.
    pub fn shutdown(&mut self, now: i64) -> Outcome {
        self.shutting_down = true;
        let mut out = Step::new(now);
        out.for_everyone(ServerLine::Notice(Notice::ShuttingDown));
        out.done()
    }

    /// `/msg TO TEXT`.
    fn private(
        &mut self,
        out: &mut Step,
        id: ConnId,
        to: &str,
        text: String,
    ) -> Result<(), CommandError> {
        let Some((nick, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        let (target, target_nick) = self.find(to)?;
        let to_staff = self.is_staff(target);
        self.check_may_talk(id, to_staff, out.now)?;
        self.check_dm(id, to_staff)?;
        let shared: Arc<str> = text.as_str().into();
        out.for_one(
            target,
            ServerLine::PmFrom {
                from: nick.clone(),
                text: shared.clone(),
            },
        );
        out.for_one(
            id,
            ServerLine::PmTo {
                to: target_nick.clone(),
                text: shared,
            },
        );
        // The message is delivered all the same; the sender learns why no
        // answer may come soon (IRC's `301`).
        if let Some(away) = self.members.get(&target).and_then(|m| m.away.clone()) {
            let notice = Notice::IsAway {
                nick: target_nick.clone(),
                text: away,
            };
            out.tell(id, notice);
        }
        self.record(
            out,
            EventKind::Private,
            id,
            &room,
            &nick,
            Some(target_nick),
            Some(text),
        );
        Ok(())
    }

    /// `/away [TEXT]`: marks `id` away with why, or back without. Its room is
    /// told (only IRC clients with `away-notify` are sent it; see the
    /// switchboard). Nothing is recorded: being away says nothing of the class.
    fn away(&mut self, out: &mut Step, id: ConnId, text: Option<String>) {
        // A silenced student does not reach the room through its away reason
        // either; clients that go away by themselves still may, without words.
        let silenced = self.silenced(id, out.now).is_some();
        let text = text.map(|mut text| {
            if silenced {
                return SILENT_AWAY.to_owned();
            }
            // A reason fits in one IRC line with the name it goes with.
            let mut end = text.len().min(AWAY_LEN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text
        });
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        let changed = member.away != text;
        member.away = text.clone();
        let (nick, room) = (member.nick.clone(), member.room.clone());
        out.tell(id, Notice::AwaySet(text.is_some()));
        if changed {
            let notice = Notice::AwayChanged { nick, text };
            out.for_room(&room, Some(id), ServerLine::Notice(notice));
        }
    }

    /// `/who`: the members of `id`'s room, sorted case-insensitively.
    fn who(&self, out: &mut Step, id: ConnId) {
        if let Some(answer) = self.who_answer(id) {
            out.for_one(id, ServerLine::Answer(answer));
        }
    }

    /// The answer to `/who` for member `id`: its room and who is in it, sorted
    /// case-insensitively.
    pub fn who_answer(&self, id: ConnId) -> Option<Answer> {
        let (_, room) = self.name_and_room(id)?;
        let mut members: Vec<WhoEntry> = self
            .room_members(&room)
            .iter()
            .filter_map(|member| self.members.get(member))
            .map(|member| WhoEntry {
                nick: member.nick.clone(),
                away: member.away.is_some(),
                role: match member {
                    m if m.instructor => Some(Role::Instructor),
                    m if m.assistant => Some(Role::Assistant),
                    m if m.guest => Some(Role::Guest),
                    _ => None,
                },
            })
            .collect();
        members.sort_by_cached_key(|entry| entry.nick.to_ascii_lowercase());
        Some(Answer::Who { room, members })
    }

    /// `/rooms`: every room with its head count, sorted by name.
    fn rooms(&self, out: &mut Step, id: ConnId) {
        out.for_one(id, ServerLine::Answer(self.rooms_answer()));
    }

    /// The answer to `/rooms`.
    pub fn rooms_answer(&self) -> Answer {
        let rooms = self
            .rooms
            .iter()
            .map(|(name, room)| (name.clone(), room.members.len()))
            .collect();
        Answer::Rooms(rooms)
    }

    /// `/nick NEW`.
    fn rename(&mut self, out: &mut Step, id: ConnId, new: &str) -> Result<(), CommandError> {
        if self.members.get(&id).is_some_and(|m| m.rostered) {
            return Err(CommandError::RosterNames);
        }
        if let Some(silence) = self.silenced(id, out.now) {
            return Err(silence.refusal());
        }
        self.check_name(new)?;
        let instructor = self.members.get(&id).is_some_and(|m| m.instructor);
        if !instructor && self.is_instructor_name(new) {
            return Err(NickError::Reserved(new.to_owned()).into());
        }
        let Some((old, room)) = self.name_and_room(id) else {
            return Ok(());
        };
        let new_key = new.to_ascii_lowercase();
        match self.nicks.get(&new_key) {
            Some(&owner) if owner != id => return Err(NickError::Taken(new.to_owned()).into()),
            _ if *old == *new => return Err(CommandError::SameNick(old.to_string())),
            _ => {}
        }
        // A muted member cannot get here: its mute stays on the name it has.
        self.nicks.remove(&old.to_ascii_lowercase());
        self.nicks.insert(new_key, id);
        let new: Name = new.into();
        if let Some(member) = self.members.get_mut(&id) {
            member.nick = new.clone();
        }
        out.for_room(
            &room,
            None,
            ServerLine::Notice(Notice::Renamed {
                old: old.clone(),
                new: new.clone(),
            }),
        );
        self.record(
            out,
            EventKind::Nick,
            id,
            &room,
            &old,
            None,
            Some(new.to_string()),
        );
        Ok(())
    }

    /// `/join ROOM`, with `room` already normalized.
    fn join(&mut self, out: &mut Step, id: ConnId, room: &str) -> Result<(), CommandError> {
        let Some((nick, old)) = self.name_and_room(id) else {
            return Ok(());
        };
        if *old == *room {
            return Err(CommandError::AlreadyInRoom(room.to_owned()));
        }
        let max_rooms = self.settings.max_rooms;
        // The room being left does not count if it is about to vanish.
        let old_vanishes = self
            .rooms
            .get(&old)
            .is_some_and(|r| !r.permanent && r.members.len() == 1);
        let rooms_after = self.rooms.len() - usize::from(old_vanishes);
        if !self.rooms.contains_key(room) {
            if self.silenced(id, out.now).is_some() {
                return Err(CommandError::NoNewRooms);
            }
            if rooms_after >= max_rooms {
                return Err(CommandError::TooManyRooms(max_rooms));
            }
        }
        let room: Name = room.into();
        self.leave_room(out, id, &nick, &old, LeaveReason::Moved(room.clone()));
        if let Some(member) = self.members.get_mut(&id) {
            member.room = room.clone();
        }
        let others = self.room_size(&room);
        out.tell(
            id,
            Notice::Moved {
                room: room.clone(),
                others,
            },
        );
        self.enter_room(out, id, &nick, &room);
        Ok(())
    }

    /// `/help`: the commands, and the instructor's too for an instructor.
    fn help(&self, out: &mut Step, id: ConnId) {
        let extra = if self.is_staff(id) {
            protocol::line::INSTRUCTOR_HELP
        } else {
            &[]
        };
        for line in protocol::line::HELP.iter().chain(extra) {
            out.for_one(id, ServerLine::Answer(Answer::Help((*line).to_owned())));
        }
    }

    /// `/quit`: says goodbye to `id`, then removes it.
    fn quit(&mut self, out: &mut Step, id: ConnId, reason: Option<String>) {
        let Some((nick, _)) = self.name_and_room(id) else {
            return;
        };
        out.tell(id, Notice::Goodbye { nick });
        let reason = reason.filter(|_| self.silenced(id, out.now).is_none());
        self.remove(out, id, LeaveReason::Quit(reason));
    }

    fn name_and_room(&self, id: ConnId) -> Option<(Name, Name)> {
        let member = self.members.get(&id)?;
        Some((member.nick.clone(), member.room.clone()))
    }

    /// Refuses a line from a muted member, or from a student in quiet mode, unless
    /// it is a private message to an instructor.
    fn check_may_talk(
        &mut self,
        id: ConnId,
        to_instructor: bool,
        now: i64,
    ) -> Result<(), CommandError> {
        match self.silenced(id, now) {
            _ if to_instructor => Ok(()),
            Some(Silence::Muted { minutes_left }) => Err(CommandError::Muted(minutes_left)),
            Some(Silence::Quiet) => Err(CommandError::QuietMode),
            None => Ok(()),
        }
    }

    /// Whether `id` may not talk to the room now, and why.
    fn silenced(&mut self, id: ConnId, now: i64) -> Option<Silence> {
        let member = self.members.get(&id)?;
        // Every chat line passes here: look a name up only when someone is muted.
        if !self.mutes.is_empty() {
            let key = member.nick.to_ascii_lowercase();
            if let Some(&until) = self.mutes.get(&key) {
                if until > now {
                    let minutes = ((until - now) as u64).div_ceil(60_000);
                    let minutes_left = (minutes < moderation::FOREVER_MINUTES).then_some(minutes);
                    return Some(Silence::Muted { minutes_left });
                }
                self.mutes.remove(&key);
            }
        }
        (self.quiet && !member.instructor && !member.assistant).then_some(Silence::Quiet)
    }

    /// The member called `nick` (any case) and its name as spelled.
    fn find(&self, nick: &str) -> Result<(ConnId, Name), CommandError> {
        self.nicks
            .get(&nick.to_ascii_lowercase())
            .and_then(|id| Some((*id, self.members.get(id)?.nick.clone())))
            .ok_or_else(|| CommandError::NoSuchUser(nick.to_owned()))
    }

    fn room_size(&self, room: &str) -> usize {
        self.room_members(room).len()
    }

    /// Whether `id` comes or goes unannounced, one of a crowd: a student in a
    /// room of `size` members, above `limits.announce_joins_up_to`. Staff are
    /// always announced.
    fn in_crowd(&self, id: ConnId, size: usize) -> bool {
        let limit = self.settings.announce_joins_up_to;
        limit > 0 && size > limit && !self.is_staff(id)
    }

    /// The summaries of the joins and leaves of big rooms since the last ones
    /// (SPEC 2), one line of each to the room's members; called every
    /// `limits.announce_every_secs`. Each join and leave was recorded when it
    /// happened.
    pub fn announce_crowds(&mut self, now: i64) -> Outcome {
        let mut out = Step::new(now);
        for (name, room) in &mut self.rooms {
            for (crowd, joined) in [(&mut room.arrived, true), (&mut room.departed, false)] {
                if let Some(notice) = crowd.take(name, joined) {
                    out.for_room(name, None, ServerLine::Notice(notice));
                }
            }
        }
        out.done()
    }

    /// Puts `id` into `room` (created if new), announces it and replays the room's
    /// history to it.
    fn enter_room(&mut self, out: &mut Step, id: ConnId, nick: &Name, room: &Name) {
        if self.in_crowd(id, self.room_size(room) + 1) {
            if let Some(entry) = self.rooms.get_mut(room) {
                entry.arrived.add(nick);
            }
        } else {
            // Audiences are resolved once the operation is over, when the
            // newcomer is already a member: leave it out explicitly.
            out.for_room(
                room,
                Some(id),
                ServerLine::Notice(Notice::Joined {
                    nick: nick.clone(),
                    room: room.clone(),
                }),
            );
            // IRC's away-notify: a newcomer who is away says so after its JOIN.
            if let Some(text) = self.members.get(&id).and_then(|m| m.away.clone()) {
                let notice = Notice::AwayChanged {
                    nick: nick.clone(),
                    text: Some(text),
                };
                out.for_room(room, Some(id), ServerLine::Notice(notice));
            }
        }
        let lines = self.history.last(room, self.settings.replay_lines);
        if !lines.is_empty() {
            out.tell(
                id,
                Notice::HistoryStart {
                    room: room.clone(),
                    count: lines.len(),
                },
            );
            for line in lines {
                let chat = if line.action {
                    ServerLine::Notice(Notice::Action {
                        nick: line.sender.clone(),
                        text: line.text.clone(),
                    })
                } else {
                    ServerLine::Chat {
                        from: line.sender.clone(),
                        text: line.text.clone(),
                    }
                };
                out.deliver(Audience::One(id), Stamped::new(line.ts_ms, chat));
            }
            out.tell(id, Notice::HistoryEnd);
        }
        self.rooms
            .entry(room.clone())
            .or_insert_with(|| Room::new(false))
            .members
            .push(id);
        self.record(out, EventKind::Join, id, room, nick, None, None);
    }

    /// Takes `id` out of `room`, tells the others why, and drops the room if it is
    /// empty and not permanent.
    fn leave_room(
        &mut self,
        out: &mut Step,
        id: ConnId,
        nick: &Name,
        room: &Name,
        reason: LeaveReason,
    ) {
        let crowd = self.in_crowd(id, self.room_size(room));
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        entry.members.retain(|member| *member != id);
        entry.hands.retain(|hand| hand.id != id);
        let text = reason.to_string();
        if entry.members.is_empty() && !entry.permanent {
            self.rooms.remove(room);
        } else if crowd {
            entry.departed.add(nick);
        } else if !self.shutting_down {
            let notice = Notice::Left {
                nick: nick.clone(),
                room: room.clone(),
                reason,
            };
            out.for_room(room, None, ServerLine::Notice(notice));
        }
        self.record(out, EventKind::Leave, id, room, nick, None, Some(text));
    }

    fn remove(&mut self, out: &mut Step, id: ConnId, reason: LeaveReason) {
        let Some((nick, room)) = self.name_and_room(id) else {
            return;
        };
        // Recorded while still a member, so the leave carries its account.
        self.leave_room(out, id, &nick, &room, reason.clone());
        out.outcome.departed.push((id, nick.clone(), reason));
        self.members.remove(&id);
        self.nicks.remove(&nick.to_ascii_lowercase());
    }

    /// Adds an event done by member `id` (its account looked up here).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        out: &mut Step,
        kind: EventKind,
        session: ConnId,
        room: &Name,
        sender: &Name,
        recipient: Option<Name>,
        text: Option<String>,
    ) {
        let account = self.members.get(&session).and_then(|m| m.account.clone());
        out.outcome.events.push(Event {
            ts_ms: out.now,
            kind,
            room: room.clone(),
            sender: sender.clone(),
            recipient,
            text,
            session,
            account,
        });
    }
}

/// An [`Outcome`] being built, with the one timestamp of its operation.
struct Step {
    now: i64,
    outcome: Outcome,
}

impl Step {
    fn new(now: i64) -> Step {
        Step {
            now,
            outcome: Outcome::default(),
        }
    }

    fn done(self) -> Outcome {
        self.outcome
    }

    fn deliver(&mut self, to: Audience, line: Arc<Stamped>) {
        self.outcome.deliveries.push(Delivery { to, line });
    }

    fn for_one(&mut self, id: ConnId, line: ServerLine) {
        self.deliver(Audience::One(id), Stamped::new(self.now, line));
    }

    fn tell(&mut self, id: ConnId, notice: Notice) {
        self.for_one(id, ServerLine::Notice(notice));
    }

    fn for_room(&mut self, room: &Name, except: Option<ConnId>, line: ServerLine) {
        let to = Audience::Room {
            room: room.clone(),
            except,
        };
        self.deliver(to, Stamped::new(self.now, line));
    }

    fn for_everyone(&mut self, line: ServerLine) {
        self.deliver(Audience::Everyone, Stamped::new(self.now, line));
    }
}
