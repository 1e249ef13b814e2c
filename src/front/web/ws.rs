//! The chat page's WebSocket: the line protocol of SPEC section 2 with one text
//! frame per line, run by the same code as a TCP client ([`line::run`]), so the
//! handshake, limits, commands and log are the same by construction.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::{Bytes, BytesMut};
use futures_util::stream::SplitSink;
use futures_util::{future, SinkExt, StreamExt};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::listen::Place;
use super::{same_origin, Web};
use crate::clock::Clock;
use crate::front::conn::Batch;
use crate::front::line::{self, Transport};
use crate::front::seat::AddressSeat;
use crate::mailbox;
use crate::protocol::{Inbound, LoginError, ServerLine, Stamped};

/// Bytes read from the socket at a time: a few lines. tungstenite zero-fills this
/// much before every read and keeps it per connection; its default of 128 KiB cost
/// a 128 KiB memset per read (about one per message received) and doubled the
/// server's RSS under S1. Longer frames still arrive whole, over several reads.
const READ_BUFFER: usize = 4096;

/// How often the server pings; a client that has sent nothing (not even the pong
/// browsers send by themselves) by the next ping is taken as gone.
const PING_EVERY: Duration = Duration::from_secs(25);

/// `GET /ws`. Refused with 403 before the upgrade unless the page that opens it is
/// this server's own: otherwise any site a student visits could chat in their name.
pub(super) async fn upgrade(
    State(web): State<Arc<Web>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(place): Extension<Place>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        tracing::warn!(%peer, "WebSocket from another origin refused");
        return (
            StatusCode::FORBIDDEN,
            "This WebSocket is for the chat page only.\n",
        )
            .into_response();
    }
    // Frames a little past the line limit still get the protocol's "Line too long"
    // answer; only far larger ones end the connection at the WebSocket layer.
    let max_frame = (web.cx.config.limits.max_line_bytes * 4).max(64 * 1024);
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(max_frame)
        .max_frame_size(max_frame)
        .on_upgrade(move |socket| {
            let tracker = web.tracker.clone();
            // The HTTP connection was counted and had a place; the WebSocket client
            // gives that place back as it takes its own.
            tracker.track_future(serve(socket, peer, place.take(), web))
        })
}

async fn serve(socket: WebSocket, peer: SocketAddr, place: Option<AddressSeat>, web: Arc<Web>) {
    let cx = web.cx.clone();
    let clock = cx.board.clock().clone();
    let (sink, stream) = socket.split();
    drop(place);
    let seat = match cx.admit_upgraded(peer.ip()) {
        Ok(seat) => seat,
        Err(refusal) => return refuse(sink, &clock, refusal).await,
    };
    let id = web.ids.fetch_add(1, Ordering::Relaxed);
    let (outbox, queue) = mailbox::bounded(cx.config.limits.outbound_queue);
    let heartbeat = Arc::new(Heartbeat::default());
    let writer = tokio::spawn(write_loop(sink, queue, clock, heartbeat.clone()));
    let max = cx.config.limits.max_line_bytes;
    let heard = heartbeat.clone();
    let silent = heartbeat.silent.clone();
    let lines = stream
        .inspect(move |_| heard.heard.store(true, Ordering::Relaxed))
        .take_while(|message| future::ready(!matches!(message, Ok(Message::Close(_)))))
        .filter_map(move |message| future::ready(inbound(message, max)))
        .take_until(heartbeat.silent.clone().cancelled_owned())
        // Ended by silence: the connection is lost, not closed by the client.
        .chain(
            futures_util::stream::once(future::lazy(move |_| silent.is_cancelled())).filter_map(
                |silent| {
                    future::ready(
                        silent.then(|| Err(io::Error::new(io::ErrorKind::TimedOut, "no pong"))),
                    )
                },
            ),
        );
    let transport = Transport {
        lines: Box::pin(lines),
        outbox,
        writer,
        peer: Some(peer.ip()),
    };
    let span = tracing::info_span!("ws", id, %peer, nick = tracing::field::Empty);
    async move {
        tracing::debug!("connected");
        line::run(transport, id, cx, seat).await;
        tracing::debug!("closed");
    }
    .instrument(span)
    .await;
}

/// One frame as one line. A binary frame is taken as the line's bytes, so invalid
/// UTF-8 gets the protocol's own error rather than a dropped connection; pings and
/// pongs are the WebSocket's business and carry no line.
fn inbound(message: Result<Message, axum::Error>, max: usize) -> Option<io::Result<Inbound>> {
    let message = match message {
        Ok(message) => message,
        Err(err) => return Some(Err(io::Error::other(err))),
    };
    let bytes = match &message {
        Message::Text(text) => text.as_str().as_bytes(),
        Message::Binary(bytes) => &bytes[..],
        _ => return None,
    };
    // A page may send the line ending a terminal would; it is not part of the line.
    let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some(Ok(match line.len() > max {
        true => Inbound::TooLong,
        false => Inbound::Line(BytesMut::from(line)),
    }))
}

/// Whether the client is still there: the reader notes every frame, the writer
/// pings and gives up on a client that stayed silent for a whole ping interval.
#[derive(Default)]
struct Heartbeat {
    /// A frame arrived since the last ping.
    heard: AtomicBool,
    /// Cancelled when the client stopped answering; ends the reader.
    silent: CancellationToken,
}

/// Sends each queued line as one text frame, flushing once per batch, until the
/// queue closes (the client left) or the socket fails; then closes the WebSocket.
/// Pings every [`PING_EVERY`] in between.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut queue: mailbox::Receiver<Arc<Stamped>>,
    clock: Clock,
    heartbeat: Arc<Heartbeat>,
) {
    let mut batch = Batch::default();
    let start = tokio::time::Instant::now() + PING_EVERY;
    let mut pings = tokio::time::interval_at(start, PING_EVERY);
    let mut awaiting = false;
    loop {
        let count = tokio::select! {
            count = batch.take(&mut queue) => count,
            _ = pings.tick() => {
                let heard = heartbeat.heard.swap(false, Ordering::Relaxed);
                if awaiting && !heard {
                    tracing::debug!("no pong: the WebSocket client is gone");
                    heartbeat.silent.cancel();
                    return;
                }
                awaiting = true;
                if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
                continue;
            }
        };
        if count == 0 {
            break;
        }
        for line in &batch.lines {
            if sink.feed(frame(line, &clock)).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
        batch.settle(&queue);
    }
    let _ = sink.close().await;
}

/// The line protocol's text of a line, without its `\n`: a frame is already one line.
fn frame(line: &Stamped, clock: &Clock) -> Message {
    let wire = line.wire(clock);
    let text = String::from_utf8_lossy(wire.strip_suffix(b"\n").unwrap_or(wire));
    Message::Text(text.into_owned().into())
}

/// Tells a client why it cannot come in (`! REASON`) and closes, without a seat.
async fn refuse(mut sink: SplitSink<WebSocket, Message>, clock: &Clock, reason: LoginError) {
    let line = Stamped::new(clock.now_ms(), ServerLine::Error(reason.to_string()));
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = sink.send(frame(&line, clock)).await;
        let _ = sink.close().await;
    })
    .await;
}
