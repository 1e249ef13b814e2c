//! One client connection: the username handshake, the reader loop that turns lines
//! into hub calls, and the writer task that drains the outgoing queue.
//!
//! Every line to the client, greeting and errors included, goes through one bounded
//! queue, so the client sees lines in the order they happened. The writer takes
//! everything already queued and writes it with one syscall, so a busy room costs
//! one write per wake-up, not one per line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::config::Config;
use crate::hub::{ConnId, Hub, LeaveReason, Outbound, Outbox};
use crate::limiter::RateLimiter;
use crate::password;
use crate::protocol::{self, Command, CommandError, Inbound, Input, LineCodec, NickError};

/// How long a closing connection may take to flush what is queued for it.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(3);

const USERNAME_PROMPT: &str = "* Please enter a username:";
const CODE_PROMPT: &str = "* This class needs a join code. Please enter the code:";

/// How far a client has got in the handshake.
#[derive(Default)]
struct Login {
    /// A valid, free name waiting for the join code.
    name: Option<String>,
    code_accepted: bool,
    wrong_codes: u32,
}

/// What the handshake does after a line.
enum Step {
    Done,
    AskCode,
    Retry(String),
    GiveUp(String),
}

/// Initial read buffer per connection.
const READ_BUFFER: usize = 256;

/// Buffer bytes a writer may keep while its client is idle.
const KEEP_WHEN_IDLE: usize = 2048;

/// Lines the writer takes off the queue per wake-up.
const WRITE_BATCH: usize = 256;

type Lines = FramedRead<OwnedReadHalf, LineCodec>;

/// Serves one accepted client until it leaves, is dropped, or the server stops.
/// `seat` is its place under the connection limits, given back as soon as it is no
/// longer a member, before the last lines are flushed, so that a client who sees
/// the connection close can come straight back.
pub async fn serve(
    socket: TcpStream,
    id: ConnId,
    hub: Arc<Hub>,
    config: Arc<Config>,
    shutdown: CancellationToken,
    seat: impl Send,
) {
    let peer = socket.peer_addr().map(|addr| addr.ip()).ok();
    let (reader, writer) = socket.into_split();
    let (outbox, queue) = mpsc::channel(config.limits.outbound_queue);
    let writer = tokio::spawn(write_loop(writer, queue, hub.clock().clone()));
    let mut conn = Connection {
        id,
        // A small first buffer: most lines are short, and it grows for long ones.
        lines: FramedRead::with_capacity(
            reader,
            LineCodec::new(config.limits.max_line_bytes),
            READ_BUFFER,
        ),
        hub,
        config,
        outbox,
        shutdown,
        dropped: CancellationToken::new(),
        peer,
    };
    if conn.handshake().await {
        let reason = conn.chat_loop().await;
        if let Some(reason) = reason {
            conn.hub.leave(id, reason);
        }
    }
    // A full queue means the client stopped reading: nothing more will get through.
    let abandon = conn.outbox.capacity() == 0;
    // Keep the read half open until the writer has sent its last line: closing a
    // socket with unread input makes the kernel send a reset, which can destroy the
    // goodbye still in flight.
    let lines = conn.into_reader();
    drop(seat);
    finish_writer(writer, abandon).await;
    drop(lines);
}

/// Lets the writer flush what is queued (for at most [`FLUSH_ON_CLOSE`]), unless
/// the client stopped reading, in which case nothing it is owed can arrive anyway.
async fn finish_writer(writer: tokio::task::JoinHandle<()>, abandon: bool) {
    let abort = writer.abort_handle();
    if abandon || tokio::time::timeout(FLUSH_ON_CLOSE, writer).await.is_err() {
        abort.abort();
    }
}

struct Connection {
    id: ConnId,
    hub: Arc<Hub>,
    config: Arc<Config>,
    /// This client's queue, used directly only before it is a member.
    outbox: Outbox,
    lines: Lines,
    shutdown: CancellationToken,
    /// Cancelled by the hub when it drops this client.
    dropped: CancellationToken,
    /// The client's address, to limit password guesses per machine.
    peer: Option<std::net::IpAddr>,
}

/// What the reader got from the socket.
enum Read {
    Line(Inbound),
    Closed,
    Lost,
}

impl Connection {
    /// Greets the client and reads names (and the join code, if the class has one)
    /// until one is accepted. `false` means the client is gone (or was never let
    /// in) and the connection should close.
    async fn handshake(&mut self) -> bool {
        let server = &self.config.server;
        self.say(format_args!("* Connected to {}.", server.name));
        if !server.motd.is_empty() {
            self.say(format_args!("* {}", server.motd));
        }
        self.say(format_args!(
            "* Everything said here is recorded with your name and the time."
        ));
        self.say(format_args!("{USERNAME_PROMPT}"));
        let deadline = tokio::time::Instant::now() + self.config.limits.handshake_timeout();
        let mut login = Login::default();
        loop {
            let read = tokio::select! {
                read = read_line(&mut self.lines) => read,
                _ = tokio::time::sleep_until(deadline) => {
                    let secs = self.config.limits.handshake_timeout_secs;
                    self.say(format_args!("! No username given within {secs} seconds; goodbye."));
                    return false;
                }
                _ = self.shutdown.cancelled() => {
                    self.say(format_args!("* Server is shutting down."));
                    return false;
                }
            };
            let text = match read {
                Read::Closed | Read::Lost => return false,
                Read::Line(Inbound::TooLong) => {
                    Err(CommandError::TooLong(self.config.limits.max_line_bytes).to_string())
                }
                Read::Line(Inbound::Line(bytes)) => match std::str::from_utf8(&bytes) {
                    Err(_) => Err(CommandError::InvalidUtf8.to_string()),
                    Ok(text) => Ok(protocol::sanitize(text).trim().to_owned()),
                },
            };
            let step = match text {
                Err(error) => Step::Retry(error),
                Ok(text) => self.login_step(&mut login, text),
            };
            match step {
                Step::Done => return true,
                Step::AskCode => self.say(format_args!("{CODE_PROMPT}")),
                Step::Retry(error) => {
                    self.say(format_args!("! {error}"));
                    let prompt = if login.name.is_some() {
                        CODE_PROMPT
                    } else {
                        USERNAME_PROMPT
                    };
                    self.say(format_args!("{prompt}"));
                }
                Step::GiveUp(error) => {
                    self.say(format_args!("! {error}"));
                    return false;
                }
            }
        }
    }

    /// Takes one handshake line: a username, or the join code after it.
    fn login_step(&self, login: &mut Login, text: String) -> Step {
        let access = &self.config.access;
        let Some(name) = login.name.take() else {
            if let Err(err) = self.hub.check_name(&text) {
                return Step::Retry(err.to_string());
            }
            if access.join_code.is_empty() || login.code_accepted {
                return self.register(login, &text);
            }
            if !self.hub.is_name_free(&text) {
                return Step::Retry(NickError::Taken(text).to_string());
            }
            login.name = Some(text);
            return Step::AskCode;
        };
        if constant_time_eq(text.as_bytes(), access.join_code.as_bytes()) {
            login.code_accepted = true;
            return self.register(login, &name);
        }
        login.wrong_codes += 1;
        tracing::warn!(attempt = login.wrong_codes, "wrong join code");
        let left = access.max_code_attempts.saturating_sub(login.wrong_codes);
        if left == 0 {
            return Step::GiveUp("Too many wrong codes; goodbye.".to_owned());
        }
        login.name = Some(name);
        let attempts = if left == 1 { "attempt" } else { "attempts" };
        Step::Retry(format!("Wrong code ({left} {attempts} left)."))
    }

    fn register(&self, login: &mut Login, name: &str) -> Step {
        let registered =
            self.hub
                .register(self.id, name, self.outbox.clone(), self.dropped.clone());
        match registered {
            Ok(()) => {
                tracing::Span::current().record("nick", name);
                Step::Done
            }
            Err(err) => {
                login.name = None;
                Step::Retry(err.to_string())
            }
        }
    }

    /// Reads and acts on lines until the client leaves. Returns the reason to record,
    /// or `None` when the hub has already removed the client.
    async fn chat_loop(&mut self) -> Option<LeaveReason> {
        let limits = &self.config.limits;
        let mut limiter = RateLimiter::new(limits.messages_per_sec, limits.burst, Instant::now());
        let idle = limits.idle_timeout();
        loop {
            let read = tokio::select! {
                biased;
                _ = self.dropped.cancelled() => return None,
                _ = self.shutdown.cancelled() => return Some(LeaveReason::Shutdown),
                read = read_line(&mut self.lines) => read,
                _ = idle_timer(idle) => return Some(LeaveReason::TimedOut),
            };
            let input = match read {
                Read::Closed => return Some(LeaveReason::Closed),
                Read::Lost => return Some(LeaveReason::Lost),
                Read::Line(Inbound::TooLong) => {
                    Err(CommandError::TooLong(self.config.limits.max_line_bytes))
                }
                Read::Line(Inbound::Line(bytes)) => match std::str::from_utf8(&bytes) {
                    Ok(text) => protocol::parse(&protocol::sanitize(text)),
                    Err(_) => Err(CommandError::InvalidUtf8),
                },
            };
            // Blank lines cost nothing and leaving is never refused; everything
            // else, accepted or not, counts against the rate limit.
            let quitting = matches!(input, Ok(Input::Command(Command::Quit(_))));
            let counted = !quitting && !matches!(input, Ok(Input::Empty));
            let result = if counted && !limiter.check(Instant::now()) {
                Err(CommandError::SlowDown(self.config.limits.messages_per_sec))
            } else {
                self.act(input).await
            };
            if let Err(err) = result {
                self.hub.tell(self.id, format_args!("! {err}"));
            }
            if quitting {
                return None;
            }
        }
    }

    /// Carries out one parsed line.
    async fn act(&self, input: Result<Input, CommandError>) -> Result<(), CommandError> {
        let (hub, id) = (&self.hub, self.id);
        match input? {
            Input::Empty => {}
            Input::Chat(text) => hub.chat(id, text)?,
            Input::Command(command) => self.run(command).await?,
        }
        Ok(())
    }

    async fn run(&self, command: Command) -> Result<(), CommandError> {
        let (hub, id) = (&self.hub, self.id);
        match command {
            Command::Nick(new) => hub.rename(id, &new)?,
            Command::Msg { to, text } => hub.private(id, &to, text)?,
            Command::Who => hub.who(id),
            Command::Join(room) => hub.join(id, &room)?,
            Command::Rooms => hub.rooms(id),
            Command::Help => hub.help(id),
            Command::Kick { nick, reason } => hub.kick(id, &nick, reason)?,
            Command::Mute { nick, minutes } => hub.mute(id, &nick, minutes)?,
            Command::Unmute(nick) => hub.unmute(id, &nick)?,
            Command::Announce(text) => hub.announce(id, text)?,
            Command::Quiet(on) => hub.quiet(id, on)?,
            Command::Op(password) => self.op(password).await?,
            Command::Quit(reason) => hub.quit(id, reason),
        }
        Ok(())
    }

    /// `/op PASSWORD`. The hash check costs tens of milliseconds of CPU on purpose,
    /// so it runs on the blocking pool, and an address gets only a few wrong tries.
    async fn op(&self, password: String) -> Result<(), CommandError> {
        self.hub.may_try_password(self.peer)?;
        self.hub.may_op(self.id)?;
        let hash = self.config.access.instructor_password.clone();
        let verified = tokio::task::spawn_blocking(move || password::verify(&password, &hash))
            .await
            .unwrap_or(false);
        if !verified {
            self.hub.password_failed(self.peer);
            tracing::warn!("wrong instructor password");
            return Err(CommandError::WrongPassword);
        }
        self.hub.op(self.id);
        Ok(())
    }

    /// Drops everything but the read half; with this connection's queue sender gone,
    /// the writer ends once it has sent what is queued.
    fn into_reader(self) -> Lines {
        self.lines
    }

    /// Queues a line for a client that is not a member yet.
    fn say(&self, body: std::fmt::Arguments<'_>) {
        let line = self.hub.clock().line(self.hub.clock().now_ms(), body);
        // A client that fills its queue before even choosing a name is not worth
        // keeping; the writer closes when the reader gives up.
        let _ = self.outbox.try_send(Outbound::Line(line));
    }
}

/// Compares without an early exit, so timing does not tell how much of a guess
/// was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn read_line(lines: &mut Lines) -> Read {
    match lines.next().await {
        Some(Ok(inbound)) => Read::Line(inbound),
        None => Read::Closed,
        Some(Err(_)) => Read::Lost,
    }
}

async fn idle_timer(idle: Option<Duration>) {
    match idle {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Writes everything queued for one client, a batch per wake-up, until the queue
/// closes (the client left) or the socket fails.
///
/// A lone line is written straight from its shared bytes. Buffers that grew in a
/// burst are released when the queue runs dry, so ten thousand idle clients hold
/// almost nothing.
async fn write_loop(mut socket: OwnedWriteHalf, mut queue: mpsc::Receiver<Outbound>, clock: Clock) {
    let mut batch = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    while queue.recv_many(&mut batch, WRITE_BATCH).await > 0 {
        let written = match batch.as_slice() {
            [Outbound::Line(line)] => socket.write_all(line).await,
            _ => {
                for item in batch.drain(..) {
                    append(&mut buf, item, &clock).await;
                }
                socket.write_all(&buf).await
            }
        };
        if written.is_err() {
            return;
        }
        batch.clear();
        buf.clear();
        if queue.is_empty() && buf.capacity() + batch.capacity() * 32 > KEEP_WHEN_IDLE {
            (batch, buf) = (Vec::new(), Vec::new());
        }
    }
    let _ = socket.shutdown().await;
}

/// Adds one queued item to the bytes about to be written; a replay waits for the
/// store's answer.
async fn append(buf: &mut Vec<u8>, item: Outbound, clock: &Clock) {
    match item {
        Outbound::Line(line) => buf.extend_from_slice(&line),
        Outbound::Replay {
            ts_ms,
            room,
            history,
        } => {
            let lines = history.await.unwrap_or_default();
            for line in replay_lines(clock, ts_ms, &room, &lines) {
                buf.extend_from_slice(&line);
            }
        }
    }
}

/// The history block: a header and footer stamped with the join, each line as
/// first delivered; nothing when the room has no history.
fn replay_lines(
    clock: &Clock,
    now: i64,
    room: &str,
    lines: &[crate::store::HistoryLine],
) -> Vec<Bytes> {
    if lines.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(lines.len() + 2);
    out.push(clock.line(
        now,
        format_args!("* Last {} messages in #{room}:", lines.len()),
    ));
    for line in lines {
        out.push(clock.line(line.ts_ms, format_args!("{}: {}", line.sender, line.text)));
    }
    out.push(clock.line(now, format_args!("* End of history.")));
    out
}

/// Tells a client why it cannot come in (`! REASON`) and closes, without taking a
/// seat.
pub async fn refuse(mut socket: TcpStream, clock: Clock, reason: String) {
    let line = clock.line(clock.now_ms(), format_args!("! {reason}"));
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = socket.write_all(&line).await;
        let _ = socket.shutdown().await;
    })
    .await;
}
