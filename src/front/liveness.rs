//! Noticing that a client's network is gone. A laptop that closes its lid or walks
//! out of the Wi-Fi sends no FIN or RST: without help its connection would hold a
//! seat (and, with lines queued for it, kernel memory) until the server restarts.
//!
//! Every accepted socket, on every front end, gets [`watch`]: TCP keep-alive probes
//! find a silent peer whose side has nothing to send, and `TCP_USER_TIMEOUT` finds
//! one while the server has unacknowledged data queued for it, where keep-alive
//! never starts. Either way the next read or write fails within [`DEAD_WITHIN`],
//! and the front end ends the connection as lost. IRC and the WebSocket also ping
//! at their own level, which catches a peer whose kernel answers but whose program
//! is stuck.

use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

/// Silence before the first keep-alive probe.
const PROBE_AFTER: Duration = Duration::from_secs(20);
/// Time between probes.
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is dropped: 20 + 4 * 5 = 40 s.
const PROBES: u32 = 4;
/// How long sent data may stay unacknowledged before the connection is dropped.
const UNACKED_FOR: Duration = Duration::from_secs(45);

/// The longest a vanished client can keep its connection, with or without data
/// queued for it.
pub const DEAD_WITHIN: Duration = Duration::from_secs(60);

/// Sets the options of an accepted client socket: no Nagle delay (a chat line is a
/// small write that must leave at once), keep-alive probes and a user timeout.
/// Failures are logged and otherwise ignored: the connection still works, it is
/// only noticed later when it dies.
pub fn watch(socket: &TcpStream) {
    let _ = socket.set_nodelay(true);
    let sock = SockRef::from(socket);
    let keepalive = TcpKeepalive::new()
        .with_time(PROBE_AFTER)
        .with_interval(PROBE_EVERY)
        .with_retries(PROBES);
    if let Err(err) = sock.set_tcp_keepalive(&keepalive) {
        tracing::debug!(%err, "cannot turn on TCP keep-alive");
    }
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    if let Err(err) = sock.set_tcp_user_timeout(Some(UNACKED_FOR)) {
        tracing::debug!(%err, "cannot set TCP_USER_TIMEOUT");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_sockets_probe_and_time_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (accepted, _client) = tokio::join!(listener.accept(), client);
        let (socket, _) = accepted.unwrap();
        watch(&socket);
        let sock = SockRef::from(&socket);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), PROBE_AFTER);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), PROBE_EVERY);
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), PROBES);
        assert_eq!(sock.tcp_user_timeout().unwrap(), Some(UNACKED_FOR));
        assert!(socket.nodelay().unwrap());
        assert!(PROBE_AFTER + PROBE_EVERY * PROBES <= DEAD_WITHIN && UNACKED_FOR <= DEAD_WITHIN);
    }
}
