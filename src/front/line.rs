//! The line-protocol front end (SPEC section 2): one TCP connection's handshake, the
//! reader loop that turns lines into switchboard calls, and the writer task that
//! drains the outgoing queue.
//!
//! Every line to the client, greeting and errors included, goes through one bounded
//! queue, so the client sees lines in the order they happened; the writer sends
//! them a batch per wake-up ([`conn::Batch`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures_util::Stream;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;

use super::conn::{self, finish_writer, next_inbound, read_line, Batch, Read};
use super::login::{Admitted, Login, Step};
use super::seat::Seat;
use super::{Context, ReadHalf, WriteHalf};
use crate::clock::Clock;
use crate::hub::ConnId;
use crate::limiter::RateKey;
use crate::mailbox;
use crate::protocol::{
    self, Command, CommandError, Inbound, Input, LeaveReason, LineCodec, LoginError, Notice,
    ServerLine, Stamped,
};
use crate::switchboard::Outbox;

/// Initial read buffer per connection.
const READ_BUFFER: usize = 256;

/// Serves one accepted client (TCP or TLS) from `peer` until it leaves, is
/// dropped, or the server stops. `seat` is its place under the connection limits,
/// given back as soon as it is no longer a member, before the last lines are
/// flushed, so that a client who sees the connection close can come straight back.
pub async fn serve(
    reader: impl ReadHalf,
    writer: impl WriteHalf,
    peer: SocketAddr,
    id: ConnId,
    cx: Context,
    seat: Seat,
) {
    let peer = Some(peer.ip());
    let (outbox, queue) = mailbox::bounded(cx.config.limits.outbound_queue);
    let writer = tokio::spawn(write_loop(writer, queue, cx.board.clock().clone()));
    // A small first buffer: most lines are short, and it grows for long ones.
    let lines = FramedRead::with_capacity(
        reader,
        LineCodec::new(cx.config.limits.max_line_bytes),
        READ_BUFFER,
    );
    let transport = Transport {
        lines,
        outbox,
        writer,
        peer,
    };
    run(transport, id, cx, seat).await;
}

/// A connection that speaks the line protocol, whatever carries it (TCP here, a
/// WebSocket in the web front end): the client's lines, and the queue drained by
/// a writer task that renders for the carrier.
pub struct Transport<R> {
    /// The client's lines, framed.
    pub lines: R,
    /// The client's queue.
    pub outbox: Outbox,
    /// The task draining the queue; it ends when every sender is gone.
    pub writer: tokio::task::JoinHandle<()>,
    /// The client's address, for the limits per address.
    pub peer: Option<IpAddr>,
}

/// Serves one line-protocol client over `transport`; see [`serve`].
pub async fn run<R>(transport: Transport<R>, id: ConnId, cx: Context, mut seat: Seat)
where
    R: Stream<Item = std::io::Result<Inbound>> + Unpin,
{
    let Transport {
        lines,
        outbox,
        writer,
        peer,
    } = transport;
    let mut conn = Connection {
        id,
        lines,
        cx,
        outbox,
        dropped: CancellationToken::new(),
        peer,
        login: RateKey::default(),
    };
    if conn.handshake(&mut seat).await {
        let reason = conn.chat_loop().await;
        if let Some(reason) = reason {
            conn.cx.board.leave(id, reason);
        }
    }
    // A full queue means the client stopped reading: nothing more will get through.
    let abandon = conn.outbox.is_full();
    // Keep the read half open until the writer has sent its last line: closing a
    // socket with unread input makes the kernel send a reset, which can destroy the
    // goodbye still in flight.
    let lines = conn.into_reader();
    drop(seat);
    finish_writer(writer, abandon).await;
    drop(lines);
}

struct Connection<R> {
    id: ConnId,
    cx: Context,
    /// This client's queue, used directly for lines that concern only it.
    outbox: Outbox,
    lines: R,
    /// Cancelled by the switchboard when it drops this client.
    dropped: CancellationToken,
    /// The client's address, to limit code and password guesses per machine.
    peer: Option<IpAddr>,
    /// The name logged in with, which the chat rate is kept by.
    login: RateKey,
}

impl<R> Connection<R>
where
    R: Stream<Item = std::io::Result<Inbound>> + Unpin,
{
    /// Greets the client and reads names (and the join code, if the class has one)
    /// until one is accepted. `false` means the client is gone (or was never let
    /// in) and the connection should close.
    async fn handshake(&mut self, seat: &mut Seat) -> bool {
        let server = &self.cx.config.server;
        self.notice(Notice::Connected {
            server: server.name.clone(),
        });
        if !server.motd.is_empty() {
            self.notice(Notice::Text(server.motd.clone()));
        }
        self.notice(Notice::Recorded);
        self.notice(Notice::AskName);
        let limits = &self.cx.config.limits;
        let deadline = tokio::time::Instant::now() + limits.handshake_timeout();
        let mut login = Login::default();
        loop {
            let read = tokio::select! {
                read = read_line(&mut self.lines) => read,
                _ = tokio::time::sleep_until(deadline) => {
                    let secs = self.cx.config.limits.handshake_timeout_secs;
                    self.error(LoginError::timed_out(secs, login.asking()));
                    return false;
                }
                _ = self.cx.shutdown.cancelled() => {
                    self.notice(Notice::ShuttingDown);
                    return false;
                }
                _ = seat.evicted() => {
                    self.error(LoginError::Busy);
                    return false;
                }
            };
            let step = match read {
                Read::Closed | Read::Lost => return false,
                Read::Line(inbound) => match self.decode(inbound) {
                    Err(error) => Step::Retry(error.into()),
                    Ok(text) => login.offer(&self.cx, self.peer, text.trim()).await,
                },
            };
            match step {
                Step::Admit(admitted) => match self.enter(seat, admitted) {
                    Ok(()) => return true,
                    Err(LoginError::Nick(taken)) => {
                        // Taken since the name was checked: ask again.
                        let step = login.refused(taken);
                        if let Step::Retry(error) = step {
                            self.error(error);
                        }
                        self.notice(Notice::AskName);
                    }
                    Err(error) => {
                        self.error(error);
                        return false;
                    }
                },
                Step::Ask(kind) => self.notice(Notice::AskCode(kind)),
                Step::Retry(error) => {
                    self.error(error);
                    match login.asking() {
                        Some(kind) => self.notice(Notice::AskCode(kind)),
                        None => self.notice(Notice::AskName),
                    }
                }
                Step::GiveUp(error) => {
                    self.error(error);
                    return false;
                }
            }
        }
    }

    /// Takes a member's seat and registers an admitted name with the switchboard.
    fn enter(&mut self, seat: &mut Seat, admitted: Admitted) -> Result<(), LoginError> {
        if !self.cx.seats.promote(seat) {
            return Err(LoginError::Full(self.cx.config.limits.max_clients));
        }
        self.cx.board.register(
            self.id,
            &admitted.name,
            admitted.identity,
            self.outbox.clone(),
            self.dropped.clone(),
        )?;
        tracing::Span::current().record("nick", admitted.name.as_str());
        self.login = RateKey::new(&admitted.name);
        Ok(())
    }

    /// Reads and acts on lines until the client leaves. Returns the reason to record,
    /// or `None` when the switchboard has already removed the client.
    async fn chat_loop(&mut self) -> Option<LeaveReason> {
        loop {
            let inbound = match next_inbound(&mut self.lines, &self.dropped, &self.cx).await {
                Ok(inbound) => inbound,
                Err(left) => return left,
            };
            let input = self.decode(inbound).and_then(|text| protocol::parse(&text));
            // Blank lines cost nothing and leaving is never refused; everything
            // else, accepted or not, counts against the rate limit.
            let quitting = matches!(input, Ok(Input::Command(Command::Quit(_))));
            let counted = !quitting && !matches!(input, Ok(Input::Empty));
            let result = match input {
                _ if counted && !self.cx.rate.check(&self.login) => Err(CommandError::SlowDown(
                    self.cx.config.limits.messages_per_sec,
                )),
                Ok(input) => self.act(input).await,
                Err(err) => Err(err),
            };
            if let Err(err) = result {
                self.error(err);
            }
            if quitting {
                return None;
            }
        }
    }

    fn decode(&self, inbound: Inbound) -> Result<String, CommandError> {
        protocol::read_line(inbound, self.cx.config.limits.max_line_bytes)
    }

    /// Carries out one parsed line.
    async fn act(&self, input: Input) -> Result<(), CommandError> {
        let board = &self.cx.board;
        match input {
            Input::Empty => Ok(()),
            Input::Chat(text) => board.chat(self.id, text),
            Input::Command(Command::Op(password)) => self.op(password).await,
            Input::Command(command) => board.perform(self.id, command),
        }
    }

    async fn op(&self, password: String) -> Result<(), CommandError> {
        conn::op(&self.cx, self.peer, self.id, password).await
    }

    /// Drops everything but the read half; with this connection's queue sender gone,
    /// the writer ends once it has sent what is queued.
    fn into_reader(self) -> R {
        self.lines
    }

    /// Queues a line for this client alone.
    fn say(&self, line: ServerLine) {
        let stamped = Stamped::new(self.cx.board.clock().now_ms(), line);
        // A client that fills its queue is being dropped as too slow; an answer to
        // it would not get through anyway.
        let _ = self.outbox.try_send(stamped);
    }

    fn notice(&self, notice: Notice) {
        self.say(ServerLine::Notice(notice));
    }

    fn error(&self, error: impl std::fmt::Display) {
        self.say(ServerLine::Error(error.to_string()));
    }
}

/// Writes everything queued for one client, a batch per wake-up, until the queue
/// closes (the client left) or the socket fails. A lone line is written straight
/// from its shared bytes.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut queue: mailbox::Receiver<Arc<Stamped>>,
    clock: Clock,
) {
    let mut batch = Batch::default();
    while batch.take(&mut queue).await > 0 {
        let bytes = match batch.lines.as_slice() {
            [line] => &line.wire(&clock)[..],
            lines => {
                for line in lines {
                    batch.out.extend_from_slice(line.wire(&clock));
                }
                &batch.out[..]
            }
        };
        if conn::send(&mut socket, bytes).await.is_err() {
            return;
        }
        batch.settle(&queue);
    }
    let _ = socket.shutdown().await;
}

/// Tells a client why it cannot come in (`! REASON`) and closes, without taking a
/// seat.
pub async fn refuse<S: AsyncWrite + Unpin>(socket: S, clock: Clock, reason: LoginError) {
    let line = Stamped::new(clock.now_ms(), ServerLine::Error(reason.to_string()));
    conn::say_and_close(socket, line.wire(&clock)).await;
}
