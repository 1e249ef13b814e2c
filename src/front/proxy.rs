//! The PROXY protocol (HAProxy's, v1 text and v2 binary) in front of every
//! listener: behind a load balancer every connection comes from the balancer, and
//! the header it sends first names the student's address, which the limits per
//! address, the logs and kicks then use.
//!
//! Only `server.trusted_proxies` are believed: anyone else could otherwise claim
//! any address and escape every limit, so with `server.proxy_protocol` on, a
//! connection from another address is closed before it is read.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ppp::v1;
use ppp::v2;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::{ServerConfig, TrustedProxy};

/// How long a balancer may take to send the header: it sends it at once, so
/// this only bounds a connection that is not from a balancer after all.
pub const HEADER_WITHIN: Duration = Duration::from_secs(5);

/// The longest v1 header, its line ending included (the protocol's own bound).
const V1_MAX: usize = 107;

/// What every v2 header starts with.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The fixed part of a v2 header: the signature, version and command, family,
/// and the length of what follows.
const V2_FIXED: usize = 16;

/// Why a connection was closed before it was served.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A connection from an address that is not a trusted proxy.
    #[error("not from a trusted proxy")]
    Untrusted,
    /// No header within [`HEADER_WITHIN`].
    #[error("no PROXY header in time")]
    Slow,
    /// The first bytes are not a PROXY header.
    #[error("bad PROXY header: {0}")]
    Bad(String),
    /// The connection failed while the header was read.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// The listeners' policy: whether a header is expected, and from whom.
#[derive(Debug, Default)]
pub struct Proxies {
    /// Empty when the PROXY protocol is off.
    trusted: Vec<TrustedProxy>,
    /// When a refusal was last logged, and how many since.
    logged: Mutex<(Option<Instant>, u64)>,
}

impl Proxies {
    /// The policy of `server.proxy_protocol` and `server.trusted_proxies`.
    pub fn new(server: &ServerConfig) -> Proxies {
        match server.proxy_protocol {
            true => Proxies {
                trusted: server.trusted_proxies.clone(),
                logged: Mutex::default(),
            },
            false => Proxies::default(),
        }
    }

    /// Whether connections start with a header.
    pub fn expected(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// The client's address of a connection accepted from `peer`: `peer` itself
    /// without the PROXY protocol; else the header's source, read off `socket`
    /// (and nothing after it, which belongs to the client's protocol or TLS).
    /// A header that names no address (`LOCAL`, `UNKNOWN`: the balancer's own
    /// health checks) leaves `peer`.
    pub async fn client(
        &self,
        socket: &mut TcpStream,
        peer: SocketAddr,
    ) -> Result<SocketAddr, Refused> {
        if !self.expected() {
            return Ok(peer);
        }
        if !self.trusted.iter().any(|proxy| proxy.contains(peer.ip())) {
            return Err(Refused::Untrusted);
        }
        let header = tokio::time::timeout(HEADER_WITHIN, read_header(socket))
            .await
            .map_err(|_| Refused::Slow)??;
        Ok(source(&header)?.unwrap_or(peer))
    }
}

impl Proxies {
    /// Logs a closed connection, at most once a minute: a misconfigured balancer
    /// should be seen, but a flood from elsewhere must not fill the log.
    pub fn log_refusal(&self, peer: SocketAddr, refused: &Refused) {
        let now = Instant::now();
        let mut logged = self.logged.lock().unwrap_or_else(|e| e.into_inner());
        let (at, count) = &mut *logged;
        *count += 1;
        if at.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(60)) {
            tracing::warn!(%peer, %refused, count = *count, "connection closed before its PROXY header was accepted (count since the last such line)");
            *at = Some(now);
            *count = 0;
        }
    }
}

/// Reads exactly one header's bytes: the v2 length field, or the v1 line ending,
/// says where it stops.
async fn read_header(socket: &mut TcpStream) -> Result<Vec<u8>, Refused> {
    let mut header = vec![0; 5];
    socket.read_exact(&mut header).await?;
    if header == b"PROXY" {
        // One byte at a time so as not to read past the line: at most 107 reads,
        // once per connection.
        let mut byte = [0];
        while !header.ends_with(b"\r\n") {
            if header.len() == V1_MAX {
                return Err(Refused::Bad("v1 header longer than 107 bytes".into()));
            }
            socket.read_exact(&mut byte).await?;
            header.push(byte[0]);
        }
        return Ok(header);
    }
    if !V2_SIGNATURE.starts_with(&header) {
        return Err(Refused::Bad("neither v1 nor v2".into()));
    }
    header.resize(V2_FIXED, 0);
    socket.read_exact(&mut header[5..]).await?;
    let rest = u16::from_be_bytes([header[14], header[15]]) as usize;
    header.resize(V2_FIXED + rest, 0);
    socket.read_exact(&mut header[V2_FIXED..]).await?;
    Ok(header)
}

/// The client's address in a complete header, if it names one.
fn source(header: &[u8]) -> Result<Option<SocketAddr>, Refused> {
    let bad = |e: &dyn std::fmt::Display| Refused::Bad(e.to_string());
    if header.starts_with(&V2_SIGNATURE) {
        let header = v2::Header::try_from(header).map_err(|e| bad(&e))?;
        if header.command == v2::Command::Local {
            return Ok(None);
        }
        return Ok(match header.addresses {
            v2::Addresses::IPv4(a) => Some(socket(a.source_address.into(), a.source_port)),
            v2::Addresses::IPv6(a) => Some(socket(a.source_address.into(), a.source_port)),
            v2::Addresses::Unspecified | v2::Addresses::Unix(_) => None,
        });
    }
    let header = v1::Header::try_from(header).map_err(|e| bad(&e))?;
    Ok(match header.addresses {
        v1::Addresses::Tcp4(a) => Some(socket(a.source_address.into(), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(socket(a.source_address.into(), a.source_port)),
        v1::Addresses::Unknown => None,
    })
}

fn socket(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip.to_canonical(), port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(from: &str, to: &str) -> Vec<u8> {
        let from: SocketAddr = from.parse().unwrap();
        let to: SocketAddr = to.parse().unwrap();
        v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (from, to),
        )
        .build()
        .unwrap()
    }

    #[test]
    fn a_v2_header_names_the_client() {
        let header = v2_header("10.1.2.3:40000", "10.0.0.11:5555");
        let client = source(&header).unwrap();
        assert_eq!(client, Some("10.1.2.3:40000".parse().unwrap()));
    }

    #[test]
    fn a_v2_header_over_ipv6_names_the_client() {
        let header = v2_header("[2001:db8::7]:40000", "[2001:db8::1]:5555");
        let client = source(&header).unwrap();
        assert_eq!(client, Some("[2001:db8::7]:40000".parse().unwrap()));
    }

    #[test]
    fn a_v1_header_names_the_client() {
        let header = b"PROXY TCP4 10.1.2.3 10.0.0.11 40000 5555\r\n";
        let client = source(header).unwrap();
        assert_eq!(client, Some("10.1.2.3:40000".parse().unwrap()));
    }

    #[test]
    fn health_checks_name_nobody() {
        assert_eq!(source(b"PROXY UNKNOWN\r\n").unwrap(), None);
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(source(&local).unwrap(), None);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(matches!(
            source(b"PROXY TCP4 nonsense\r\n"),
            Err(Refused::Bad(_))
        ));
    }

    #[tokio::test]
    async fn only_the_header_is_read_off_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for header in [
            v2_header("10.1.2.3:40000", "10.0.0.11:5555"),
            b"PROXY TCP4 10.1.2.3 10.0.0.11 40000 5555\r\n".to_vec(),
        ] {
            let client = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut stream = TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(&[header, b"amy\n".to_vec()].concat())
                    .await
                    .unwrap();
                stream
            });
            let (mut socket, peer) = listener.accept().await.unwrap();
            let proxies = Proxies {
                trusted: vec![TrustedProxy::try_from("127.0.0.1".to_owned()).unwrap()],
                logged: Mutex::default(),
            };
            let real = proxies.client(&mut socket, peer).await.unwrap();
            assert_eq!(real, "10.1.2.3:40000".parse().unwrap());
            let mut rest = [0; 4];
            socket.read_exact(&mut rest).await.unwrap();
            assert_eq!(&rest, b"amy\n");
            drop(client.await.unwrap());
        }
    }

    #[tokio::test]
    async fn an_untrusted_peer_is_refused_unread() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (mut socket, peer) = listener.accept().await.unwrap();
        let proxies = Proxies {
            trusted: vec![TrustedProxy::try_from("10.0.0.0/24".to_owned()).unwrap()],
            logged: Mutex::default(),
        };
        let refused = proxies.client(&mut socket, peer).await;
        assert!(matches!(refused, Err(Refused::Untrusted)), "{refused:?}");
    }
}
