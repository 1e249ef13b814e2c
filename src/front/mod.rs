//! Front ends: the ways a client reaches the [`Switchboard`].
//! Each one decodes its wire format into [`Input`](crate::protocol::Input), calls the
//! switchboard, and renders the [`Stamped`](crate::protocol::Stamped) lines queued for
//! its client in its own format.
//!
//! - [`line`](mod@line): the line protocol of SPEC section 2 over TCP (`chat-client`, `nc`).
//! - [`irc`]: IRC (SPEC section 7) for irssi, WeeChat and HexChat.
//! - [`web`]: the same line protocol over a WebSocket for the browser's chat page,
//!   and the instructor page (SPEC section 8).
//!
//! [`conn`] is the plumbing their connections share (reading, the batched writer,
//! closing, `/op`); [`liveness`] sets the socket options that notice a vanished
//! client, for all of them.

pub mod conn;
pub mod irc;
pub mod line;
pub mod liveness;
pub mod login;
pub mod proxy;
pub mod seat;
pub mod web;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::access::{AddressWindow, CodeGuard};
use crate::config::ValidConfig;
use crate::limiter::ChatRate;
use crate::protocol::LoginError;
use crate::roster::LiveRoster;
use crate::switchboard::Switchboard;
use crate::tls::session::{TlsReader, TlsSocket, TlsWriter};
use proxy::Proxies;
use seat::{AddressSeat, NoSeat, Seat, Seats};

/// A client's connection, plain TCP or TLS, as its two halves: the front ends
/// read in one task and write in another, and serve both kinds with the same code.
pub trait Duplex: Send + 'static {
    /// The half read from.
    type Reader: ReadHalf;
    /// The half written to.
    type Writer: WriteHalf;
    /// Splits the connection.
    fn halves(self) -> (Self::Reader, Self::Writer);
}

/// The half of a connection a front end reads from, whatever carries it.
pub trait ReadHalf: AsyncRead + Send + Unpin + 'static {}
impl<T: AsyncRead + Send + Unpin + 'static> ReadHalf for T {}

/// The half of a connection a front end writes to.
pub trait WriteHalf: AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncWrite + Send + Unpin + 'static> WriteHalf for T {}

impl Duplex for TcpStream {
    type Reader = tokio::net::tcp::OwnedReadHalf;
    type Writer = tokio::net::tcp::OwnedWriteHalf;

    /// Without a lock between the halves: a TCP socket can be read and written at once.
    fn halves(self) -> (Self::Reader, Self::Writer) {
        self.into_split()
    }
}

impl Duplex for TlsSocket {
    type Reader = TlsReader;
    type Writer = TlsWriter;

    /// One TLS session has one state for both directions, so the halves share it
    /// behind a lock.
    fn halves(self) -> (Self::Reader, Self::Writer) {
        self.split()
    }
}

/// What a connection needs from the server around it.
#[derive(Clone)]
pub struct Context {
    /// The room manager's front door.
    pub board: Arc<Switchboard>,
    /// The validated configuration.
    pub config: Arc<ValidConfig>,
    /// Code and password checks, counted per address and name.
    pub codes: Arc<CodeGuard>,
    /// The chat rate per login name.
    pub rate: Arc<ChatRate>,
    /// Places under the connection limits.
    pub seats: Seats,
    /// The class roster, kept current by the server.
    pub roster: Arc<LiveRoster>,
    /// New connections per address per minute.
    pub connects: Arc<AddressWindow>,
    /// Whose PROXY protocol headers name the client's address.
    pub proxies: Arc<Proxies>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
    /// What each IRC user was already given of each room's history.
    pub irc_given: Arc<irc::given::Given>,
}

impl Context {
    /// The places of a new connection from `ip` on any front end, or why it
    /// cannot come in: the limits per address and the handshake budget.
    pub fn admit(&self, ip: IpAddr) -> Result<Seat, LoginError> {
        self.connects
            .admit(ip, Instant::now())
            .map_err(|locked| LoginError::TooManyConnects(locked.retry_secs))?;
        self.seats.connect(ip).map_err(|no| match no {
            NoSeat::Address => LoginError::TooManyFromAddress(self.config.limits.max_per_ip),
            NoSeat::Busy => LoginError::Busy,
        })
    }

    /// The place of a new HTTP connection from `ip`: the same connection rate and
    /// count per address as the chat ports, but no handshake place.
    pub fn admit_http(&self, ip: IpAddr) -> Result<AddressSeat, LoginError> {
        self.connects
            .admit(ip, Instant::now())
            .map_err(|locked| LoginError::TooManyConnects(locked.retry_secs))?;
        self.seats
            .address(ip)
            .map_err(|_| LoginError::TooManyFromAddress(self.config.limits.max_per_ip))
    }

    /// The places of a WebSocket client, whose HTTP connection was already counted
    /// by [`Context::admit_http`] (and gave its place back just before).
    pub fn admit_upgraded(&self, ip: IpAddr) -> Result<Seat, LoginError> {
        self.seats.connect(ip).map_err(|no| match no {
            NoSeat::Address => LoginError::TooManyFromAddress(self.config.limits.max_per_ip),
            NoSeat::Busy => LoginError::Busy,
        })
    }

    /// The shared state of every connection of one server.
    pub fn new(
        board: Arc<Switchboard>,
        config: Arc<ValidConfig>,
        shutdown: CancellationToken,
    ) -> Context {
        let limits = &config.limits;
        Context {
            codes: Arc::new(CodeGuard::new(
                config.access.code_attempts_per_minute,
                config.access.code_attempts_per_minute_per_ip,
                config.access.parallel_checks,
            )),
            rate: Arc::new(ChatRate::new(limits.messages_per_sec, limits.burst)),
            seats: Seats::new(
                limits.max_clients,
                limits.max_per_ip,
                limits.max_pending,
                limits.max_pending_per_ip,
            ),
            roster: Arc::default(),
            connects: Arc::new(AddressWindow::connects(limits.connects_per_minute_per_ip)),
            proxies: Arc::new(Proxies::new(&config.server)),
            board,
            config,
            shutdown,
            irc_given: Arc::default(),
        }
    }
}
