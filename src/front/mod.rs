//! Front ends: the ways a client reaches the [`Switchboard`](crate::switchboard::Switchboard).
//! Each one decodes its wire format into [`Input`](crate::protocol::Input), calls the
//! switchboard, and renders the [`Stamped`](crate::protocol::Stamped) lines queued for
//! its client in its own format.
//!
//! - [`line`]: the line protocol of SPEC section 2 over TCP (`chat-client`, `nc`).
//! - [`irc`]: IRC (SPEC section 7) for irssi, WeeChat and HexChat.

pub mod irc;
pub mod line;
pub mod login;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::access::CodeGuard;
use crate::config::ValidConfig;
use crate::switchboard::Switchboard;

/// What a connection needs from the server around it.
#[derive(Clone)]
pub struct Context {
    /// The room manager's front door.
    pub board: Arc<Switchboard>,
    /// The validated configuration.
    pub config: Arc<ValidConfig>,
    /// Wrong codes per address.
    pub codes: Arc<CodeGuard>,
    /// Cancelled when the server stops.
    pub shutdown: CancellationToken,
}
