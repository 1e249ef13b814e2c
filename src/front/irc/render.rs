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
//! After a `JOIN` the client must see `353`/`366` before the room's history. The
//! reader asks the hub for the members right after the join; until that answer
//! arrives, the view holds the lines behind it. Registration works the same way:
//! what the hub queues on joining waits until the reader's `001`–`376` are out.
//!
//! A room answer of the hub does not say what it was asked for (`NAMES`, `WHO`,
//! `LIST`, a join). The reader says so on a channel of its own before asking,
//! and the view takes one purpose per answer, in order.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::mailbox;
use bytes::Bytes;

use super::message::{self, Source, HOST};
use super::numerics::*;
use crate::clock::Clock;
use crate::protocol::{Answer, LeaveReason, Name, Notice, Role, ServerLine, Stamped, WhoEntry};

/// What the reader tells the writer. The writer takes it after every line the
/// hub queued before it was sent.
#[derive(Debug)]
pub enum Direct {
    /// Lines the reader rendered (numerics, `PONG`, `CAP`).
    Raw(String),
    /// Whether the client asked for server-time.
    ServerTime(bool),
    /// Registration is over: release what the hub queued meanwhile.
    Registered,
}

/// What a room answer of the hub (`/who`, `/rooms`) was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerAs {
    /// `353`/`366` right after a join; releases the lines held behind it.
    JoinNames,
    /// `NAMES`: `353`/`366`.
    Names,
    /// `WHO`: `352`/`315`.
    Who,
    /// `LIST`: `321`/`322`/`323`.
    List,
    /// `ROOMS`: the line protocol's answer, as a `NOTICE`.
    Notice,
}

/// Lines held behind a pending answer, at most; beyond it the view stops waiting.
const MAX_HELD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    Open,
    /// Until [`Direct::Registered`].
    Registration,
    /// Until the room answer for [`AnswerAs::JoinNames`].
    Names,
}

/// One client as its writer knows it; see the module docs.
pub struct View {
    clock: Clock,
    nick: Name,
    room: Option<Name>,
    server_time: bool,
    in_history: bool,
    /// What each room answer was asked for, sent before the question.
    purposes: mailbox::Receiver<AnswerAs>,
    gate: Gate,
    held: VecDeque<Arc<Stamped>>,
}

impl View {
    /// A client not yet registered.
    pub fn new(clock: Clock, purposes: mailbox::Receiver<AnswerAs>) -> View {
        View {
            clock,
            nick: "*".into(),
            room: None,
            server_time: false,
            in_history: false,
            purposes,
            gate: Gate::Registration,
            held: VecDeque::new(),
        }
    }

    /// Takes one message from the reader.
    pub fn direct(&mut self, direct: Direct, out: &mut Vec<u8>) {
        match direct {
            Direct::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Direct::ServerTime(on) => self.server_time = on,
            Direct::Registered => {
                if self.gate == Gate::Registration {
                    self.gate = Gate::Open;
                }
                self.pump(out);
            }
        }
    }

    /// Takes one line queued by the hub; `out` gets the bytes to send, now or
    /// once what it waits behind has arrived.
    pub fn feed(&mut self, line: Arc<Stamped>, out: &mut Vec<u8>) {
        self.held.push_back(line);
        if self.held.len() > MAX_HELD {
            // The answer it waits for is not coming (the member was removed
            // meanwhile); late is better than never.
            self.gate = Gate::Open;
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
        self.gate = Gate::Open;
        self.pump(out);
    }

    fn pump(&mut self, out: &mut Vec<u8>) {
        loop {
            let next = match self.gate {
                Gate::Open => self.held.pop_front(),
                Gate::Registration => None,
                Gate::Names => {
                    let answer = self.held.iter().position(|line| {
                        matches!(line.line, ServerLine::Answer(Answer::Who { .. }))
                    });
                    answer.and_then(|i| self.held.remove(i))
                }
            };
            match next {
                Some(line) => self.render(&line, out),
                None => return,
            }
        }
    }

    fn time(&self, ts_ms: i64) -> Option<i64> {
        self.server_time.then_some(ts_ms)
    }

    fn room_channel(&self) -> String {
        match &self.room {
            Some(room) => format!("#{room}"),
            None => "*".to_owned(),
        }
    }

    /// Appends the shared rendering of a broadcast line.
    fn shared(&self, stamped: &Stamped, bytes: &mut Vec<u8>, render: impl FnOnce(&mut String)) {
        let cached = stamped.irc_wire(self.server_time, || {
            let mut text = String::with_capacity(96);
            render(&mut text);
            Bytes::from(text)
        });
        bytes.extend_from_slice(cached);
    }

    /// Renders one line: a broadcast from the shared cache straight into `bytes`,
    /// anything else into a text of its own first.
    fn render(&mut self, stamped: &Stamped, bytes: &mut Vec<u8>) {
        let mut out = String::new();
        self.render_line(stamped, bytes, &mut out);
        bytes.extend_from_slice(out.as_bytes());
    }

    fn render_line(&mut self, stamped: &Stamped, bytes: &mut Vec<u8>, out: &mut String) {
        let time = self.time(stamped.ts_ms);
        let me: &str = &self.nick;
        match &stamped.line {
            ServerLine::Chat { from, text } => {
                if self.in_history && !self.server_time {
                    let channel = self.room_channel();
                    let mut line = String::with_capacity(text.len() + 32);
                    line.push('[');
                    self.clock.write_timestamp(&mut line, stamped.ts_ms);
                    line.push_str("] ");
                    line.push_str(from);
                    line.push_str(": ");
                    line.push_str(text);
                    message::write_text(out, None, Source::Server, "NOTICE", &channel, &line);
                } else {
                    self.shared(stamped, bytes, |buf| {
                        let channel = self.room_channel();
                        let from = Source::User(from);
                        message::write_text(buf, time, from, "PRIVMSG", &channel, text);
                    });
                }
            }
            ServerLine::PmFrom { from, text } => {
                message::write_text(out, time, Source::User(from), "PRIVMSG", me, text);
            }
            // IRC clients show what they send themselves.
            ServerLine::PmTo { .. } => {}
            ServerLine::Notice(notice) => self.notice(stamped, notice, bytes, out),
            ServerLine::Answer(answer) => self.answer(time, answer, out),
            ServerLine::Error(text) => {
                message::write(out, time, Source::Server, "NOTICE", &[me, text]);
            }
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
                self.gate = Gate::Names;
            }
            Notice::Moved { room, .. } => {
                let new = format!("#{room}");
                if let Some(old) = self.room.replace(room.clone()) {
                    let reason = LeaveReason::Moved(room.clone()).to_string();
                    let params = [format!("#{old}"), reason];
                    let params = [params[0].as_str(), params[1].as_str()];
                    message::write(out, time, Source::User(me), "PART", &params);
                }
                message::write(out, time, Source::User(me), "JOIN", &[&new]);
                self.gate = Gate::Names;
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
            _ => {
                let text = notice.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
            }
        }
    }

    fn answer(&mut self, time: Option<i64>, answer: &Answer, out: &mut String) {
        let me = self.nick.clone();
        let me: &str = &me;
        let purpose = match answer {
            Answer::Who { .. } | Answer::Rooms(_) => self.purposes.try_recv(),
            Answer::Help(_) => None,
        };
        match (answer, purpose) {
            (Answer::Who { room, members }, Some(AnswerAs::JoinNames | AnswerAs::Names)) => {
                if purpose == Some(AnswerAs::JoinNames) && self.gate == Gate::Names {
                    self.gate = Gate::Open;
                }
                names(out, time, me, room, members);
            }
            (Answer::Who { room, members }, Some(AnswerAs::Who)) => {
                let channel = format!("#{room}");
                for member in members {
                    let flags = match member.role {
                        Some(Role::Instructor) => "H@",
                        _ => "H",
                    };
                    let nick: &str = &member.nick;
                    let real = format!("0 {nick}");
                    let params = [me, channel.as_str(), nick, HOST, HOST, nick, flags, &real];
                    message::write(out, time, Source::Server, RPL_WHOREPLY, &params);
                }
                let params = [me, channel.as_str(), "End of /WHO list."];
                message::write(out, time, Source::Server, RPL_ENDOFWHO, &params);
            }
            (Answer::Rooms(rooms), Some(AnswerAs::List)) => {
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
            (answer, _) => {
                let text = answer.to_string();
                message::write(out, time, Source::Server, "NOTICE", &[me, &text]);
            }
        }
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
        if member.role == Some(Role::Instructor) {
            list.push('@');
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

    fn view() -> (View, mailbox::Sender<AnswerAs>) {
        let (purpose, purposes) = mailbox::bounded(4);
        let mut view = View::new(Clock::new("%H:%M:%S", true), purposes);
        view.direct(Direct::ServerTime(true), &mut Vec::new());
        (view, purpose)
    }

    fn stamped(line: ServerLine) -> Arc<Stamped> {
        Stamped::new(1_764_011_103_123, line)
    }

    #[test]
    fn join_names_come_before_the_history_they_were_queued_after() {
        let (mut view, purpose) = view();
        let mut out = Vec::new();
        purpose.try_send(AnswerAs::JoinNames).unwrap();
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
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("JOIN :#lobby") && !text.contains("earlier"),
            "{text}"
        );
        view.feed(
            stamped(ServerLine::Answer(Answer::Who {
                room: "lobby".into(),
                members: vec![WhoEntry {
                    nick: "ann".into(),
                    role: None,
                }],
            })),
            &mut out,
        );
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[1].ends_with(" 353 ann = #lobby :ann"), "{out}");
        assert!(lines[2].contains(" 366 ann #lobby "), "{out}");
        assert!(
            lines[3].ends_with(":bob!bob@classchat PRIVMSG #lobby :earlier"),
            "{out}"
        );
    }

    #[test]
    fn a_broadcast_is_rendered_once_per_format() {
        let line = stamped(ServerLine::Notice(Notice::Joined {
            nick: "bob".into(),
            room: "lobby".into(),
        }));
        let (mut tagged, _) = view();
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
