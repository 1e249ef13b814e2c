//! IRC verbs after registration, through one table ([`VERBS`]): each verb's
//! name, the parameters it needs, and what it becomes. Most decode straight to
//! the core's [`Command`] and are performed by the switchboard like any line
//! client's; the rest ask about the room or the server, or are IRC's own
//! (`MODE`, `CAP`, `PING`) and are answered here.

use super::chathistory;
use super::ctcp;
use super::message::Source;
use super::message::{self, Message};
use super::numerics::*;
use super::older;
use super::render::{self, AnswerAs, Direct};
use super::{clean_text, clean_word, Connection};
use crate::front::conn;
use crate::protocol::{self, Asked, Command, CommandError};

/// One verb of the table.
pub(super) struct Verb {
    /// The verb, upper case.
    pub name: &'static str,
    /// Parameters it needs; with fewer, the client gets `461`.
    pub min: usize,
    /// Keep-alives and capability talk: not counted against the rate limit.
    pub free: bool,
    pub handler: Handler,
}

/// What a verb does with its parameters.
pub(super) enum Handler {
    /// Becomes the core's command, for the switchboard.
    Command(fn(&Message<'_>) -> Result<Command, CommandError>),
    /// Answered or carried out by the connection.
    Local(fn(&mut Connection, &Message<'_>)),
    /// `OP`: the password check, on the blocking pool.
    Op,
    /// `CHATHISTORY`: older lines may be read from the record, on the
    /// blocking pool.
    ChatHistory,
    /// `QUIT`: the connection ends.
    Quit,
}

const fn verb(name: &'static str, min: usize, handler: Handler) -> Verb {
    Verb {
        name,
        min,
        free: false,
        handler,
    }
}

const fn free(name: &'static str, min: usize, handler: Handler) -> Verb {
    Verb {
        name,
        min,
        free: true,
        handler,
    }
}

use Handler::{Local, Op, Quit};

/// Every verb a registered client may send.
pub(super) static VERBS: &[Verb] = &[
    verb("PRIVMSG", 0, Local(Connection::privmsg)),
    verb("NOTICE", 0, Local(Connection::privmsg)),
    verb("JOIN", 1, Local(Connection::join)),
    verb("PART", 1, Local(Connection::part)),
    verb("NICK", 0, Local(Connection::nick)),
    verb("NAMES", 0, Local(Connection::names)),
    verb("WHO", 0, Local(Connection::who)),
    verb("LIST", 0, Local(Connection::list)),
    verb("TOPIC", 1, Local(Connection::topic)),
    verb("MODE", 1, Local(Connection::mode)),
    verb("WHOIS", 0, Local(Connection::whois)),
    verb("ISON", 1, Local(Connection::ison)),
    verb("AWAY", 0, Local(Connection::away)),
    verb("USER", 0, Local(Connection::reregister)),
    verb("PASS", 0, Local(Connection::reregister)),
    verb("AUTHENTICATE", 0, Local(Connection::reauthenticate)),
    verb("ROOMS", 0, Local(Connection::rooms)),
    verb("KICK", 2, Handler::Command(kick)),
    verb("MUTE", 1, Handler::Command(as_on_the_line_port)),
    verb("UNMUTE", 1, Handler::Command(as_on_the_line_port)),
    verb("ANNOUNCE", 1, Handler::Command(as_on_the_line_port)),
    verb("QUIET", 1, Handler::Command(as_on_the_line_port)),
    verb("HELP", 0, Handler::Command(as_on_the_line_port)),
    verb("DM", 1, Handler::Command(as_on_the_line_port)),
    verb("HAND", 0, Handler::Command(as_on_the_line_port)),
    verb("HANDS", 0, Handler::Command(as_on_the_line_port)),
    verb("NEXT", 0, Handler::Command(as_on_the_line_port)),
    verb("POLL", 1, Handler::Command(as_on_the_line_port)),
    verb("VOTE", 1, Handler::Command(as_on_the_line_port)),
    verb("ASK", 1, Handler::Command(as_on_the_line_port)),
    verb("SESSION", 1, Handler::Command(as_on_the_line_port)),
    verb("CHATHISTORY", 1, Handler::ChatHistory),
    verb("OP", 1, Op),
    verb("QUIT", 0, Quit),
    free("PING", 0, Local(Connection::pong)),
    free("PONG", 0, Local(|_, _| {})),
    free("CAP", 1, Local(Connection::cap)),
    // Tags alone (typing notices of message-tags clients): nothing classchat
    // shows or records, so taken and dropped rather than refused.
    free("TAGMSG", 1, Local(|_, _| {})),
];

/// The table's entry for `verb` (any case).
pub(super) fn find(verb: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| v.name.eq_ignore_ascii_case(verb))
}

/// `KICK #channel nick [:reason]`: the channel is the kicker's own.
fn kick(message: &Message<'_>) -> Result<Command, CommandError> {
    Ok(Command::Kick {
        nick: message.word(1).unwrap_or_default().to_owned(),
        reason: message.param(2).map(clean_text).filter(|r| !r.is_empty()),
    })
}

/// A classchat command sent as a verb (`MUTE sam 5`, `ANNOUNCE :text`): its
/// parameters mean what the line port's arguments mean.
fn as_on_the_line_port(message: &Message<'_>) -> Result<Command, CommandError> {
    let args = clean_text(&message.params.join(" "));
    protocol::command(&message.verb.to_ascii_lowercase(), &args)
}

impl Connection {
    /// Whether `message` has the `min` parameters its verb needs; if not, the
    /// client is told (`461`).
    pub(super) fn enough(&self, message: &Message<'_>, min: usize) -> bool {
        if message.params.len() >= min {
            return true;
        }
        let verb = clean_word(&message.verb.to_ascii_uppercase());
        self.numeric(ERR_NEEDMOREPARAMS, &[&verb, "Not enough parameters"]);
        false
    }

    /// Carries out one registered client's message, `QUIT` aside.
    pub(super) async fn act(&mut self, verb: &Verb, message: &Message<'_>) {
        if !self.enough(message, verb.min) {
            return;
        }
        match verb.handler {
            Local(handler) => handler(self, message),
            Handler::Command(decode) => match decode(message) {
                Ok(command) => self.perform(command),
                Err(error) => self.refuse(error, Asked::Line),
            },
            Op => {
                let password = message.params.join(" ");
                if let Err(error) = conn::op(&self.cx, self.peer, self.id, password).await {
                    self.refuse(error, Asked::Line);
                }
            }
            Handler::ChatHistory => self.chathistory(message).await,
            Quit => {}
        }
    }

    fn nick(&mut self, message: &Message<'_>) {
        match message.word(0) {
            None => self.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]),
            Some(new) => self.perform(Command::Nick(new.to_owned())),
        }
    }

    fn names(&mut self, message: &Message<'_>) {
        self.room_query(message, AnswerAs::Names);
    }

    fn who(&mut self, message: &Message<'_>) {
        self.room_query(message, AnswerAs::Who);
    }

    fn list(&mut self, _: &Message<'_>) {
        self.show(AnswerAs::List, Some(self.cx.board.rooms()));
    }

    fn rooms(&mut self, _: &Message<'_>) {
        self.show(AnswerAs::Notice, Some(self.cx.board.rooms()));
    }

    /// `AWAY :text` / `AWAY`: `/away`, kept in the hub; its `306`/`305` come
    /// back through the writer once the hub has taken it.
    fn away(&mut self, message: &Message<'_>) {
        let text = message.param(0).map(clean_text).filter(|t| !t.is_empty());
        self.perform(Command::Away(text));
    }

    /// `CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN #yourroom REF... LIMIT`,
    /// answered from the room's kept history ([`chathistory`]) and, for what
    /// it no longer holds, the record ([`older`]); `TARGETS` with none, as the
    /// one channel there is is the one the client is in. The reader waits for
    /// the record, so answers stay in the order they were asked.
    async fn chathistory(&mut self, message: &Message<'_>) {
        let sub = message.word(0).unwrap_or_default().to_ascii_uppercase();
        if sub == "TARGETS" {
            if self.caps.has(super::caps::BATCH) {
                let mut lines = String::new();
                let (open, close) = (["+targets", "draft/chathistory-targets"], ["-targets"]);
                message::write(&mut lines, None, Source::Server, "BATCH", &open);
                message::write(&mut lines, None, Source::Server, "BATCH", &close);
                self.send(Direct::Raw(lines));
            }
            return;
        }
        let sub = clean_word(&sub);
        let target = message.word(1).unwrap_or_default();
        let room = self.room();
        if protocol::normalize_room(target).ok().as_deref() != Some(&room) {
            let text = format!("Only #{room}, the channel you are in, has history for you");
            let params = [
                "CHATHISTORY",
                "INVALID_TARGET",
                &sub,
                &clean_word(target),
                &text,
            ];
            return self.reply("FAIL", &params);
        }
        let lines = self.cx.board.history_of(&room);
        let most = self.cx.config.history.replay_lines;
        let args = message.params.get(2..).unwrap_or_default();
        let mut answer = match chathistory::select(&lines, &sub, args, most) {
            Ok(answer) => answer,
            Err(fail) => return self.reply("FAIL", &["CHATHISTORY", fail.code, &sub, fail.text]),
        };
        if let Some(plan) = older::plan(&lines, &sub, args, most, &answer) {
            let (config, from) = (self.cx.config.clone(), room.clone());
            let read = tokio::task::spawn_blocking(move || older::read(&config, &from, &plan));
            // A record that does not answer (PostgreSQL unreachable) holds up
            // this client only so long; the kept lines are still an answer.
            match tokio::time::timeout(older::PATIENCE, read).await {
                Ok(Ok(Ok(older))) => {
                    let all = older::merge(older, &lines);
                    if let Ok(more) = chathistory::select(&all, &sub, args, most) {
                        answer = more;
                    }
                }
                Ok(Ok(Err(err))) => {
                    tracing::warn!("CHATHISTORY: the record could not be read: {err:#}")
                }
                Ok(Err(err)) => tracing::warn!("CHATHISTORY: the read of the record failed: {err}"),
                Err(_) => tracing::warn!("CHATHISTORY: the record did not answer in time"),
            }
        }
        let channel = format!("#{room}");
        self.send(Direct::History {
            channel,
            lines: answer,
        });
    }

    fn reauthenticate(&mut self, _: &Message<'_>) {
        let text = "You have already logged in; SASL comes before registration";
        self.numeric(ERR_SASLALREADY, &[text]);
    }

    fn reregister(&mut self, _: &Message<'_>) {
        self.numeric(ERR_ALREADYREGISTERED, &["You may not reregister"]);
    }

    /// Hands `command` to the switchboard; a refusal comes back through the
    /// writer, whether it is refused now or once it has been ordered.
    fn perform(&self, command: Command) {
        if let Err(error) = self.cx.board.perform(self.id, command.clone()) {
            self.refuse(error, Asked::Command(command));
        }
    }

    /// `PRIVMSG`/`NOTICE #yourroom :text` is chat; to a nick, a private message.
    /// CTCP inside: `ACTION` is `/me` in the room (to a nick, a private message
    /// between asterisks); other requests are answered by the server ([`ctcp`]).
    fn privmsg(&mut self, message: &Message<'_>) {
        let Some(target) = message.word(0) else {
            let verb = message.verb.to_ascii_uppercase();
            self.numeric(ERR_NORECIPIENT, &[&format!("No recipient given ({verb})")]);
            return;
        };
        // Several targets at once would be several lines; the first is enough.
        let target = target.split(',').next().unwrap_or(target);
        let raw = message.param(1).unwrap_or_default();
        let mut action = false;
        let text = match ctcp::parse(raw) {
            Some(request) if request.command == "ACTION" => {
                action = true;
                clean_text(request.args)
            }
            // A CTCP reply (in a NOTICE) is never answered, or two would loop.
            _ if message.verb.eq_ignore_ascii_case("NOTICE") && raw.starts_with(ctcp::MARK) => {
                return;
            }
            Some(request) => return self.answer_ctcp(target, &request),
            None => clean_text(raw),
        };
        if text.is_empty() {
            self.numeric(ERR_NOTEXTTOSEND, &["No text to send"]);
            return;
        }
        if text.len() > self.cx.config.limits.max_line_bytes {
            let limit = self.cx.config.limits.max_line_bytes;
            self.refuse(CommandError::TooLong(limit), Asked::Chat);
            return;
        }
        if target.starts_with('#') {
            let room = self.room();
            if protocol::normalize_room(target).ok().as_deref() != Some(&room) {
                let channel = clean_word(target);
                let text = format!("Cannot send to channel: you are in #{room}");
                self.numeric(ERR_CANNOTSENDTOCHAN, &[&channel, &text]);
                return;
            }
            if action {
                return self.perform(Command::Me(text));
            }
            if let Err(error) = self.cx.board.chat(self.id, text) {
                self.refuse(error, Asked::Chat);
            }
            return;
        }
        let text = if action { format!("*{text}*") } else { text };
        self.perform(Command::Msg {
            to: target.to_owned(),
            text,
        });
    }

    /// A CTCP request to `target` (the server, a channel or a user), answered by
    /// the server: from the user asked, if there is one, as clients expect the
    /// reply from whom they asked.
    fn answer_ctcp(&self, target: &str, request: &ctcp::Ctcp<'_>) {
        let Some(reply) = ctcp::answer(request, self.cx.board.clock().now_ms()) else {
            return;
        };
        let user = clean_word(target);
        let from = match target.starts_with('#') || self.cx.board.is_name_free(&user) {
            true => Source::Server,
            false => Source::User(&user),
        };
        let mut line = String::new();
        message::write(
            &mut line,
            self.stamp(),
            from,
            "NOTICE",
            &[&self.me(), &reply],
        );
        self.send(Direct::Raw(line));
    }

    /// `JOIN #room`: `/join`. One room at a time: of `JOIN #a,#b` the first is
    /// joined and the others refused (`405`), so a client that rejoins its saved
    /// channels knows where it is. `JOIN 0` (leave every channel) is a `PART`.
    fn join(&mut self, message: &Message<'_>) {
        let channels = message.word(0).unwrap_or_default();
        let mut channels = channels.split(',').filter(|c| !c.is_empty());
        let Some(channel) = channels.next() else {
            return;
        };
        if channel == "0" {
            let room = format!("#{}", self.room());
            return self.leave_channel(&room);
        }
        match protocol::normalize_room(channel) {
            Ok(room) => self.go_to(room),
            Err(error) => self.refuse(error, Asked::Command(Command::Join(clean_word(channel)))),
        }
        let text = "You can be in one channel at a time";
        for other in channels {
            self.numeric(ERR_TOOMANYCHANNELS, &[&clean_word(other), text]);
        }
    }

    /// `/join`, unless already there; the writer shows the move once it is made.
    fn go_to(&mut self, room: String) {
        if room != self.room() {
            self.perform(Command::Join(room));
        }
    }

    /// `PART` of your room takes you to the default room; there is no leaving it.
    fn part(&mut self, message: &Message<'_>) {
        self.leave_channel(message.word(0).unwrap_or_default());
    }

    fn leave_channel(&mut self, channels: &str) {
        let room = self.room();
        let ours = channels
            .split(',')
            .any(|c| protocol::normalize_room(c).ok().as_deref() == Some(&room));
        if !ours {
            let channel = clean_word(channels);
            self.numeric(ERR_NOTONCHANNEL, &[&channel, "You're not on that channel"]);
            return;
        }
        let default = self.cx.config.server.default_room.clone();
        if room == default {
            let text = format!("#{default} is where everyone is when not in another room; join another channel to leave it.");
            self.notice(&text);
            return;
        }
        self.go_to(default);
    }

    /// `NAMES`/`WHO`: the hub answers for your room; other rooms are not shown.
    fn room_query(&self, message: &Message<'_>, purpose: AnswerAs) {
        let target = message.word(0);
        let room = self.room();
        let ours =
            target.is_none_or(|t| protocol::normalize_room(t).ok().as_deref() == Some(&room));
        if ours {
            return self.show(purpose, self.cx.board.who(self.id));
        }
        let target = clean_word(target.unwrap_or("*"));
        let mut line = String::new();
        if purpose == AnswerAs::Names {
            render::end_of_names(&mut line, self.stamp(), &self.me(), &target);
            self.send(Direct::Raw(line));
        } else {
            self.numeric(RPL_ENDOFWHO, &[&target, "End of /WHO list."]);
        }
    }

    fn topic(&mut self, message: &Message<'_>) {
        let channel = message.word(0).unwrap_or_default();
        let channel = clean_word(channel);
        if message.params.len() > 1 {
            self.numeric(
                ERR_CHANOPRIVSNEEDED,
                &[&channel, "Topics are not used here"],
            );
        } else {
            self.numeric(RPL_NOTOPIC, &[&channel, "No topic is set"]);
        }
    }

    fn mode(&mut self, message: &Message<'_>) {
        let target = message.word(0).unwrap_or_default();
        let target = clean_word(target);
        if target.starts_with('#') {
            match message.param(1).map(|m| m.trim_start_matches('+')) {
                None => self.numeric(RPL_CHANNELMODEIS, &[&target, "+nt"]),
                Some("b") => self.numeric(RPL_ENDOFBANLIST, &[&target, "End of ban list"]),
                Some("e") => self.numeric(RPL_ENDOFEXCEPTLIST, &[&target, "End of list"]),
                Some("I") => self.numeric(RPL_ENDOFINVITELIST, &[&target, "End of list"]),
                Some(_) => self.numeric(
                    ERR_CHANOPRIVSNEEDED,
                    &[&target, "Channel modes are fixed here"],
                ),
            }
        } else if target.eq_ignore_ascii_case(&self.me()) {
            self.numeric(RPL_UMODEIS, &["+"]);
        } else {
            self.numeric(ERR_USERSDONTMATCH, &["Can't change mode for other users"]);
        }
    }

    fn whois(&mut self, message: &Message<'_>) {
        let Some(nick) = message.params.iter().rev().find(|p| !p.is_empty()) else {
            self.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
            return;
        };
        let nick = clean_word(nick);
        if self.cx.board.is_name_free(&nick) {
            self.numeric(ERR_NOSUCHNICK, &[&nick, "No such nick/channel"]);
        } else {
            self.numeric(RPL_WHOISUSER, &[&nick, &nick, message::HOST, "*", &nick]);
            let server = &self.cx.config.server.name;
            self.numeric(RPL_WHOISSERVER, &[&nick, message::HOST, server]);
            if let Some(away) = self.cx.board.away_of(&nick) {
                self.numeric(RPL_AWAY, &[&nick, &away]);
            }
        }
        self.numeric(RPL_ENDOFWHOIS, &[&nick, "End of /WHOIS list."]);
    }

    fn ison(&mut self, message: &Message<'_>) {
        let online: Vec<&str> = message
            .params
            .iter()
            .flat_map(|p| p.split(' '))
            .filter(|n| !n.is_empty() && !self.cx.board.is_name_free(n))
            .collect();
        self.numeric(RPL_ISON, &[&online.join(" ")]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_verb_is_listed_once_in_upper_case_and_found_in_any_case() {
        for (i, verb) in VERBS.iter().enumerate() {
            assert_eq!(verb.name, verb.name.to_ascii_uppercase());
            assert!(
                VERBS[..i].iter().all(|v| v.name != verb.name),
                "{}",
                verb.name
            );
            let lower = verb.name.to_ascii_lowercase();
            assert!(std::ptr::eq(find(&lower).unwrap(), verb));
        }
        assert!(find("FROB").is_none());
    }
}
