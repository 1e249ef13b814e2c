//! The accept loop and the orderly shutdown.
//!
//! [`Server::bind`] opens the store and the listening socket; [`Server::run`] serves
//! until the future it is given completes (SIGINT/SIGTERM in the binary, anything in
//! a test), then stops accepting, tells every client, waits for their connections to
//! close, and waits for the store to write everything still queued.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::access::CodeGuard;
use crate::clock::Clock;
use crate::config::ValidConfig;
use crate::front::{irc, line, Context};
use crate::hub::{ConnId, History, Hub, Settings};
use crate::protocol::LoginError;
use crate::store::{Store, StoreError};
use crate::switchboard::Switchboard;

/// The longest a shutdown waits for connections to close before it stops waiting.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The database or transcript could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    /// The IRC listener, when `irc.enabled`.
    irc: Option<TcpListener>,
    config: Arc<ValidConfig>,
    board: Arc<Switchboard>,
    store: Store,
    next_id: ConnId,
}

impl Server {
    /// Opens the store and binds the configured address (port 0 picks a free port).
    pub async fn bind(config: ValidConfig) -> Result<Server, ServerError> {
        let config = Arc::new(config);
        let store_config = config.clone();
        let opened = tokio::task::spawn_blocking(move || Store::open(&store_config))
            .await
            .expect("store open panicked")?;
        let addr = SocketAddr::new(config.server.bind, config.server.port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let irc = match config.irc_addr() {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        let history = History::loaded(config.history.replay_lines, opened.history);
        let hub = Hub::new(Settings::from_config(&config), history);
        let clock = Clock::new(&config.server.timestamp_format, config.server.utc);
        let board = Arc::new(Switchboard::new(hub, opened.handle, clock));
        Ok(Server {
            listener,
            irc,
            config,
            board,
            store: opened.store,
            next_id: opened.next_session,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address the IRC listener actually bound, when it is enabled.
    pub fn irc_addr(&self) -> Option<SocketAddr> {
        self.irc
            .as_ref()
            .map(|l| l.local_addr().expect("a bound listener has an address"))
    }

    /// Serves until `shutdown` completes, then shuts down in order; returns once
    /// everything is on disk.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Server {
            listener,
            irc: irc_listener,
            config,
            board,
            store,
            mut next_id,
        } = self;
        let stopping = CancellationToken::new();
        let cx = Context {
            board: board.clone(),
            config: config.clone(),
            codes: Arc::new(CodeGuard::new(config.access.code_attempts_per_minute)),
            shutdown: stopping.clone(),
        };
        let clock = board.clock().clone();
        let tracker = TaskTracker::new();
        let seats = Arc::new(Semaphore::new(config.limits.max_clients));
        let per_address = AddressSeats::new(config.limits.max_per_ip);
        tokio::pin!(shutdown);
        loop {
            let (front, accepted) = tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => (Front::Line, accepted),
                accepted = accept(irc_listener.as_ref()) => (Front::Irc, accepted),
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually out of file descriptors: wait for some to free up
                    // instead of ending the server.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let Ok(seat) = seats.clone().try_acquire_owned() else {
                let refusal = LoginError::Full(config.limits.max_clients);
                front.refuse(&tracker, socket, &clock, refusal);
                continue;
            };
            let Some(address_seat) = per_address.take(peer.ip()) else {
                tracing::warn!(%peer, "too many connections from one address");
                let refusal = LoginError::TooManyFromAddress(config.limits.max_per_ip);
                front.refuse(&tracker, socket, &clock, refusal);
                continue;
            };
            let id = next_id;
            next_id += 1;
            let span = tracing::info_span!("conn", id, %peer, nick = tracing::field::Empty);
            let seats = (seat, address_seat);
            let cx = cx.clone();
            tracker.spawn(
                async move {
                    tracing::debug!(?front, "connected");
                    match front {
                        Front::Line => line::serve(socket, id, cx, seats).await,
                        Front::Irc => irc::serve(socket, id, cx, seats).await,
                    }
                    tracing::debug!("closed");
                }
                .instrument(span),
            );
        }
        drop((listener, irc_listener));
        tracing::info!(clients = board.member_count(), "shutting down");
        board.shutdown();
        stopping.cancel();
        tracker.close();
        if tokio::time::timeout(CLOSE_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close in time");
        }
        drop((board, cx));
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        tracing::info!("stopped");
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy)]
enum Front {
    Line,
    Irc,
}

impl Front {
    /// Turns a client away in its own protocol, without taking a seat.
    fn refuse(self, tracker: &TaskTracker, socket: TcpStream, clock: &Clock, reason: LoginError) {
        match self {
            Front::Line => tracker.spawn(line::refuse(socket, clock.clone(), reason)),
            Front::Irc => tracker.spawn(irc::refuse(socket, reason)),
        };
    }
}

/// The next connection on `listener`; never, without one.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// Connections per IP address, for `limits.max_per_ip`.
#[derive(Clone)]
struct AddressSeats {
    max: usize,
    taken: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in [`AddressSeats`]; gives it back when dropped.
struct AddressSeat {
    seats: AddressSeats,
    ip: IpAddr,
}

impl AddressSeats {
    fn new(max: usize) -> Self {
        AddressSeats {
            max,
            taken: Arc::default(),
        }
    }

    /// A seat for `ip`, or `None` if it has `max` already (never with `max == 0`).
    fn take(&self, ip: IpAddr) -> Option<AddressSeat> {
        let mut taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let count = taken.entry(ip).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSeat {
            seats: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSeat {
    fn drop(&mut self) {
        let mut taken = self.seats.taken.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = taken.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                taken.remove(&self.ip);
            }
        }
    }
}
