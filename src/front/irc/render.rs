//! The writer's side of an IRC connection: the [`ServerLine`]s queued for one
//! client, rendered as IRC.
//!
//! A line of the hub does not say everything IRC needs: a chat line has no
//! channel, a private message no addressee, and a join's `353` list needs the
//! room's members. The writer keeps a [`View`] of its client (nick, room, whether
//! it asked for server-time), updated from the lines themselves in queue order,
//! so each line is rendered with what was true when it was queued.
//!
//! A broadcast (chat, join, part, quit, nick) renders the same for every member
//! it is queued for, and is rendered once per format through
//! [`Stamped::irc_wire`](crate::protocol::Stamped::irc_wire). Everything else is
//! rendered per recipient.
//!
//! After a `JOIN` the client must see `353`/`366` before the room's history: the
//! view renders them from the switchboard's current view of the room as it
//! renders the `JOIN`, ahead of the history queued behind it. Registration is the
//! one wait: what the hub queues on joining is held until the reader's
//! `001`–`376` are out.
//!
//! A refusal says what it refuses ([`ServerLine::Refused`]), and a room answer
//! the reader hands over says which form it was asked in ([`AnswerAs`]), so every
//! numeric is chosen here, whether the hub answered at once or, on a cluster node,
//! once the stream returned the request.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::caps::{self, Caps};
use super::clean_word;
use super::given::Given;
use super::message::{self, Source, Tags, HOST};
use super::numerics::*;
use crate::clock::Clock;
use crate::event::HistoryLine;
use crate::hub::ConnId;
use crate::protocol::{
    Answer, Asked, Command, CommandError, LeaveReason, Name, NickError, Notice, Role, ServerLine,
    Stamped, WhoEntry,
};
use crate::switchboard::Switchboard;

/// What the reader tells the writer. The writer takes it after every line the
/// hub queued before it was sent.
#[derive(Debug)]
pub enum Direct {
    /// Lines the reader rendered (numerics, `PONG`, `CAP`).
    Raw(String),
    /// The capabilities the client turned on.
    Caps(Caps),
    /// A `CHATHISTORY` answer: these lines of `channel`, in a batch where the
    /// client has `batch`.
    History {
        /// The channel asked about.
        channel: String,
        /// Its lines asked for, oldest first.
        lines: Vec<HistoryLine>,
    },
    /// Registration is over: release what the hub queued meanwhile.
    Registered,
    /// A room answer the reader looked up, and the form it was asked in.
    Answer(AnswerAs, Answer),
}

/// The form a room answer (`/who`, `/rooms`) was asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerAs {
    /// `NAMES`: `353`/`366`.
    Names,
    /// `WHO`: `352`/`315`.
    Who,
    /// `LIST`: `321`/`322`/`323`.
    List,
    /// `ROOMS`: the line protocol's answer, as a `NOTICE`.
    Notice,
}

/// Lines held before registration, at most; beyond it the view stops waiting.
const MAX_HELD: usize = 4096;

/// One client as its writer knows it; see the module docs.
pub struct View {
    clock: Clock,
    /// Where the members of a room just joined are looked up.
    board: Arc<Switchboard>,
    id: ConnId,
    nick: Name,
    room: Option<Name>,
    caps: Caps,
    in_history: bool,
    /// The history on joining is being left out: the client asks for it
    /// (draft/chathistory).
    skipping: bool,
    /// The batch the history lines being written belong to, and how many
    /// batches were opened so far (for the next one's id).
    batch: Option<String>,
    batches: u64,
    /// What each user was given before, shared by the server's IRC clients.
    given: Arc<Given>,
    /// The newest chat line (or action) given in the current room.
    newest: Option<Arc<Stamped>>,
    /// A join's replay, held from its start until its end so that only the
    /// lines this user was not given before are shown, counted right.
    replay: Option<Vec<Arc<Stamped>>>,
    /// Until [`Direct::Registered`], the hub's lines wait in `held`.
    registered: bool,
    held: VecDeque<Arc<Stamped>>,
    /// `account-tag`: the accounts found so far by sender, so that a rostered
    /// class's lines do not each take the switchboard's lock. A roster name is
    /// its own account for good; a name without one is asked again, as its
    /// owner may log in later.
    accounts: RefCell<HashMap<Name, Name>>,
}

impl View {
    /// Connection `id`, not yet registered.
    pub fn new(board: Arc<Switchboard>, id: ConnId, given: Arc<Given>) -> View {
        View {
            clock: board.clock().clone(),
            board,
            id,
            nick: "*".into(),
            room: None,
            caps: Caps::default(),
            in_history: false,
            skipping: false,
            batch: None,
            batches: 0,
            given,
            newest: None,
            replay: None,
            registered: false,
            held: VecDeque::new(),
            accounts: RefCell::default(),
        }
    }

    /// Takes one message from the reader.
    pub fn direct(&mut self, direct: Direct, out: &mut Vec<u8>) {
        match direct {
            Direct::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Direct::Caps(caps) => self.caps = caps,
            Direct::History { channel, lines } => {
                let mut text = String::new();
                self.open_batch(&mut text, &channel);
                for line in &lines {
                    let said = (line.sender.as_ref(), channel.as_str(), line.text.as_ref());
                    self.write_said(&mut text, line.ts_ms, said, line.action);
                }
                self.close_batch(&mut text);
                out.extend_from_slice(text.as_bytes());
            }
            Direct::Registered => {
                self.registered = true;
                self.pump(out);
            }
            Direct::Answer(form, answer) => {
                let mut text = String::new();
                let time = self.time(self.clock.now_ms());
                self.answer(time, form, &answer, &mut text);
                out.extend_from_slice(text.as_bytes());
            }
        }
    }

    /// Takes one line queued by the hub; `out` gets the bytes to send, now or
    /// once registration is over.
    pub fn feed(&mut self, line: Arc<Stamped>, out: &mut Vec<u8>) {
        self.held.push_back(line);
        if self.held.len() > MAX_HELD {
            // Registration is not finishing (the member was removed meanwhile);
            // late is better than never.
            self.registered = true;
        }
        self.pump(out);
    }

    /// Gives back the room the held lines grew to, if none are held.
    pub fn shrink(&mut self) {
        if self.held.is_empty() {
            self.held = VecDeque::new();
        }
    }

    /// Renders whatever is held, e.g. when the connection closes.
    pub fn flush(&mut self, out: &mut Vec<u8>) {
        self.registered = true;
        self.pump(out);
        // Before the client can see the close and reconnect.
        self.remember();
    }

    fn pump(&mut self, out: &mut Vec<u8>) {
        if !self.registered {
            return;
        }
        while let Some(line) = self.held.pop_front() {
            self.take(line, out);
        }
    }

    /// Renders one line, but holds a join's replay until its end
    /// ([`View::replay`]).
    fn take(&mut self, line: Arc<Stamped>, out: &mut Vec<u8>) {
        match (&mut self.replay, &line.line) {
            (None, ServerLine::Notice(Notice::HistoryStart { .. })) => {
                self.replay = Some(Vec::new());
            }
            (Some(lines), ServerLine::Chat { .. })
            | (Some(lines), ServerLine::Notice(Notice::Action { .. })) => lines.push(line),
            (Some(_), ServerLine::Notice(Notice::HistoryEnd)) => {
                let lines = self.replay.take().unwrap_or_default();
                self.replay_missed(lines, &line, out);
            }
            _ => self.render(&line, out),
        }
    }

    /// The lines of a replay this user was not given before, between its
    /// start, counting them, and `end`; nothing if there are none.
    fn replay_missed(&mut self, lines: Vec<Arc<Stamped>>, end: &Arc<Stamped>, out: &mut Vec<u8>) {
        let Some(room) = self.room.clone() else {
            return;
        };
        // After the line given last; lines said in the same millisecond tell
        // apart by their ids. One no longer kept was older than all kept.
        let from = match self.given.newest(&self.nick, &room) {
            None => 0,
            Some(given) => match lines
                .iter()
                .rposition(|l| said_id(l) == Some(given.clone()))
            {
                Some(i) => i + 1,
                None => lines.partition_point(|l| l.ts_ms < given.0),
            },
        };
        let missed = &lines[from..];
        let Some(first) = missed.first() else {
            return;
        };
        let count = missed.len();
        let start = Stamped::new(
            first.ts_ms,
            ServerLine::Notice(Notice::HistoryStart { room, count }),
        );
        self.render(&start, out);
        for line in missed {
            self.render(line, out);
        }
        self.render(end, out);
    }

    /// Keeps what this user was given in its room, for its next replay there.
    fn remember(&mut self) {
        let newest = self.newest.take();
        if let (Some(room), Some(id)) = (&self.room, newest.as_deref().and_then(said_id)) {
            self.given.record(&self.nick, room, id);
        }
    }

    fn time(&self, ts_ms: i64) -> Option<i64> {
        self.caps.has(caps::SERVER_TIME).then_some(ts_ms)
    }

    /// Whether lines of history are written as they were said (tagged with
    /// their time, or in a batch), rather than as stamped notices.
    fn history_as_said(&self) -> bool {
        self.caps.has(caps::SERVER_TIME) || self.batch.is_some()
    }

    /// Whether a chat line must be written for this client alone: its tags are
    /// not every client's.
    fn personal(&self) -> bool {
        self.caps.tags_beyond_time() || self.batch.is_some()
    }

    /// `BATCH +ID chathistory CHANNEL`, where the client has `batch`; the lines
    /// written until [`View::close_batch`] carry its id.
    fn open_batch(&mut self, out: &mut String, channel: &str) {
        if !self.caps.has(caps::BATCH) {
            return;
        }
        self.batches += 1;
        let id = format!("history{}", self.batches);
        let start = format!("+{id}");
        message::write(
            out,
            None,
            Source::Server,
            "BATCH",
            &[&start, "chathistory", channel],
        );
        self.batch = Some(id);
    }

    fn close_batch(&mut self, out: &mut String) {
        if let Some(id) = self.batch.take() {
            message::write(out, None, Source::Server, "BATCH", &[&format!("-{id}")]);
        }
    }

    /// The account of whoever says something as `from`.
    fn account_of(&self, from: &str) -> Option<Name> {
        let mut accounts = self.accounts.borrow_mut();
        if let Some(account) = accounts.get(from) {
            return Some(account.clone());
        }
        let account = self.board.account_of(from)?;
        accounts.insert(from.into(), account.clone());
        Some(account)
    }

    /// A chat line or action (`action`) as `PRIVMSG`, with every tag this client
    /// asked for: `said` is who said what to which target.
    fn write_said(&self, out: &mut String, ts_ms: i64, said: (&str, &str, &str), action: bool) {
        let (from, target, text) = said;
        let msgid =
            (self.caps.has(caps::MESSAGE_TAGS)).then(|| message::msgid(ts_ms, from, text, action));
        let account = match self.caps.has(caps::ACCOUNT_TAG) {
            true => self.account_of(from),
            false => None,
        };
        let tags = Tags {
            time: self.time(ts_ms),
            msgid: msgid.as_deref(),
            batch: self.batch.as_deref(),
            account: account.as_deref(),
        };
        match action {
            true => {
                let to = ("PRIVMSG", target);
                message::write_ctcp_text(out, tags, Source::User(from), to, "ACTION", text);
            }
            false => message::write_text(out, tags, Source::User(from), "PRIVMSG", target, text),
        }
    }

    fn room_channel(&self) -> String {
        match &self.room {
            Some(room) => format!("#{room}"),
            None => "*".to_owned(),
        }
    }

    /// Appends the shared rendering of a broadcast line.
    fn shared(&self, stamped: &Stamped, bytes: &mut Vec<u8>, render: impl FnOnce(&mut String)) {
        let cached = stamped.irc_wire(self.caps.has(caps::SERVER_TIME), || {
            let mut text = String::with_capacity(96);
            render(&mut text);
            Bytes::from(text)
        });
        bytes.extend_from_slice(cached);
    }

    /// Renders one line: a broadcast from the shared cache straight into `bytes`,
    /// anything else into a text of its own first.
    fn render(&mut self, stamped: &Arc<Stamped>, bytes: &mut Vec<u8>) {
        if let ServerLine::Chat { .. } | ServerLine::Notice(Notice::Action { .. }) = stamped.line {
            if self
                .newest
                .as_ref()
                .is_none_or(|n| n.ts_ms <= stamped.ts_ms)
            {
                self.newest = Some(stamped.clone());
            }
        }
        let mut out = String::new();
        self.render_line(stamped, bytes, &mut out);
        bytes.extend_from_slice(out.as_bytes());
    }

    fn render_line(&mut self, stamped: &Stamped, bytes: &mut Vec<u8>, out: &mut String) {
        let time = self.time(stamped.ts_ms);
        let me: &str = &self.nick;
        match &stamped.line {
            ServerLine::Chat { .. } if self.in_history && self.skipping => {}
            ServerLine::Chat { from, text } => {
                if self.in_history && !self.history_as_said() {
                    let channel = self.room_channel();
                    let mut line = String::with_capacity(text.len() + 32);
                    line.push('[');
                    self.clock.write_timestamp(&mut line, stamped.ts_ms);
                    line.push_str("] ");
                    line.push_str(from);
                    line.push_str(": ");
                    line.push_str(text);
                    message::write_text(out, None, Source::Server, "NOTICE", &channel, &line);
                } else if self.personal() {
                    let channel = self.room_channel();
                    let said = (from.as_ref(), channel.as_str(), text.as_ref());
                    self.write_said(out, stamped.ts_ms, said, false);
                } else {
                    self.shared(stamped, bytes, |buf| {
                        let channel = self.room_channel();
                        let from = Source::User(from);
                        message::write_text(buf, time, from, "PRIVMSG", &channel, text);
                    });
                }
            }
            ServerLine::PmFrom { from, text } => {
                self.write_said(out, stamped.ts_ms, (from, me, text), false);
            }
            ServerLine::PmTo { to, text } if self.caps.has(caps::ECHO_MESSAGE) => {
                self.write_said(out, stamped.ts_ms, (me, to, text), false);
            }
            // IRC clients show what they send themselves.
            ServerLine::PmTo { .. } => {}
            ServerLine::Notice(notice) => self.notice(stamped, notice, bytes, out),
            ServerLine::Answer(answer) => self.answer(time, AnswerAs::Notice, answer, out),
            ServerLine::Error(text) => {
                message::write(out, time, Source::Server, "NOTICE", &[me, text]);
            }
            ServerLine::Refused { error, asked } => self.refused(time, error, asked, out),
        }
    }

    fn notice(
        &mut self,
        stamped: &Stamped,
        notice: &Notice,
        bytes: &mut Vec<u8>,
        out: &mut String,
    ) {
        let time = self.time(stamped.ts_ms);
        let me = self.nick.clone();
        let me: &str = &me;
        match notice {
            Notice::Joined { nick, room } => self.shared(stamped, bytes, |buf| {
                message::write(
                    buf,
                    time,
                    Source::User(nick),
                    "JOIN",
                    &[&format!("#{room}")],
                );
            }),
            Notice::Left { nick, room, reason } => self.shared(stamped, bytes, |buf| {
                let reason_text = reason.to_string();
                match reason {
                    LeaveReason::Moved(_) => {
                        let channel = format!("#{room}");
                        let params = [channel.as_str(), &reason_text];
                        message::write(buf, time, Source::User(nick), "PART", &params);
                    }
                    _ => message::write(buf, time, Source::User(nick), "QUIT", &[&reason_text]),
                }
            }),
            Notice::Renamed { old, new } => {
                if old.eq_ignore_ascii_case(&self.nick) {
                    self.nick = new.clone();
                }
                self.shared(stamped, bytes, |buf| {
                    message::write(buf, time, Source::User(old), "NICK", &[new]);
                });
            }
            Notice::Welcome { nick, room, .. } => {
                self.nick = nick.clone();
                self.room = Some(room.clone());
                let channel = format!("#{room}");
                message::write(out, time, Source::User(nick), "JOIN", &[&channel]);
                self.names_of_room(time, out);
            }
            Notice::Moved { room, .. } => {
                self.remember();
                let new = format!("#{room}");
                if let Some(old) = self.room.replace(room.clone()) {
                    let reason = LeaveReason::Moved(room.clone()).to_string();
                    let params = [format!("#{old}"), reason];
                    let params = [params[0].as_str(), params[1].as_str()];
                    message::write(out, time, Source::User(me), "PART", &params);
                }
                message::write(out, time, Source::User(me), "JOIN", &[&new]);
                self.names_of_room(time, out);
            }
            Notice::Action { .. } if self.in_history && self.skipping => {}
            // The client showed its own action as it sent it, unless it asked
            // for it back.
            Notice::Action { nick, .. }
                if nick.eq_ignore_ascii_case(me)
                    && !self.in_history
                    && !self.caps.has(caps::ECHO_MESSAGE) => {}
            Notice::Action { nick, text } if self.in_history && !self.history_as_said() => {
                // As replayed chat: stamped with when it was done.
                let mut line = String::with_capacity(text.len() + 32);
                line.push('[');
                self.clock.write_timestamp(&mut line, stamped.ts_ms);
                line.push_str("] * ");
                line.push_str(nick);
                line.push(' ');
                line.push_str(text);
                let channel = self.room_channel();
                message::write_text(out, None, Source::Server, "NOTICE", &channel, &line);
            }
            Notice::Action { nick, text } if self.personal() => {
                let channel = self.room_channel();
                let said = (nick.as_ref(), channel.as_str(), text.as_ref());
                self.write_said(out, stamped.ts_ms, said, true);
            }
            Notice::Action { nick, text } => self.shared(stamped, bytes, |buf| {
                let channel = self.room_channel();
                let target = ("PRIVMSG", channel.as_str());
                message::write_ctcp_text(buf, time, Source::User(nick), target, "ACTION", text);
            }),
            Notice::AwaySet(true) => self.numeric(out, time, RPL_NOWAWAY, &[&notice.to_string()]),
            Notice::AwaySet(false) => self.numeric(out, time, RPL_UNAWAY, &[&notice.to_string()]),
            Notice::IsAway { nick, text } => self.numeric(out, time, RPL_AWAY, &[nick, text]),
            // Only clients with away-notify are queued it (see the switchboard);
            // the check here is for one that turned it off since.
            Notice::AwayChanged { nick, text } if self.caps.has(caps::AWAY_NOTIFY) => {
                self.shared(stamped, bytes, |buf| {
                    let params: &[&str] = match text {
                        Some(text) => &[text],
                        None => &[],
                    };
                    message::write(buf, time, Source::User(nick), "AWAY", params);
                })
            }
            Notice::AwayChanged { .. } => {}
            Notice::Crowd { room, .. } => self.shared(stamped, bytes, |buf| {
                // A big room's summary belongs in its channel, and reads the same
                // for everyone there.
                let channel = format!("#{room}");
                let text = notice.to_string();
                message::write(buf, time, Source::Server, "NOTICE", &[&channel, &text]);
            }),
            Notice::DmPolicy { .. }
            | Notice::HandUp { .. }
            | Notice::HandDown
            | Notice::HandRaised { .. }
            | Notice::Hands { .. }
            | Notice::CalledOn { .. }
            | Notice::PollOpened { .. }
            | Notice::Voted { .. }
            | Notice::PollClosed { .. }
            | Notice::Question { .. }
            | Notice::SessionStarted { .. }
            | Notice::SessionEnded { .. } => {
                // The class's tools belong in the channel, where IRC clients look,
                // not in the status window a NOTICE to the nick lands in.
                let channel = self.room_channel();
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[&channel, &text]);
            }
            // A client that asks for history (draft/chathistory) is given none
            // unasked; one with `batch` gets it as a batch.
            Notice::HistoryStart { .. } if self.caps.has(caps::CHATHISTORY) => {
                (self.in_history, self.skipping) = (true, true);
            }
            Notice::HistoryStart { .. } if self.caps.has(caps::BATCH) => {
                self.in_history = true;
                let channel = self.room_channel();
                self.open_batch(out, &channel);
            }
            Notice::HistoryEnd if self.skipping || self.batch.is_some() => {
                (self.in_history, self.skipping) = (false, false);
                self.close_batch(out);
            }
            Notice::HistoryStart { .. } | Notice::HistoryEnd => {
                self.in_history = matches!(notice, Notice::HistoryStart { .. });
                let channel = self.room_channel();
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[&channel, &text]);
            }
            Notice::Goodbye { .. } => {
                message::write(out, time, Source::Server, "ERROR", &[&notice.to_string()]);
            }
            Notice::ShuttingDown | Notice::Replaced | Notice::CodeChanged => {
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
                message::write(out, time, Source::Server, "ERROR", &[&text]);
            }
            Notice::Kicked { by, reason } => {
                let channel = self.room_channel();
                let why = reason.as_deref().unwrap_or(by);
                let params = [channel.as_str(), me, why];
                message::write(out, time, Source::User(by), "KICK", &params);
                message::write(out, time, Source::Server, "ERROR", &[&notice.to_string()]);
            }
            // What the class is told, and moderation: where the class is looked
            // at, the channel's window, not the status window.
            Notice::Announcement { .. }
            | Notice::Quiet(_)
            | Notice::Muted { .. }
            | Notice::Unmuted { .. }
            | Notice::MuteDone { .. }
            | Notice::UnmuteDone { .. }
            | Notice::KickDone { .. }
                if self.room.is_some() =>
            {
                let channel = self.room_channel();
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[&channel, &text]);
            }
            _ => {
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
            }
        }
    }

    /// `353`/`366` for the room just joined, as it is now.
    fn names_of_room(&self, time: Option<i64>, out: &mut String) {
        if let Some(Answer::Who { room, members }) = self.board.who(self.id) {
            names(out, time, &self.nick, &room, &members);
        }
    }

    fn answer(&self, time: Option<i64>, form: AnswerAs, answer: &Answer, out: &mut String) {
        let me: &str = &self.nick;
        match (answer, form) {
            (Answer::Who { room, members }, AnswerAs::Names) => {
                names(out, time, me, room, members);
            }
            (Answer::Who { room, members }, AnswerAs::Who) => {
                let channel = format!("#{room}");
                for member in members {
                    // Here (`H`) or gone away (`G`), then the channel prefix.
                    let flags = match (member.away, member.role) {
                        (false, Some(Role::Instructor)) => "H@",
                        (false, Some(Role::Assistant)) => "H%",
                        (false, _) => "H",
                        (true, Some(Role::Instructor)) => "G@",
                        (true, Some(Role::Assistant)) => "G%",
                        (true, _) => "G",
                    };
                    let nick: &str = &member.nick;
                    let real = format!("0 {nick}");
                    let params = [me, channel.as_str(), nick, HOST, HOST, nick, flags, &real];
                    message::write(out, time, Source::Server, RPL_WHOREPLY, &params);
                }
                let params = [me, channel.as_str(), "End of /WHO list."];
                message::write(out, time, Source::Server, RPL_ENDOFWHO, &params);
            }
            (Answer::Rooms(rooms), AnswerAs::List) => {
                let params = [me, "Channel", "Users  Name"];
                message::write(out, time, Source::Server, RPL_LISTSTART, &params);
                for (room, count) in rooms {
                    let (channel, count) = (format!("#{room}"), count.to_string());
                    let params = [me, &channel, &count, ""];
                    message::write(out, time, Source::Server, RPL_LIST, &params);
                }
                let params = [me, "End of /LIST"];
                message::write(out, time, Source::Server, RPL_LISTEND, &params);
            }
            (Answer::Help(line), _) => {
                for line in super::help::lines_for(line) {
                    message::write(out, time, Source::Server, "NOTICE", &[me, line]);
                }
            }
            (answer, _) => {
                let text = answer.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
            }
        }
    }

    /// A numeric to this client: `:classchat NNN me params...`.
    fn numeric(&self, out: &mut String, time: Option<i64>, code: &str, params: &[&str]) {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(&*self.nick);
        all.extend_from_slice(params);
        message::write(out, time, Source::Server, code, &all);
    }

    /// A refused request, as the matching numeric, else as a `NOTICE` with the
    /// line protocol's text.
    fn refused(&self, time: Option<i64>, error: &CommandError, asked: &Asked, out: &mut String) {
        let text = error.to_string();
        let room = self.room_channel();
        // The channel or nick the refusal is about, if any.
        let about = match asked {
            Asked::Chat | Asked::Command(Command::Kick { .. }) => room,
            Asked::Command(Command::Join(room)) => format!("#{}", room.trim_start_matches('#')),
            Asked::Command(Command::Msg { to, .. }) => clean_word(to),
            _ => String::new(),
        };
        let mut numeric = |code: &str, params: &[&str]| self.numeric(out, time, code, params);
        match error {
            CommandError::AlreadyInRoom(_) | CommandError::SameNick(_) => {}
            _ if matches!(asked, Asked::LogIn(_)) => {
                // After `001` a name can no longer be refused: the client goes.
                message::write(out, time, Source::Server, "ERROR", &[&text]);
            }
            CommandError::TooLong(_) => numeric(ERR_INPUTTOOLONG, &[&text]),
            CommandError::Usage(usage) => {
                let verb = usage
                    .trim_start_matches('/')
                    .split(' ')
                    .next()
                    .unwrap_or("");
                numeric(ERR_NEEDMOREPARAMS, &[&verb.to_ascii_uppercase(), &text]);
            }
            CommandError::Unknown(verb) => {
                numeric(ERR_UNKNOWNCOMMAND, &[&clean_word(verb), &text]);
            }
            CommandError::BadRoom => numeric(ERR_BADCHANNAME, &[&about, &text]),
            CommandError::NoSuchUser(nick) => {
                numeric(ERR_NOSUCHNICK, &[&clean_word(nick), "No such nick/channel"]);
            }
            CommandError::TooManyRooms(_) => numeric(ERR_TOOMANYCHANNELS, &[&about, &text]),
            CommandError::Nick(NickError::Taken(nick)) => {
                numeric(ERR_NICKNAMEINUSE, &[&clean_word(nick), &text]);
            }
            CommandError::Nick(_) => {
                let nick = match asked {
                    Asked::Command(Command::Nick(new)) => clean_word(new),
                    _ => self.nick.to_string(),
                };
                numeric(ERR_ERRONEUSNICKNAME, &[&nick, &text]);
            }
            CommandError::PermissionDenied if about.starts_with('#') => {
                numeric(ERR_CHANOPRIVSNEEDED, &[&about, &text]);
            }
            CommandError::PermissionDenied => numeric(ERR_NOPRIVILEGES, &[&text]),
            CommandError::WrongPassword => numeric(ERR_PASSWDMISMATCH, &[&text]),
            CommandError::Muted(_) | CommandError::QuietMode | CommandError::SlowDown(_)
                if about.starts_with('#') =>
            {
                numeric(ERR_CANNOTSENDTOCHAN, &[&about, &text]);
            }
            _ => {
                let me: &str = &self.nick;
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
            }
        }
    }
}

/// A chat line's or action's place in its room's history: when, and its id.
fn said_id(stamped: &Stamped) -> Option<(i64, String)> {
    let ts = stamped.ts_ms;
    let id = match &stamped.line {
        ServerLine::Chat { from, text } => message::msgid(ts, from, text, false),
        ServerLine::Notice(Notice::Action { nick, text }) => message::msgid(ts, nick, text, true),
        _ => return None,
    };
    Some((ts, id))
}

/// A connection that ends keeps what it was given, for a reconnect.
impl Drop for View {
    fn drop(&mut self) {
        self.remember();
    }
}

/// `353` lines of names that fit in a line each, then `366`.
fn names(out: &mut String, time: Option<i64>, me: &str, room: &str, members: &[WhoEntry]) {
    let channel = format!("#{room}");
    let room_for_names = message::MAX_BODY - HOST.len() - me.len() - channel.len() - 16;
    let mut list = String::new();
    for member in members {
        if !list.is_empty() && list.len() + member.nick.len() + 2 > room_for_names {
            let params = [me, "=", channel.as_str(), &list];
            message::write(out, time, Source::Server, RPL_NAMREPLY, &params);
            list.clear();
        }
        if !list.is_empty() {
            list.push(' ');
        }
        match member.role {
            Some(Role::Instructor) => list.push('@'),
            Some(Role::Assistant) => list.push('%'),
            _ => {}
        }
        list.push_str(&member.nick);
    }
    if !list.is_empty() {
        let params = [me, "=", channel.as_str(), &list];
        message::write(out, time, Source::Server, RPL_NAMREPLY, &params);
    }
    end_of_names(out, time, me, &channel);
}

/// `366`: the end of a `NAMES` answer, also the whole answer for another room.
pub fn end_of_names(out: &mut String, time: Option<i64>, me: &str, channel: &str) {
    let params = [me, channel, "End of /NAMES list."];
    message::write(out, time, Source::Server, RPL_ENDOFNAMES, &params);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, EventSink};
    use crate::hub::{History, Hub, Identity, Settings};
    use crate::mailbox;
    use tokio_util::sync::CancellationToken;

    struct Nowhere;

    impl EventSink for Nowhere {
        fn record(&self, _: Event) {}
    }

    /// A single server's switchboard where member 1 is `ann`, in `#lobby`, and
    /// her queue (which must stay open, or she goes as too slow).
    fn board() -> (Arc<Switchboard>, mailbox::Receiver<Arc<Stamped>>) {
        let hub = Hub::new(Settings::example(), History::new(3));
        let board = Switchboard::new(hub, Nowhere, Clock::new("%H:%M:%S", true));
        let (outbox, queue) = mailbox::bounded(16);
        let dropped = CancellationToken::new();
        board
            .register(1, "ann", Identity::default(), outbox, dropped)
            .unwrap();
        (Arc::new(board), queue)
    }

    fn view() -> View {
        let (board, queue) = board();
        std::mem::forget(queue);
        let mut view = View::new(board, 1, Arc::default());
        let caps = Caps::default().request("server-time").unwrap();
        view.direct(Direct::Caps(caps), &mut Vec::new());
        view
    }

    fn stamped(line: ServerLine) -> Arc<Stamped> {
        Stamped::new(1_764_011_103_123, line)
    }

    fn rendered(view: &mut View, line: ServerLine) -> String {
        let mut out = Vec::new();
        view.feed(stamped(line), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn join_names_come_before_the_history_they_were_queued_after() {
        let mut view = view();
        let mut out = Vec::new();
        view.feed(
            stamped(ServerLine::Notice(Notice::Welcome {
                nick: "ann".into(),
                room: "lobby".into(),
                others: 0,
            })),
            &mut out,
        );
        view.feed(
            stamped(ServerLine::Chat {
                from: "bob".into(),
                text: "earlier".into(),
            }),
            &mut out,
        );
        assert!(out.is_empty(), "nothing before registration");
        view.direct(Direct::Registered, &mut out);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].ends_with("JOIN :#lobby"), "{out}");
        assert!(lines[1].ends_with(" 353 ann = #lobby :ann"), "{out}");
        assert!(lines[2].contains(" 366 ann #lobby "), "{out}");
        assert!(
            lines[3].ends_with(":bob!bob@classchat PRIVMSG #lobby :earlier"),
            "{out}"
        );
    }

    #[test]
    fn refusals_become_the_numerics_of_what_they_refuse() {
        let mut view = view();
        view.flush(&mut Vec::new());
        rendered(
            &mut view,
            ServerLine::Notice(Notice::Welcome {
                nick: "ann".into(),
                room: "lobby".into(),
                others: 0,
            }),
        );
        let refused = |view: &mut View, error: CommandError, asked: Asked| {
            rendered(view, ServerLine::Refused { error, asked })
        };
        let pm = Asked::Command(Command::Msg {
            to: "dave".into(),
            text: "hi".into(),
        });
        let out = refused(&mut view, CommandError::NoSuchUser("dave".into()), pm);
        assert!(out.contains(" 401 ann dave :No such nick/channel"), "{out}");
        let nick = Asked::Command(Command::Nick("bob".into()));
        let taken = CommandError::Nick(NickError::Taken("bob".into()));
        let out = refused(&mut view, taken, nick);
        assert!(
            out.contains(" 433 ann bob :Username bob is already taken"),
            "{out}"
        );
        let join = Asked::Command(Command::Join("lab".into()));
        let out = refused(&mut view, CommandError::TooManyRooms(4), join);
        assert!(out.contains(" 405 ann #lab :Too many rooms"), "{out}");
        let out = refused(&mut view, CommandError::Muted(None), Asked::Chat);
        assert!(out.contains(" 404 ann #lobby :You are muted"), "{out}");
        let kick = Asked::Command(Command::Kick {
            nick: "bob".into(),
            reason: None,
        });
        let out = refused(&mut view, CommandError::PermissionDenied, kick);
        assert!(out.contains(" 482 ann #lobby :Permission denied"), "{out}");
        let out = refused(&mut view, CommandError::SameNick("ann".into()), Asked::Line);
        assert!(out.is_empty(), "{out}");
        let out = refused(&mut view, CommandError::Undeliverable, Asked::Chat);
        assert!(
            out.contains("NOTICE ann :Messages cannot be delivered"),
            "{out}"
        );
    }

    #[test]
    fn a_broadcast_is_rendered_once_per_format() {
        let line = stamped(ServerLine::Notice(Notice::Joined {
            nick: "bob".into(),
            room: "lobby".into(),
        }));
        let mut tagged = view();
        tagged.flush(&mut Vec::new());
        let mut a = Vec::new();
        tagged.feed(line.clone(), &mut a);
        let mut b = Vec::new();
        tagged.feed(line.clone(), &mut b);
        assert_eq!(a, b);
        assert!(std::ptr::eq(
            line.irc_wire(true, || unreachable!()).as_ptr(),
            line.irc_wire(true, || unreachable!()).as_ptr()
        ));
        assert_eq!(
            String::from_utf8(a).unwrap(),
            "@time=2025-11-24T19:05:03.123Z :bob!bob@classchat JOIN :#lobby\r\n"
        );
    }
}
