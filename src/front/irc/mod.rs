//! The IRC front end (SPEC section 7): irssi, WeeChat, HexChat and friends in the
//! same rooms as `chat-client` users. A room `lobby` is the channel `#lobby`; a
//! user is in one channel at a time, as everywhere in classchat.
//!
//! The reader (this module) turns IRC verbs into the same switchboard calls the
//! line protocol makes, under the same login rules ([`Login`]), rate limit,
//! sanitising and queue limits, so the record and the report cannot tell the
//! two apart. It keeps no state of the chat: its nick and channel are what the
//! switchboard says they are, so a change takes effect when the hub (on a cluster
//! node, the stream) accepts it. It answers what only concerns its client
//! (registration numerics, `PONG`) itself; the writer ([`render`]) renders what
//! the hub queues, refusals included. Both reach the socket through the writer
//! task, in order (see [`render::Direct`]).
//!
//! - [`message`]: IRC lines read and written.
//! - [`caps`]: the IRCv3 capabilities offered and turned on.
//! - [`chathistory`]: `CHATHISTORY`, history a client asks for.
//! - [`older`]: the lines of that history older than the room keeps, from the
//!   record.
//! - [`ctcp`]: `ACTION` and the requests the server answers for everyone.
//! - [`given`]: what each user was already shown, so it is not replayed again.
//! - [`help`]: `HELP` as an IRC user types the commands.
//! - [`verbs`]: what each verb a registered client sends does.
//! - [`render`]: hub lines as IRC.
//! - [`sasl`]: logging in with `AUTHENTICATE PLAIN`.
//! - [`numerics`]: the numeric replies.

pub mod caps;
mod chathistory;
mod ctcp;
pub mod given;
mod help;
pub mod message;
pub mod numerics;
mod older;
pub mod render;
mod sasl;
mod verbs;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use self::caps::Caps;
use self::message::{Message, Refusal, Source};
use self::numerics::*;
use self::render::{AnswerAs, Direct, View};
use super::conn::{self, finish_writer, next_inbound, read_line, Batch, Read};
use super::login::{Admitted, Login, Step};
use super::seat::Seat;
use super::{Context, ReadHalf, WriteHalf};
use crate::hub::ConnId;
use crate::limiter::RateKey;
use crate::mailbox;
use crate::protocol::{
    self, Asked, CodeKind, Command, CommandError, Inbound, LeaveReason, LineCodec, LoginError,
    NickError, Notice, ServerLine, Stamped,
};
use crate::switchboard::Outbox;

/// Initial read buffer per connection.
const READ_BUFFER: usize = 512;

/// Silence after which a registered client is sent a `PING`; as long again without
/// any line (its `PONG`) and it is dropped. Every IRC client answers pings, so
/// this finds a client that is gone even when its kernel still answers TCP.
const PING_AFTER: Duration = Duration::from_secs(30);

/// How to answer a `464` about a wrong code, in the client most students use.
const RETRY_PASS: &str = "Try again with PASS (in irssi: /quote PASS CODE).";

/// The client's lines; boxed, so that TCP and TLS share every method below.
type Lines = FramedRead<Box<dyn AsyncRead + Send + Unpin>, LineCodec>;

/// Serves one accepted IRC client (TCP or TLS) until it leaves, is dropped, or
/// the server stops; `seat` as in [`line::serve`](super::line::serve).
pub async fn serve(
    reader: impl ReadHalf,
    writer: impl WriteHalf,
    peer: SocketAddr,
    id: ConnId,
    cx: Context,
    seat: Seat,
) {
    let peer = Some(peer.ip());
    let reader: Box<dyn AsyncRead + Send + Unpin> = Box::new(reader);
    let capacity = cx.config.limits.outbound_queue;
    let (outbox, queue) = mailbox::bounded(capacity);
    let (direct, directs) = mailbox::bounded(capacity);
    let view = View::new(cx.board.clone(), id, cx.irc_given.clone());
    let writer = tokio::spawn(write_loop(writer, queue, directs, view));
    let lines = FramedRead::with_capacity(reader, LineCodec::new(message::MAX_LINE), READ_BUFFER);
    let mut conn = Connection {
        id,
        cx,
        outbox,
        direct,
        dropped: CancellationToken::new(),
        peer,
        nick: None,
        caps: Caps::default(),
        login: RateKey::default(),
        seat,
    };
    let mut lines = lines;
    if conn.handshake(&mut lines).await {
        let reason = conn.chat_loop(&mut lines).await;
        if let Some(reason) = reason {
            conn.cx.board.leave(id, reason);
        }
    }
    let abandon = conn.outbox.is_full() || conn.direct.is_full();
    // As on the line port: keep reading open until the last line is out, so the
    // kernel does not reset the connection under it.
    drop(conn);
    finish_writer(writer, abandon).await;
    drop(lines);
}

/// Tells a client why it cannot come in (`ERROR`) and closes, without taking a
/// seat.
pub async fn refuse<S: AsyncWrite + Unpin>(socket: S, reason: LoginError) {
    let mut line = String::new();
    message::write(
        &mut line,
        None,
        Source::Server,
        "ERROR",
        &[&reason.to_string()],
    );
    conn::say_and_close(socket, line.as_bytes()).await;
}

struct Connection {
    id: ConnId,
    cx: Context,
    outbox: Outbox,
    direct: mailbox::Sender<Direct>,
    dropped: CancellationToken,
    peer: Option<IpAddr>,
    /// The nick given before registration (after it, the switchboard's).
    nick: Option<String>,
    /// The capabilities the client turned on.
    caps: Caps,
    /// The name logged in with, which the chat rate is kept by.
    login: RateKey,
    /// Places under the connection limits, given back when the connection ends.
    seat: Seat,
}

/// What a registration step leads to.
enum Flow {
    Wait,
    Registered,
    Close,
}

/// The state of registration, before `001`.
#[derive(Default)]
struct Registration {
    login: Login,
    pass: Option<String>,
    user: bool,
    /// Between `CAP LS`/`REQ` and `CAP END`, no welcome.
    negotiating: bool,
    /// The code last asked for: a name was given, even if it was given up
    /// since (a new `NICK` while the code was asked for).
    asked: Option<CodeKind>,
    /// `AUTHENTICATE PLAIN` was sent: the payload read so far.
    sasl: Option<String>,
    /// Who SASL proved the client to be, admitted once registration ends.
    account: Option<Admitted>,
}

impl Connection {
    fn me(&self) -> String {
        match self.cx.board.nick(self.id) {
            Some(nick) => nick.to_string(),
            None => self.nick.clone().unwrap_or_else(|| "*".to_owned()),
        }
    }

    /// This client's room, as the switchboard has it.
    fn room(&self) -> String {
        self.cx.board.room(self.id).unwrap_or_default().to_string()
    }

    /// Hands the writer one message. A writer that cannot keep up with its own
    /// client's answers has a client that does not read: it goes as too slow.
    fn send(&self, direct: Direct) -> bool {
        self.direct.try_send(direct).is_ok()
    }

    /// Queues the refusal of what this client asked, behind what the hub queued
    /// before it; the writer words it ([`render`]), as it words the hub's.
    fn refuse(&self, error: CommandError, asked: Asked) {
        let line = Stamped::new(
            self.cx.board.clock().now_ms(),
            ServerLine::Refused { error, asked },
        );
        let _ = self.outbox.try_send(line);
    }

    fn stamp(&self) -> Option<i64> {
        self.caps
            .has(caps::SERVER_TIME)
            .then(|| self.cx.board.clock().now_ms())
    }

    /// Sends one line from the server to this client alone.
    fn reply(&self, verb: &str, params: &[&str]) {
        let mut line = String::new();
        message::write(&mut line, self.stamp(), Source::Server, verb, params);
        self.send(Direct::Raw(line));
    }

    /// A numeric: `:classchat NNN me params...`.
    fn numeric(&self, code: &str, params: &[&str]) {
        let me = self.me();
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(me.as_str());
        all.extend_from_slice(params);
        self.reply(code, &all);
    }

    fn notice(&self, text: &str) {
        self.reply("NOTICE", &[&self.me(), text]);
    }

    /// Reads lines until the client is registered and in its first room. `false`
    /// means it is gone (or was never let in).
    async fn handshake(&mut self, lines: &mut Lines) -> bool {
        let deadline = tokio::time::Instant::now() + self.cx.config.limits.handshake_timeout();
        let mut reg = Registration::default();
        loop {
            let read = tokio::select! {
                read = read_line(lines) => read,
                _ = tokio::time::sleep_until(deadline) => {
                    let secs = self.cx.config.limits.handshake_timeout_secs;
                    // A name that was given is never said to be missing.
                    let asking = reg.login.asking().or(reg.asked);
                    let error = LoginError::timed_out(secs, asking);
                    self.reply("ERROR", &[&error.to_string()]);
                    return false;
                }
                _ = self.cx.shutdown.cancelled() => {
                    self.reply("ERROR", &[&Notice::ShuttingDown.to_string()]);
                    return false;
                }
                _ = self.seat.evicted() => {
                    self.reply("ERROR", &[&LoginError::Busy.to_string()]);
                    return false;
                }
            };
            let inbound = match read {
                Read::Closed | Read::Lost => return false,
                Read::Line(inbound) => inbound,
            };
            let Some(text) = self.decode(inbound) else {
                continue;
            };
            let Some(message) = self.parse(&text) else {
                continue;
            };
            let flow = self.register_step(&mut reg, &message).await;
            match flow {
                Flow::Wait => {}
                Flow::Registered => return true,
                Flow::Close => return false,
            }
        }
    }

    async fn register_step(&mut self, reg: &mut Registration, message: &Message<'_>) -> Flow {
        let verb = message.verb.to_ascii_uppercase();
        match verb.as_str() {
            "CAP" => {
                match message.word(0).map(str::to_ascii_uppercase).as_deref() {
                    Some("LS" | "REQ") => reg.negotiating = true,
                    Some("END") => reg.negotiating = false,
                    _ => {}
                }
                self.cap(message);
            }
            "PASS" => {
                if !self.enough(message, 1) {
                    return Flow::Wait;
                }
                let pass = message.word(0).unwrap_or_default();
                if reg.login.asking().is_some() {
                    let step = reg.login.offer(&self.cx, self.peer, pass).await;
                    return self.login_step(reg, step).await;
                }
                reg.pass = Some(pass.to_owned());
                return Flow::Wait;
            }
            "NICK" => {
                let Some(nick) = message.word(0) else {
                    self.numeric(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
                    return Flow::Wait;
                };
                if reg.login.asking().is_some() {
                    // A new name while a code is asked for: the pending name is
                    // given up, the count of wrong codes kept.
                    let _ = reg.login.refused(NickError::Taken(String::new()));
                }
                self.nick = Some(nick.to_owned());
            }
            "USER" => {
                if !self.enough(message, 4) {
                    return Flow::Wait;
                }
                reg.user = true;
            }
            "AUTHENTICATE" => return self.authenticate(reg, message).await,
            "PING" => self.pong(message),
            "PONG" => {}
            "QUIT" => {
                self.reply("ERROR", &["Closing link (Quit)"]);
                return Flow::Close;
            }
            _ => {
                let verb = clean_word(message.verb);
                self.numeric(ERR_NOTREGISTERED, &[&verb, "You have not registered"]);
                return Flow::Wait;
            }
        }
        if reg.negotiating || !reg.user || reg.login.asking().is_some() {
            return Flow::Wait;
        }
        let Some(nick) = self.nick.clone() else {
            return Flow::Wait;
        };
        if let Some(admitted) = reg.account.take() {
            return self.login_step(reg, Step::Admit(admitted)).await;
        }
        let step = reg.login.offer(&self.cx, self.peer, &nick).await;
        self.login_step(reg, step).await
    }

    /// `AUTHENTICATE`: `PLAIN`, then its payload in pieces of
    /// [`sasl::PIECE`]; `*` gives up.
    async fn authenticate(&mut self, reg: &mut Registration, message: &Message<'_>) -> Flow {
        let Some(word) = message.word(0) else {
            self.enough(message, 1);
            return Flow::Wait;
        };
        if reg.account.is_some() {
            self.numeric(
                ERR_SASLALREADY,
                &["You have already authenticated using SASL"],
            );
            return Flow::Wait;
        }
        if word == "*" {
            reg.sasl = None;
            self.numeric(ERR_SASLABORTED, &["SASL authentication aborted"]);
            return Flow::Wait;
        }
        let Some(mut payload) = reg.sasl.take() else {
            if word.eq_ignore_ascii_case("PLAIN") {
                reg.sasl = Some(String::new());
                self.reply("AUTHENTICATE", &["+"]);
            } else {
                self.numeric(RPL_SASLMECHS, &["PLAIN", "are available SASL mechanisms"]);
                self.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
            }
            return Flow::Wait;
        };
        if word != "+" {
            payload.push_str(word);
        }
        if word.len() == sasl::PIECE && payload.len() < 4 * sasl::PIECE {
            reg.sasl = Some(payload);
            return Flow::Wait;
        }
        let Some(plain) = sasl::plain(&payload) else {
            self.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
            return Flow::Wait;
        };
        self.sasl_login(reg, plain).await
    }

    /// Logs `plain`'s account in through the same [`Login`] as `NICK` and
    /// `PASS`: only a name that has a code of its own is an account, and every
    /// wrong code counts.
    async fn sasl_login(&mut self, reg: &mut Registration, plain: sasl::Plain) -> Flow {
        let forget = |login: &mut Login| {
            if login.asking().is_some() {
                let _ = login.refused(NickError::Taken(String::new()));
            }
        };
        forget(&mut reg.login);
        let step = match reg.login.offer(&self.cx, self.peer, &plain.account).await {
            Step::Ask(CodeKind::Personal | CodeKind::Password) => {
                reg.login.offer(&self.cx, self.peer, &plain.password).await
            }
            Step::GiveUp(error) => Step::GiveUp(error),
            _ => Step::Retry(LoginError::NotOnRoster(plain.account)),
        };
        forget(&mut reg.login);
        match step {
            Step::Admit(admitted) => {
                let me = self.me();
                let mask = format!("{me}!{me}@{}", message::HOST);
                let text = format!("You are now logged in as {}", admitted.name);
                self.numeric(RPL_LOGGEDIN, &[&mask, &admitted.name, &text]);
                self.numeric(RPL_SASLSUCCESS, &["SASL authentication successful"]);
                reg.account = Some(admitted);
                Flow::Wait
            }
            Step::GiveUp(error) => {
                self.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
                self.reply("ERROR", &[&error.to_string()]);
                Flow::Close
            }
            _ => {
                self.numeric(ERR_SASLFAIL, &["SASL authentication failed"]);
                Flow::Wait
            }
        }
    }

    /// Carries a login step through: asks for what is missing, refuses with the
    /// matching numeric, or registers.
    async fn login_step(&mut self, reg: &mut Registration, mut step: Step) -> Flow {
        loop {
            step = match step {
                Step::Ask(kind) => match (reg.asked.insert(kind), reg.pass.take()).1 {
                    Some(pass) => reg.login.offer(&self.cx, self.peer, &pass).await,
                    None => {
                        let text = format!(
                            "{} Send it with PASS (in irssi: /quote PASS CODE, or /connect HOST PORT CODE).",
                            Notice::AskCode(kind)
                        );
                        self.numeric(ERR_PASSWDMISMATCH, &[&text]);
                        return Flow::Wait;
                    }
                },
                Step::Retry(error) => {
                    self.login_error(error);
                    return Flow::Wait;
                }
                Step::GiveUp(error @ LoginError::TooManyCodes) => {
                    // The close is what an IRC client shows last: it starts
                    // with the reason, as a refused PASS's 464 did.
                    self.reply("ERROR", &[&format!("Wrong code. {error}")]);
                    return Flow::Close;
                }
                Step::GiveUp(error) => {
                    self.reply("ERROR", &[&error.to_string()]);
                    return Flow::Close;
                }
                Step::Admit(_) if !self.cx.seats.promote(&mut self.seat) => {
                    let full = LoginError::Full(self.cx.config.limits.max_clients);
                    self.reply("ERROR", &[&full.to_string()]);
                    return Flow::Close;
                }
                Step::Admit(admitted) => {
                    // Checked before the welcome, which names the nick for good.
                    if !self
                        .cx
                        .board
                        .may_register(&admitted.name, &admitted.identity)
                    {
                        reg.login.refused(NickError::Taken(admitted.name))
                    } else {
                        self.nick = Some(admitted.name.clone());
                        self.welcome();
                        let registered = self.cx.board.register(
                            self.id,
                            &admitted.name,
                            admitted.identity,
                            self.outbox.clone(),
                            self.dropped.clone(),
                        );
                        if let Err(error) = registered {
                            // Taken between the check and here: too late to refuse
                            // the nick after 001.
                            self.reply("ERROR", &[&error.to_string()]);
                            return Flow::Close;
                        }
                        self.cx
                            .board
                            .set_echo(self.id, self.caps.has(caps::ECHO_MESSAGE));
                        self.cx
                            .board
                            .set_away_notify(self.id, self.caps.has(caps::AWAY_NOTIFY));
                        tracing::Span::current().record("nick", admitted.name.as_str());
                        self.login = RateKey::new(&admitted.name);
                        self.send(Direct::Registered);
                        return Flow::Registered;
                    }
                }
            };
        }
    }

    fn login_error(&self, error: LoginError) {
        match error {
            LoginError::Nick(error) => self.nick_error(error),
            LoginError::WrongCode { .. } => {
                let text = format!("{error} {RETRY_PASS}");
                self.numeric(ERR_PASSWDMISMATCH, &[&text]);
            }
            LoginError::Line(error) => self.notice(&error.to_string()),
            other => self.notice(&other.to_string()),
        }
    }

    fn nick_error(&self, error: NickError) {
        let text = error.to_string();
        match &error {
            NickError::Taken(nick) => {
                let nick = clean_word(nick);
                self.numeric(ERR_NICKNAMEINUSE, &[&nick, &text]);
            }
            _ => {
                let nick = clean_word(self.nick.as_deref().unwrap_or("*"));
                self.numeric(ERR_ERRONEUSNICKNAME, &[&nick, &text]);
            }
        }
    }

    /// `001`–`005` and the message of the day.
    fn welcome(&self) {
        let config = &self.cx.config;
        let me = self.me();
        let network: String = config
            .server
            .name
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '-' })
            .collect();
        let version = concat!("classchat-", env!("CARGO_PKG_VERSION"));
        let welcome = format!("Welcome to {}, {me}", config.server.name);
        self.numeric(RPL_WELCOME, &[&welcome]);
        let host = format!("Your host is {}, running {version}", message::HOST);
        self.numeric(RPL_YOURHOST, &[&host]);
        self.numeric(RPL_CREATED, &[&format!("This server speaks {version}")]);
        self.numeric(RPL_MYINFO, &[message::HOST, version, "i", "nt"]);
        let mut isupport = vec![
            "CHANTYPES=#".to_owned(),
            "CASEMAPPING=ascii".to_owned(),
            format!("NICKLEN={}", config.limits.max_nick_len),
            "CHANNELLEN=33".to_owned(),
            "CHANLIMIT=#:1".to_owned(),
            "PREFIX=(oh)@%".to_owned(),
            "CHANMODES=,,,nt".to_owned(),
            format!("NETWORK={network}"),
            "MSGREFTYPES=timestamp,msgid".to_owned(),
            format!("AWAYLEN={}", crate::hub::AWAY_LEN),
        ];
        // `CHATHISTORY=0` would read as no limit; without replay lines there is
        // no history to ask for.
        if config.history.replay_lines > 0 {
            isupport.push(format!("CHATHISTORY={}", config.history.replay_lines));
        }
        let mut params: Vec<&str> = isupport.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        self.numeric(RPL_ISUPPORT, &params);
        let start = format!("- {} Message of the Day -", config.server.name);
        self.numeric(RPL_MOTDSTART, &[&start]);
        if !config.server.motd.is_empty() {
            self.numeric(RPL_MOTD, &[&format!("- {}", config.server.motd)]);
        }
        self.numeric(RPL_MOTD, &[&format!("- {}", Notice::Recorded)]);
        self.numeric(RPL_ENDOFMOTD, &["End of /MOTD command."]);
    }

    /// `CAP LS`, `REQ`, `LIST`, `END`.
    fn cap(&mut self, message: &Message<'_>) {
        let sub = message.word(0).unwrap_or("").to_ascii_uppercase();
        let me = self.me().to_owned();
        match sub.as_str() {
            "LS" => {
                let version_302 = message.word(1).and_then(|v| v.parse::<u32>().ok()) >= Some(302);
                self.reply("CAP", &[&me, "LS", &caps::offered(version_302)]);
            }
            "LIST" => self.reply("CAP", &[&me, "LIST", &self.caps.list()]),
            "REQ" => {
                let wanted = message.param(1).unwrap_or("");
                match self.caps.request(wanted) {
                    Some(caps) => {
                        self.caps = caps;
                        self.send(Direct::Caps(caps));
                        let echo = caps.has(caps::ECHO_MESSAGE);
                        self.cx.board.set_echo(self.id, echo);
                        let away_notify = caps.has(caps::AWAY_NOTIFY);
                        self.cx.board.set_away_notify(self.id, away_notify);
                        self.reply("CAP", &[&me, "ACK", wanted]);
                    }
                    None => self.reply("CAP", &[&me, "NAK", wanted]),
                }
            }
            "END" => {}
            _ => {
                let sub = clean_word(&sub);
                self.numeric(ERR_INVALIDCAPCMD, &[&sub, "Invalid CAP command"]);
            }
        }
    }

    fn pong(&mut self, message: &Message<'_>) {
        let token = message.param(0).unwrap_or("");
        self.reply("PONG", &[message::HOST, token]);
    }

    fn refusal(&self, refusal: Refusal) {
        match refusal {
            Refusal::TooLong => self.numeric(ERR_INPUTTOOLONG, &["Input line was too long"]),
            Refusal::InvalidUtf8 => self.notice(&CommandError::InvalidUtf8.to_string()),
        }
    }

    /// Hands the writer a room answer, looked up now, to render as `form`.
    fn show(&self, form: AnswerAs, answer: Option<protocol::Answer>) {
        if let Some(answer) = answer {
            self.send(Direct::Answer(form, answer));
        }
    }

    /// The one decode path for every line, registered or not: its clean text, or
    /// `None` when it was refused (and answered).
    fn decode(&self, inbound: Inbound) -> Option<String> {
        let bytes = match inbound {
            Inbound::TooLong => {
                self.refusal(Refusal::TooLong);
                return None;
            }
            Inbound::Line(bytes) => bytes,
        };
        clean_line(&bytes)
            .map_err(|refusal| self.refusal(refusal))
            .ok()
    }

    /// The message in a clean line; `None` for an empty line or a refused one
    /// (answered).
    fn parse<'a>(&self, text: &'a str) -> Option<Message<'a>> {
        message::parse(text)
            .map_err(|refusal| self.refusal(refusal))
            .ok()
            .flatten()
    }

    /// Reads and acts on messages until the client leaves. Returns the reason to
    /// record, or `None` when the switchboard has already removed the client.
    async fn chat_loop(&mut self, lines: &mut Lines) -> Option<LeaveReason> {
        let mut pinged = false;
        loop {
            let read = tokio::select! {
                read = next_inbound(lines, &self.dropped, &self.cx) => read,
                _ = tokio::time::sleep(PING_AFTER) => {
                    if pinged {
                        let secs = (PING_AFTER * 2).as_secs();
                        self.reply("ERROR", &[&format!("Ping timeout: {secs} seconds")]);
                        return Some(LeaveReason::Lost);
                    }
                    self.reply("PING", &[message::HOST]);
                    pinged = true;
                    continue;
                }
            };
            pinged = false;
            let inbound = match read {
                Ok(inbound) => inbound,
                Err(left) => return left,
            };
            let Some(text) = self.decode(inbound) else {
                continue;
            };
            let Some(message) = self.parse(&text) else {
                continue;
            };
            let Some(verb) = verbs::find(message.verb) else {
                let verb = clean_word(message.verb);
                self.numeric(ERR_UNKNOWNCOMMAND, &[&verb, "Unknown command"]);
                continue;
            };
            if let verbs::Handler::Quit = verb.handler {
                let reason = message.param(0).map(clean_text).filter(|r| !r.is_empty());
                let _ = self.cx.board.perform(self.id, Command::Quit(reason));
                return None;
            }
            // Every line but keep-alives and capability talk counts against the
            // rate limit, as on the line port.
            if !verb.free && !self.cx.rate.check(&self.login) {
                let limit = self.cx.config.limits.messages_per_sec;
                self.refuse(CommandError::SlowDown(limit), Asked::Line);
                continue;
            }
            if self.dropped.is_cancelled() || self.direct.is_full() {
                return Some(LeaveReason::TooSlow);
            }
            self.act(verb, &message).await;
        }
    }
}

/// The line as text: `\r` and NUL, which would end or cut an IRC line wherever
/// it is echoed, are dropped; the rest is cleaned per parameter.
fn clean_line(bytes: &[u8]) -> Result<String, Refusal> {
    let text = std::str::from_utf8(bytes).map_err(|_| Refusal::InvalidUtf8)?;
    Ok(text.replace(['\r', '\0'], ""))
}

/// A nick or channel echoed back in a numeric: one word, no control characters.
fn clean_word(word: &str) -> String {
    protocol::sanitize(word)
        .split(' ')
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Text for others to read: IRC formatting (bold, colours) removed, then the
/// line protocol's sanitising.
fn clean_text(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // Colour: up to two digits, then optionally a comma and two more.
            '\u{3}' => {
                for _ in 0..2 {
                    chars.next_if(char::is_ascii_digit);
                }
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        for _ in 0..2 {
                            chars.next_if(char::is_ascii_digit);
                        }
                    }
                }
            }
            '\u{2}' | '\u{f}' | '\u{11}' | '\u{16}' | '\u{1d}' | '\u{1e}' | '\u{1f}' => {}
            c => plain.push(c),
        }
    }
    protocol::sanitize(&plain).into_owned()
}

/// Writes what the hub queues and what the reader sends, a batch per wake-up,
/// until both are closed or the socket fails. A reader's message comes after
/// every line queued before it was sent: an answer never overtakes the `JOIN`
/// it is about.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut queue: mailbox::Receiver<Arc<Stamped>>,
    mut directs: mailbox::Receiver<Direct>,
    mut view: View,
) {
    let mut batch = Batch::default();
    let (mut queue_open, mut directs_open) = (true, true);
    while queue_open || directs_open {
        tokio::select! {
            biased;
            count = batch.take(&mut queue), if queue_open => {
                if count == 0 {
                    queue_open = false;
                }
                for line in batch.lines.drain(..) {
                    view.feed(line, &mut batch.out);
                }
            }
            direct = directs.recv(), if directs_open => {
                // Lines queued between the two polls were queued first.
                while let Some(line) = queue.try_recv() {
                    view.feed(line, &mut batch.out);
                }
                match direct {
                    Some(direct) => view.direct(direct, &mut batch.out),
                    None => directs_open = false,
                }
            }
        }
        if !batch.out.is_empty() && conn::send(&mut socket, &batch.out).await.is_err() {
            return;
        }
        if batch.settle(&queue) {
            view.shrink();
            directs.release_room();
        }
    }
    let mut rest = Vec::new();
    view.flush(&mut rest);
    let _ = socket.write_all(&rest).await;
    let _ = socket.shutdown().await;
}
