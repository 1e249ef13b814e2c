//! What every front end's connection does the same way, whatever it speaks:
//! accepting it and learning its client's address, reading the next framed line
//! or learning why there is none, the writer's batches and
//! the buffers it gives back when a burst is over, closing without losing the last
//! lines, and the `/op` password check.
//!
//! The line port, IRC and the WebSocket differ only in how a line looks on their
//! wire; everything here is theirs in common.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{liveness, Context};
use crate::hub::ConnId;
use crate::mailbox;
use crate::password;
use crate::protocol::{CommandError, Inbound, LeaveReason, Stamped};

/// How long a closing connection may take to flush what is queued for it.
const FLUSH_ON_CLOSE: Duration = Duration::from_secs(3);

/// How long a refused connection may take to be told why.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);

/// Buffer bytes a writer may keep while its client is idle.
const KEEP_WHEN_IDLE: usize = 2048;

/// Lines a writer takes off the queue per wake-up.
const WRITE_BATCH: usize = 256;

/// Accepts connections on `listener` until `stop` is cancelled and hands each to
/// `admit` with its client's address: the peer's, or the one a trusted proxy's
/// PROXY header names. The header is read in a task of `tracker`, so a slow one
/// holds up nobody else's connection.
pub async fn accept<A>(
    listener: &TcpListener,
    cx: &Context,
    stop: &CancellationToken,
    tracker: &TaskTracker,
    admit: A,
) where
    A: Fn(TcpStream, SocketAddr) + Clone + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (mut socket, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Usually out of file descriptors: wait for some to free up
                // instead of ending the server.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        liveness::watch(&socket);
        if !cx.proxies.expected() {
            admit(socket, peer);
            continue;
        }
        let (proxies, stop, admit) = (cx.proxies.clone(), stop.clone(), admit.clone());
        tracker.spawn(async move {
            let client = tokio::select! {
                client = proxies.client(&mut socket, peer) => client,
                _ = stop.cancelled() => return,
            };
            match client {
                Ok(client) => admit(socket, client),
                Err(refused) => proxies.log_refusal(peer, &refused),
            }
        });
    }
}

/// What the reader got from the socket.
pub enum Read {
    /// A framed line.
    Line(Inbound),
    /// The client closed the connection.
    Closed,
    /// The connection failed.
    Lost,
}

/// The next framed line, or how the connection ended.
pub async fn read_line<R>(lines: &mut R) -> Read
where
    R: Stream<Item = std::io::Result<Inbound>> + Unpin,
{
    match lines.next().await {
        Some(Ok(inbound)) => Read::Line(inbound),
        None => Read::Closed,
        // A TLS client that closes its socket without the TLS goodbye has still
        // closed it: most do.
        Some(Err(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => Read::Closed,
        Some(Err(_)) => Read::Lost,
    }
}

/// The next line of a member's connection, or why the member is gone: `None`
/// when the switchboard already removed it, else the reason to record.
pub async fn next_inbound<R>(
    lines: &mut R,
    dropped: &CancellationToken,
    cx: &Context,
) -> Result<Inbound, Option<LeaveReason>>
where
    R: Stream<Item = std::io::Result<Inbound>> + Unpin,
{
    let read = tokio::select! {
        biased;
        _ = dropped.cancelled() => return Err(None),
        _ = cx.shutdown.cancelled() => return Err(Some(LeaveReason::Shutdown)),
        read = read_line(lines) => read,
        _ = idle_timer(cx.config.limits.idle_timeout()) => return Err(Some(LeaveReason::TimedOut)),
    };
    match read {
        Read::Line(inbound) => Ok(inbound),
        Read::Closed => Err(Some(LeaveReason::Closed)),
        Read::Lost => Err(Some(LeaveReason::Lost)),
    }
}

async fn idle_timer(idle: Option<Duration>) {
    match idle {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// A writer's buffers: the lines taken off the queue in one wake-up and the bytes
/// rendered from them. A busy room costs one write per wake-up, not one per line;
/// buffers a burst grew are given back once the queue runs dry, so ten thousand
/// idle clients hold almost nothing.
#[derive(Default)]
pub struct Batch {
    /// The lines taken in this wake-up.
    pub lines: Vec<Arc<Stamped>>,
    /// Their bytes, as the client's wire has them.
    pub out: Vec<u8>,
}

impl Batch {
    /// Waits for queued lines and takes up to a batch of them; 0 once the queue
    /// is closed and empty (the client left).
    pub async fn take(&mut self, queue: &mut mailbox::Receiver<Arc<Stamped>>) -> usize {
        queue.recv_many(&mut self.lines, WRITE_BATCH).await
    }

    /// Empties the batch once it is written, and gives the buffers back if the
    /// burst is over. `true` when it did, so a writer with buffers of its own
    /// gives them back too.
    pub fn settle(&mut self, queue: &mailbox::Receiver<Arc<Stamped>>) -> bool {
        self.lines.clear();
        self.out.clear();
        let grown = self.out.capacity() + self.lines.capacity() * 8 > KEEP_WHEN_IDLE;
        if grown && queue.is_empty() {
            *self = Batch::default();
            queue.release_room();
            return true;
        }
        false
    }
}

/// Writes `bytes` and flushes them. Over TLS a write the socket could not take
/// whole may leave records in the session's buffer; flushing sends them now, not
/// with the next line. (On plain TCP a flush does nothing.)
pub async fn send<W: AsyncWrite + Unpin>(socket: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    socket.write_all(bytes).await?;
    socket.flush().await
}

/// Sends a refused client its last words and closes, giving up after a short
/// while on a client that does not read.
pub async fn say_and_close<W: AsyncWrite + Unpin>(mut socket: W, bytes: &[u8]) {
    let _ = tokio::time::timeout(REFUSE_WITHIN, async {
        let _ = socket.write_all(bytes).await;
        let _ = socket.shutdown().await;
    })
    .await;
}

/// Lets the writer flush what is queued (for at most [`FLUSH_ON_CLOSE`]), unless
/// the client stopped reading, in which case nothing it is owed can arrive anyway.
/// The caller keeps the read half open until this returns: closing a socket with
/// unread input makes the kernel send a reset, which can destroy the goodbye still
/// in flight.
pub async fn finish_writer(writer: JoinHandle<()>, abandon: bool) {
    let abort = writer.abort_handle();
    if abandon || tokio::time::timeout(FLUSH_ON_CLOSE, writer).await.is_err() {
        abort.abort();
    }
}

/// `/op PASSWORD` for member `id`, from any front end. The hash check costs tens
/// of milliseconds of CPU on purpose, so it runs on the blocking pool, and wrong
/// passwords count against the address like wrong codes.
pub async fn op(
    cx: &Context,
    peer: Option<IpAddr>,
    id: ConnId,
    password: String,
) -> Result<(), CommandError> {
    let access = &cx.config.access;
    let nick = cx.board.nick(id).unwrap_or_default();
    let listed = access
        .instructors
        .iter()
        .any(|name| name.eq_ignore_ascii_case(&nick));
    if !listed || access.instructor_password.is_empty() {
        return Err(CommandError::PermissionDenied);
    }
    let hash = access.instructor_password.clone();
    let checked = cx
        .codes
        .check(peer, &nick, "wrong instructor password", move || {
            password::verify(&password, &hash)
        });
    match checked.await {
        Err(locked) => return Err(CommandError::TooManyCodes(locked.retry_secs)),
        Ok(false) => return Err(CommandError::WrongPassword),
        Ok(true) => {}
    }
    cx.board.op(id);
    Ok(())
}
