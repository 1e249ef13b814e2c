//! The accept loop and the orderly shutdown.
//!
//! [`Server::bind`] opens the store and the listening socket; [`Server::run`] serves
//! until the future it is given completes (SIGINT/SIGTERM in the binary, anything in
//! a test), then stops accepting, tells every client, waits for their connections to
//! close, and waits for the store to write everything still queued.
//!
//! With `[web] enabled` a second listener serves HTTP ([`crate::front::web`]); its
//! WebSocket clients take their ids and seats from the same counters as the line
//! port's, so the limits hold across both. With `[tls]` each front end also
//! listens with TLS ([`crate::tls`]); the handshake runs in the connection's own
//! task, never in an accept loop, so a slow one holds up nobody else.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::clock::Clock;
use crate::cluster::{ClusterError, Node};
use crate::config::ValidConfig;
use crate::event::EventKind;
use crate::front::seat::Seat;
use crate::front::{conn, irc, line, web, Context, Duplex};
use crate::hub::{ConnId, History, Hub, Settings};
use crate::protocol::LoginError;
use crate::store::{postgres, roster_source, Closed, RosterSource, Store, StoreError, StoreHandle};
use crate::student_data::erase;
use crate::switchboard::Switchboard;
use crate::tls::server::{Certificates, HANDSHAKE_WITHIN};
use crate::tls::session;
use crate::tls::TlsError;

/// The longest a shutdown waits for connections to close before it stops waiting.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long connections go on reading after everyone is told of a shutdown, so
/// that what a client sent before the notice reached it is still said: a
/// rolling restart loses no line (SPEC 9).
const DRAIN: Duration = Duration::from_millis(500);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database or transcript could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A cluster node could not join (NATS or JetStream).
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// The TLS certificate or key could not be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// How often the server reads the roster table again, so that `chat-server
/// roster` commands take effect while it runs.
const ROSTER_EVERY: Duration = Duration::from_secs(2);

/// Reads the roster; on failure keeps the last one read.
async fn reload_roster(cx: &Context, source: &mut dyn RosterSource) {
    match source.read().await {
        Ok(roster) => {
            // Someone removed from the roster, or given a new code, is out
            // within seconds, not whenever they next disconnect.
            for name in cx.roster.replace(roster) {
                cx.board.revoke(&name);
            }
        }
        Err(err) => tracing::warn!(%err, "cannot read the roster; keeping the last one"),
    }
}

/// Every `limits.announce_every_secs`, the summaries of big rooms' joins and
/// leaves (SPEC 2), until the server stops.
async fn keep_announcing_crowds(cx: Context) {
    let mut every = tokio::time::interval(cx.config.limits.announce_every());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => return,
            _ = every.tick() => cx.board.announce_crowds(),
        }
    }
}

async fn keep_roster_current(cx: Context, mut source: Box<dyn RosterSource>) {
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(ROSTER_EVERY) => reload_roster(&cx, &mut *source).await,
        }
    }
}

/// How often a running server looks for new `erase` events (SPEC 12), as for
/// roster changes: an erase takes effect within seconds.
const ERASE_EVERY: Duration = Duration::from_secs(2);

/// How often events past `storage.retention_days` are deleted while the server
/// runs (it also does so at start).
const EXPIRE_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Keeps a single server's record to SPEC 12 while it runs: daily retention,
/// and each `chat-server erase` applied to what the command cannot reach safely
/// itself: the replay tails, and the transcript files this server appends to
/// (rewritten on the store's writer thread, so that no append races them).
/// `seen` is the newest erase the history was loaded after.
async fn keep_record_tidy(cx: Context, store: StoreHandle, database: PathBuf, mut seen: i64) {
    let retention = cx.config.storage.clone();
    let mut expire =
        tokio::time::interval_at(tokio::time::Instant::now() + EXPIRE_EVERY, EXPIRE_EVERY);
    loop {
        tokio::select! {
            _ = cx.shutdown.cancelled() => return,
            _ = expire.tick() => {
                if let Some(cutoff) = retention.retention_cutoff_ms(chrono::Utc::now().timestamp_millis()) {
                    store.expire(cutoff);
                }
            }
            _ = tokio::time::sleep(ERASE_EVERY) => {
                let newest = match read_blocking(&database, crate::store::sqlite::last_erase).await {
                    Ok(newest) => newest,
                    Err(err) => {
                        tracing::debug!(%err, "cannot look for erase events");
                        continue;
                    }
                };
                if newest <= seen {
                    continue;
                }
                let erased = match read_blocking(&database, erase::erased_sqlite).await {
                    Ok(erased) => erased,
                    Err(err) => {
                        tracing::warn!(%err, "cannot read the erased events; trying again shortly");
                        continue;
                    }
                };
                seen = newest;
                let lines: HashSet<(String, i64, String)> = erased
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Chat | EventKind::Action))
                    .map(|e| (e.room.to_string(), e.ts_ms, e.sender.to_string()))
                    .collect();
                let forgotten = cx.board.forget_history(&lines);
                tracing::info!(forgotten, "an erase was recorded; its lines are no longer replayed");
                store.rewrite_transcripts(erased);
            }
        }
    }
}

/// A cluster node's share of SPEC 12: retention of the PostgreSQL record at
/// start and daily (every node does it; a delete that finds nothing more is
/// harmless), and each `chat-server erase` applied to this node's replay tails.
async fn keep_postgres_tidy(cx: Context) {
    let storage = cx.config.storage.clone();
    let mut client: Option<tokio_postgres::Client> = None;
    let mut seen: Option<i64> = None;
    let mut next_expiry = tokio::time::Instant::now();
    loop {
        let connected = match client.take().filter(|c| !c.is_closed()) {
            Some(c) => Some(c),
            None => crate::store::postgres::connect(&storage.postgres_url)
                .await
                .ok(),
        };
        if let Some(connected) = &connected {
            let now = tokio::time::Instant::now();
            if now >= next_expiry {
                next_expiry = now + EXPIRE_EVERY;
                let cutoff = storage.retention_cutoff_ms(chrono::Utc::now().timestamp_millis());
                if let Some(cutoff) = cutoff {
                    match postgres::expire_before(connected, cutoff).await {
                        Ok(0) => {}
                        Ok(deleted) => {
                            tracing::info!(deleted, "deleted events past storage.retention_days")
                        }
                        Err(err) => {
                            tracing::warn!(%err, "cannot delete events past storage.retention_days")
                        }
                    }
                }
            }
            let forget = forget_erased_postgres(&cx, connected, &mut seen);
            // A PostgreSQL that stopped answering must not hold this loop.
            let _ = tokio::time::timeout(crate::store::postgres::ANSWER_WITHIN, forget).await;
        }
        client = connected;
        tokio::select! {
            _ = cx.shutdown.cancelled() => return,
            _ = tokio::time::sleep(ERASE_EVERY) => {}
        }
    }
}

/// Forgets the erased lines once more `erase` events are recorded than last seen.
async fn forget_erased_postgres(
    cx: &Context,
    client: &tokio_postgres::Client,
    seen: &mut Option<i64>,
) {
    let Ok(count) = postgres::erase_count(client).await else {
        return;
    };
    if seen.is_some_and(|seen| count <= seen) {
        return;
    }
    // At start too: the stream this node replayed may predate an erase.
    match postgres::erased_chat(client).await {
        Ok(lines) => {
            *seen = Some(count);
            let forgotten = cx.board.forget_history(&lines.into_iter().collect());
            if forgotten > 0 {
                tracing::info!(forgotten, "erased lines are no longer replayed");
            }
        }
        Err(err) => tracing::warn!(%err, "cannot read the erased lines; trying again shortly"),
    }
}

/// Runs a read of the database on the blocking pool.
async fn read_blocking<T: Send + 'static, E: std::fmt::Display + 'static>(
    database: &Path,
    read: fn(&rusqlite::Connection) -> Result<T, E>,
) -> Result<T, String> {
    let database = database.to_owned();
    tokio::task::spawn_blocking(move || {
        let conn = crate::store::open_read_only(&database).map_err(|e| e.to_string())?;
        read(&conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Where the events go: this server's SQLite store, or the cluster's stream.
enum Record {
    /// The store, a handle for its writer's other requests, and the newest
    /// erase the loaded history already reflects.
    Store(Store, StoreHandle, i64),
    Node(Box<Node>),
}

/// A bound, not yet running server.
pub struct Server {
    /// The chat ports: the line protocol and IRC, plain and TLS, as configured.
    listeners: Vec<Listener>,
    /// The web ports: plain HTTP (or its redirect) and HTTPS, when `[web]` is enabled.
    web: Vec<(TcpListener, web::Mode)>,
    /// The certificate of the TLS ports, with `[tls]`.
    certificates: Option<Arc<Certificates>>,
    config: Arc<ValidConfig>,
    board: Arc<Switchboard>,
    record: Record,
    next_id: ConnId,
}

/// One chat port.
struct Listener {
    socket: TcpListener,
    front: Front,
    /// Present on a TLS port.
    tls: Option<TlsAcceptor>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

fn bound(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("a bound listener has an address")
}

impl Server {
    /// Opens the store and binds the configured addresses (port 0 picks a free port).
    pub async fn bind(config: ValidConfig) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        let certificates = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => Some(Certificates::load(cert, key)?),
            _ => None,
        };
        let acceptor = certificates.as_ref().map(|c| c.acceptor());
        // A single server's database is opened (and locked) before its ports are
        // bound; a cluster node joins only once its ports are bound, so that a
        // node that cannot listen never enters the cluster.
        let opened = match config.is_cluster() {
            true => None,
            false => {
                let store_config = config.clone();
                let opened = tokio::task::spawn_blocking(move || Store::open(&store_config))
                    .await
                    .expect("store open panicked")?;
                Some(opened)
            }
        };
        let mut listeners = Vec::new();
        let plain = config.plain_enabled();
        let mut listen = async |addr: SocketAddr, front: Front, tls: Option<&TlsAcceptor>| {
            listeners.push(Listener {
                socket: bind(addr).await?,
                front,
                tls: tls.cloned(),
            });
            Ok::<(), ServerError>(())
        };
        if plain {
            listen(
                SocketAddr::new(config.server.bind, config.server.port),
                Front::Line,
                None,
            )
            .await?;
        }
        if let Some(addr) = config.line_tls_addr() {
            listen(addr, Front::Line, acceptor.as_ref()).await?;
        }
        if let Some(addr) = config.irc_addr().filter(|_| plain) {
            listen(addr, Front::Irc, None).await?;
        }
        if let Some(addr) = config.irc_tls_addr() {
            listen(addr, Front::Irc, acceptor.as_ref()).await?;
        }
        let mut web = Vec::new();
        if config.web.enabled {
            let https = match (config.web_tls_addr(), &acceptor) {
                (Some(addr), Some(acceptor)) => Some((bind(addr).await?, acceptor.clone())),
                _ => None,
            };
            let mode = match &https {
                Some((listener, _)) if config.tls.require => web::Mode::Redirect {
                    port: bound(listener).port(),
                },
                _ => web::Mode::Http,
            };
            web.push((bind(config.web_addr()).await?, mode));
            if let Some((listener, acceptor)) = https {
                web.push((listener, web::Mode::Https(acceptor)));
            }
        }
        let clock = Clock::new(&config.server.timestamp_format, config.server.utc);
        let (board, next_id, record) = match opened {
            None => {
                let node = Node::start(&config, clock).await?;
                (
                    node.board.clone(),
                    node.first_id(),
                    Record::Node(Box::new(node)),
                )
            }
            Some(opened) => {
                let history = History::loaded(config.history.replay_lines, opened.history);
                let hub = Hub::new(Settings::from_config(&config), history);
                let handle = opened.handle.clone();
                let board = Switchboard::new(hub, opened.handle, clock);
                (
                    Arc::new(board),
                    opened.next_session,
                    Record::Store(opened.store, handle, opened.last_erase),
                )
            }
        };
        Ok(Server {
            listeners,
            web,
            certificates,
            config,
            board,
            record,
            next_id,
        })
    }

    /// This server's number in its cluster, if it is a cluster node.
    pub fn node_number(&self) -> Option<u64> {
        match &self.record {
            Record::Node(node) => Some(node.number),
            Record::Store(..) => None,
        }
    }

    fn chat_addr(&self, front: Front, tls: bool) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.front == front && l.tls.is_some() == tls)
            .map(|l| bound(&l.socket))
    }

    fn web_listener(&self, https: bool) -> Option<SocketAddr> {
        self.web
            .iter()
            .find(|(_, mode)| matches!(mode, web::Mode::Https(_)) == https)
            .map(|(l, _)| bound(l))
    }

    /// The line protocol's address: the plain port, or the TLS one under
    /// `tls.require`.
    pub fn local_addr(&self) -> SocketAddr {
        self.chat_addr(Front::Line, false)
            .or_else(|| self.line_tls_addr())
            .expect("the line protocol always listens")
    }

    /// The line protocol's TLS address, with `[tls]`.
    pub fn line_tls_addr(&self) -> Option<SocketAddr> {
        self.chat_addr(Front::Line, true)
    }

    /// The address the web listener actually bound, when `[web]` is enabled
    /// (under `tls.require`, it only redirects to HTTPS).
    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.web_listener(false)
    }

    /// The HTTPS address, with `[web]` and `[tls]`.
    pub fn web_tls_addr(&self) -> Option<SocketAddr> {
        self.web_listener(true)
    }

    /// The address the IRC listener actually bound, when it is enabled.
    pub fn irc_addr(&self) -> Option<SocketAddr> {
        self.chat_addr(Front::Irc, false)
    }

    /// The IRC TLS address, with `[irc]` and `[tls]`.
    pub fn irc_tls_addr(&self) -> Option<SocketAddr> {
        self.chat_addr(Front::Irc, true)
    }

    /// The SHA-256 fingerprint of the TLS certificate, with `[tls]`.
    pub fn fingerprint(&self) -> Option<String> {
        self.certificates.as_ref().map(|c| c.fingerprint())
    }

    /// Serves until `shutdown` completes, then shuts down in order; returns once
    /// everything is on disk, or saved beside the database if the database still
    /// refused it when the shutdown grace ran out.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Closed {
        let Server {
            listeners,
            web,
            certificates,
            config,
            board,
            record,
            next_id,
        } = self;
        let stopping = CancellationToken::new();
        let cx = Context::new(board.clone(), config.clone(), stopping.clone());
        let tracker = TaskTracker::new();
        let mut roster = roster_source(&config);
        reload_roster(&cx, &mut *roster).await;
        tracker.spawn(keep_roster_current(cx.clone(), roster));
        if config.limits.announce_joins_up_to > 0 {
            tracker.spawn(keep_announcing_crowds(cx.clone()));
        }
        match &record {
            Record::Store(_, handle, seen) => {
                let database = config.storage.database.clone();
                tracker.spawn(keep_record_tidy(
                    cx.clone(),
                    handle.clone(),
                    database,
                    *seen,
                ));
            }
            Record::Node(node) => {
                tracker.spawn(keep_postgres_tidy(cx.clone()));
                tracker.spawn(node.share_counters(&cx, stopping.clone()));
            }
        }
        // The names of the certificate at start: one renewed with new names needs a
        // restart (or web.hosts) before the page is served under them.
        let names = certificates.as_ref().map(|c| c.names()).unwrap_or_default();
        if let Some(certificates) = certificates {
            tracker.spawn(certificates.keep_current(stopping.clone()));
        }
        let ids = Arc::new(AtomicI64::new(next_id));
        if !web.is_empty() {
            let shared = web::Web::new(cx.clone(), ids.clone(), tracker.clone(), names);
            let shared = Arc::new(shared);
            for (listener, mode) in web {
                tracker.spawn(web::serve(listener, shared.clone(), mode));
            }
        }
        let accepting = CancellationToken::new();
        let loops: Vec<_> = listeners
            .into_iter()
            .map(|listener| {
                let chat = Accept {
                    cx: cx.clone(),
                    ids: ids.clone(),
                    tracker: tracker.clone(),
                };
                tokio::spawn(chat.run(listener, accepting.clone()))
            })
            .collect();
        shutdown.await;
        // Stop accepting (the listeners close) before anyone is told.
        accepting.cancel();
        for accept in loops {
            let _ = accept.await;
        }
        tracing::info!(clients = board.member_count(), "shutting down");
        board.shutdown();
        if board.connected_here() > 0 {
            tokio::time::sleep(DRAIN).await;
        }
        stopping.cancel();
        tracker.close();
        if tokio::time::timeout(CLOSE_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        drop((board, cx));
        let closed = match record {
            Record::Store(store, ..) => tokio::task::spawn_blocking(move || store.close())
                .await
                .expect("store close panicked"),
            Record::Node(node) => {
                node.close(config.storage.shutdown_grace()).await;
                Closed::AllWritten
            }
        };
        tracing::info!("stopped");
        closed
    }
}

/// What a chat port's accept loop hands each connection.
#[derive(Clone)]
struct Accept {
    cx: Context,
    ids: Arc<AtomicI64>,
    tracker: TaskTracker,
}

impl Accept {
    /// Accepts on one chat port until `stop` is cancelled. Each connection gets
    /// its places under the limits here, and runs (TLS handshake included) in a
    /// task of its own.
    async fn run(self, listener: Listener, stop: CancellationToken) {
        let Listener { socket, front, tls } = listener;
        let clock = self.cx.board.clock().clone();
        let (cx, tracker, accept) = (self.cx.clone(), self.tracker.clone(), self.clone());
        conn::accept(&socket, &cx, &stop, &tracker, move |socket, peer| {
            accept.admit(socket, peer, front, &tls, &clock)
        })
        .await;
    }

    /// Gives a connection from `peer` its places under the limits and serves it
    /// in a task of its own, or turns it away in its own protocol.
    fn admit(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
        front: Front,
        tls: &Option<TlsAcceptor>,
        clock: &Clock,
    ) {
        let seat = match self.cx.admit(peer.ip()) {
            Ok(seat) => seat,
            Err(refusal) => {
                let refuse = front.refuse(tls.clone(), socket, clock.clone(), refusal);
                self.tracker.spawn(refuse);
                return;
            }
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let secure = tls.is_some();
        let span =
            tracing::info_span!("conn", id, %peer, tls = secure, nick = tracing::field::Empty);
        let cx = self.cx.clone();
        // Two tasks of their own types: a plain connection's task is only as big
        // as serving it, not as big as a TLS handshake and a TLS session too
        // (several KB each, for every one of ten thousand connections).
        match tls {
            None => self.tracker.spawn(
                async move {
                    tracing::debug!(?front, "connected");
                    front.serve(socket, peer, id, cx, seat).await;
                    tracing::debug!("closed");
                }
                .instrument(span),
            ),
            Some(tls) => {
                let tls = tls.clone();
                self.tracker.spawn(
                    async move {
                        tracing::debug!(?front, "connected");
                        serve_tls(front, tls, socket, peer, id, cx, seat).await;
                        tracing::debug!("closed");
                    }
                    .instrument(span),
                )
            }
        };
    }
}

/// Serves one connection on a TLS port: the handshake (which holds a handshake
/// place, as the login does), then the front end over the session.
async fn serve_tls(
    front: Front,
    tls: TlsAcceptor,
    socket: TcpStream,
    peer: SocketAddr,
    id: ConnId,
    cx: Context,
    seat: Seat,
) {
    let stopping = cx.shutdown.clone();
    let handshake = tokio::time::timeout(
        HANDSHAKE_WITHIN,
        session::accept(tls.config().clone(), socket),
    );
    let shaken = tokio::select! {
        shaken = handshake => shaken,
        _ = stopping.cancelled() => return,
        _ = seat.evicted() => return,
    };
    match shaken {
        Ok(Ok(stream)) => front.serve(stream, peer, id, cx, seat).await,
        Ok(Err(err)) => tracing::debug!(%err, "TLS handshake failed"),
        Err(_) => tracing::debug!("TLS handshake timed out"),
    }
}

/// Which protocol a chat port speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Front {
    Line,
    Irc,
}

impl Front {
    /// Serves one connection, plain or TLS. Split here, before any future holds
    /// it: a future keeps its arguments for as long as it runs, and a TLS
    /// session (1.2 KB) would sit there beside the one its halves share.
    fn serve<S: Duplex>(
        self,
        socket: S,
        peer: SocketAddr,
        id: ConnId,
        cx: Context,
        seat: Seat,
    ) -> impl Future<Output = ()> {
        let (reader, writer) = socket.halves();
        async move {
            match self {
                Front::Line => line::serve(reader, writer, peer, id, cx, seat).await,
                Front::Irc => irc::serve(reader, writer, peer, id, cx, seat).await,
            }
        }
    }

    /// Turns a client away in its own protocol, without taking a seat; on a TLS
    /// port after the handshake, so that the client can read why.
    async fn refuse(
        self,
        tls: Option<TlsAcceptor>,
        socket: TcpStream,
        clock: Clock,
        reason: LoginError,
    ) {
        match tls {
            None => self.tell(socket, clock, reason).await,
            Some(tls) => {
                if let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_WITHIN, tls.accept(socket)).await
                {
                    self.tell(stream, clock, reason).await;
                }
            }
        }
    }

    async fn tell<S: AsyncWrite + Unpin>(self, socket: S, clock: Clock, reason: LoginError) {
        match self {
            Front::Line => line::refuse(socket, clock, reason).await,
            Front::Irc => irc::refuse(socket, reason).await,
        }
    }
}
