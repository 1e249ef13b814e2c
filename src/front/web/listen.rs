//! The web listener's accept loop. Every HTTP connection counts under the chat
//! ports' limits per address (`limits.max_per_ip`, `limits.connects_per_minute_per_ip`),
//! must send each request's headers within [`HEADERS_WITHIN`] of the server waiting
//! for them (so a keep-alive connection idle between requests goes after that too),
//! and is closed after [`IDLE_FOR`] without a byte either way in the middle of a
//! request; so a thousand idle sockets from one address cost that address its own
//! connections, never a student's at another.
//!
//! A WebSocket upgrade hands the connection's place on to the WebSocket client
//! ([`Place`]), which then holds a place like any chat client.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::HeaderValue;
use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout, Instant};
use tokio_rustls::TlsAcceptor;
use tower_service::Service;

use super::{Mode, Web};
use crate::front::conn;
use crate::front::seat::AddressSeat;
use crate::protocol::LoginError;
use crate::tls::server::HANDSHAKE_WITHIN;

/// The time a client has to send a request's headers, counted (by hyper) from when
/// the server starts waiting for them: on a new connection, and on a keep-alive one
/// after each answer. An idle keep-alive connection is therefore closed after this.
pub const HEADERS_WITHIN: Duration = Duration::from_secs(10);

/// A connection with no byte read or written for this long is closed even in the
/// middle of a request (a body that stopped arriving, an answer nobody reads): it
/// is asked to finish, and dropped [`FINISH_WITHIN`] later if it does not.
pub const IDLE_FOR: Duration = Duration::from_secs(60);

/// How long a connection asked to close (idle, or the server stopping) may take to
/// finish the request in hand.
const FINISH_WITHIN: Duration = Duration::from_secs(5);

/// An HTTP connection's place under `limits.max_per_ip`, in every request's
/// extensions, until a WebSocket upgrade takes it.
#[derive(Clone)]
pub(super) struct Place(Arc<Mutex<Option<AddressSeat>>>);

impl Place {
    /// Takes the place away from the connection (it is about to end in an upgrade).
    pub(super) fn take(&self) -> Option<AddressSeat> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Whether the request came over HTTPS, in every request's extensions: the
/// session cookie is then `Secure`.
#[derive(Clone, Copy)]
pub(super) struct Https(pub(super) bool);

/// What every response over HTTPS carries: browsers then refuse plain HTTP to this
/// host for a year, so a network in the middle cannot strip TLS away.
const HSTS: &str = "max-age=31536000";

/// Serves HTTP on `listener` until the server's shutdown token is cancelled; each
/// connection runs in a task of the server's tracker, so shutdown waits for it.
pub(super) async fn serve(listener: TcpListener, web: Arc<Web>, router: Router, mode: Mode) {
    let tls = match mode {
        Mode::Https(acceptor) => Some(acceptor),
        Mode::Http | Mode::Redirect { .. } => None,
    };
    let (cx, tracker) = (web.cx.clone(), web.tracker.clone());
    conn::accept(
        &listener,
        &cx,
        &cx.shutdown,
        &tracker,
        move |socket, peer| admit(socket, peer, &web, &router, &tls),
    )
    .await;
}

/// Gives an HTTP connection from `peer` its place under the limits and serves it
/// in a task of the server's tracker, or answers 429.
fn admit(
    socket: TcpStream,
    peer: SocketAddr,
    web: &Arc<Web>,
    router: &Router,
    tls: &Option<TlsAcceptor>,
) {
    let cx = &web.cx;
    let place = match cx.admit_http(peer.ip()) {
        Ok(place) => place,
        Err(refusal) => {
            tracing::debug!(%peer, %refusal, "HTTP connection refused");
            let tls = tls.clone();
            web.tracker.spawn(async move {
                match tls {
                    None => refuse(socket, refusal).await,
                    Some(tls) => {
                        if let Ok(Ok(stream)) = timeout(HANDSHAKE_WITHIN, tls.accept(socket)).await
                        {
                            refuse(stream, refusal).await;
                        }
                    }
                }
            });
            return;
        }
    };
    let (web, router, tls) = (web.clone(), router.clone(), tls.clone());
    web.tracker.clone().spawn(async move {
        let Some(tls) = tls else {
            return connection(socket, peer, place, web, router, false).await;
        };
        let handshake = timeout(HANDSHAKE_WITHIN, tls.accept(socket));
        let shaken = tokio::select! {
            shaken = handshake => shaken,
            _ = web.cx.shutdown.cancelled() => return,
        };
        match shaken {
            Ok(Ok(stream)) => connection(stream, peer, place, web, router, true).await,
            Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        }
    });
}

/// Serves one HTTP connection until the client closes it, it falls idle, it is
/// upgraded to a WebSocket, or the server stops.
async fn connection<S>(
    socket: S,
    peer: SocketAddr,
    place: AddressSeat,
    web: Arc<Web>,
    router: Router,
    https: bool,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let place = Place(Arc::new(Mutex::new(Some(place))));
    let socket = Activity::new(socket);
    let seen = socket.seen.clone();
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(place.clone());
        request.extensions_mut().insert(Https(https));
        // A Router is always ready: no poll_ready needed.
        let mut router = router.clone();
        async move {
            let mut response = router.call(request).await.unwrap_or_else(|e| match e {});
            if https {
                let hsts = HeaderValue::from_static(HSTS);
                response
                    .headers_mut()
                    .insert(STRICT_TRANSPORT_SECURITY, hsts);
            }
            Ok::<_, Infallible>(response)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADERS_WITHIN);
    let conn = builder
        .serve_connection(TokioIo::new(socket), service)
        .with_upgrades();
    tokio::pin!(conn);
    // Once set, the connection was asked to finish and is dropped at this instant.
    let mut closing: Option<Instant> = None;
    loop {
        let give_up = closing.unwrap_or_else(|| Instant::now() + IDLE_FOR);
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(%peer, %err, "HTTP connection ended");
                }
                return;
            }
            _ = tokio::time::sleep_until(give_up), if closing.is_some() => {
                tracing::debug!(%peer, "HTTP connection dropped: it did not finish");
                return;
            }
            _ = tokio::time::sleep_until(seen.last() + IDLE_FOR), if closing.is_none() => {
                if seen.last() + IDLE_FOR <= Instant::now() {
                    conn.as_mut().graceful_shutdown();
                    closing = Some(Instant::now() + FINISH_WITHIN);
                }
            }
            _ = web.cx.shutdown.cancelled(), if closing.is_none() => {
                conn.as_mut().graceful_shutdown();
                closing = Some(Instant::now() + FINISH_WITHIN);
            }
        }
    }
}

/// Answers 429 with the reason and closes, without reading the request.
async fn refuse<S: AsyncWrite + Unpin>(mut socket: S, reason: LoginError) {
    let text = format!("{reason}\n");
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = socket.write_all(response.as_bytes()).await;
        let _ = socket.shutdown().await;
    })
    .await;
}

/// When a connection last moved a byte.
struct Seen {
    since: Instant,
    /// Milliseconds after `since`.
    at: AtomicU64,
}

impl Seen {
    fn touch(&self) {
        let ms = self.since.elapsed().as_millis() as u64;
        self.at.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.since + Duration::from_millis(self.at.load(Ordering::Relaxed))
    }
}

/// A socket that notes when it last read or wrote a byte.
struct Activity<S> {
    io: S,
    seen: Arc<Seen>,
}

impl<S> Activity<S> {
    fn new(io: S) -> Activity<S> {
        let seen = Seen {
            since: Instant::now(),
            at: AtomicU64::new(0),
        };
        Activity {
            io,
            seen: Arc::new(seen),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.seen.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.seen.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.seen.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
