//! A server's TLS session on a TCP socket that holds no buffer while it waits.
//!
//! tokio-rustls keeps rustls's 4 KB read buffer for as long as a read is
//! pending, and a chat client's read is always pending: at 10,000 idle
//! connections that was 40 MB. Here the buffers are this module's (rustls's
//! unbuffered API): bytes are read onto the stack and handed to rustls from
//! there, and the heap holds only what is really waiting: the start of a record
//! whose end has not arrived, plaintext the reader has not taken yet, and
//! ciphertext the socket has not taken yet. Each is freed when it empties.
//!
//! The two halves share the session behind a lock held for no system call's
//! wait: the reader only reads the socket and the writer only writes it, so each
//! waits on its own direction's readiness. What rustls has to send while reading
//! (a key update's answer, session tickets after the handshake) is queued ahead
//! of the next write.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    AppDataRecord, ConnectionState, EncodeError, EncryptError, UnbufferedStatus,
};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Bytes read from the socket at a time, onto the stack.
const READ_CHUNK: usize = 8192;

/// Plaintext encrypted per write: one full record.
const WRITE_CHUNK: usize = 16384;

/// The most that may wait for the rest of a record once the handshake is done:
/// the largest record on the wire (16 KB of data, its expansion, the header).
const MAX_RECORD: usize = 16384 + 2048 + 5;

/// The most that may wait during the handshake, where a message can span
/// records: rustls's own limit of 64 KB for a handshake message, plus a record.
const MAX_HANDSHAKE: usize = 0xffff + MAX_RECORD;

/// Performs the server's side of the handshake on `socket`.
pub async fn accept(config: Arc<ServerConfig>, mut socket: TcpStream) -> io::Result<TlsSocket> {
    let mut session = Session::new(config)?;
    loop {
        if !session.outgoing.is_empty() {
            socket.write_all(&session.outgoing).await?;
            session.outgoing = Vec::new();
        }
        if !session.conn.is_handshaking() {
            break;
        }
        if session.closed {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        socket.readable().await?;
        match session.read_from(&socket) {
            Ok(Read::Bytes) => {}
            Err(Refused::Socket(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(Refused::Socket(err)) => return Err(err),
            Ok(Read::End) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Err(Refused::Tls(err)) => {
                // The alert saying why, if the client still listens.
                let _ = socket.write_all(&session.outgoing).await;
                return Err(err);
            }
        }
    }
    Ok(TlsSocket(Arc::new(Shared {
        socket,
        session: Mutex::new(session),
    })))
}

/// An established session, to be split into its halves.
pub struct TlsSocket(Arc<Shared>);

impl TlsSocket {
    /// The half read from and the half written to.
    pub fn split(self) -> (TlsReader, TlsWriter) {
        (TlsReader(self.0.clone()), TlsWriter(self.0))
    }
}

/// The half of a [`TlsSocket`] that reads.
pub struct TlsReader(Arc<Shared>);

/// The half of a [`TlsSocket`] that writes.
pub struct TlsWriter(Arc<Shared>);

struct Shared {
    socket: TcpStream,
    session: Mutex<Session>,
}

impl Shared {
    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the queued ciphertext, freeing its buffer once it is all gone.
    fn poll_send(&self, session: &mut Session, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !session.outgoing.is_empty() {
            ready!(self.socket.poll_write_ready(cx))?;
            match self.socket.try_write(&session.outgoing) {
                Ok(n) => drop(session.outgoing.drain(..n)),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Poll::Ready(Err(err)),
            }
        }
        session.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }
}

/// rustls's state and the bytes waiting on either side of it.
struct Session {
    conn: UnbufferedServerConnection,
    /// Received bytes not yet processed: the start of a record whose end has
    /// not arrived, or during the handshake, records of a message not yet whole.
    incoming: Vec<u8>,
    /// Decrypted bytes not yet read.
    plaintext: Vec<u8>,
    /// Ciphertext not yet written.
    outgoing: Vec<u8>,
    /// The client said goodbye (TLS's close_notify).
    closed: bool,
    /// The server's goodbye is queued.
    said_goodbye: bool,
    /// rustls refused what the client sent: it is not asked anything again.
    failed: bool,
}

/// What one read from the socket brought.
enum Read {
    /// Bytes, handed to rustls.
    Bytes,
    /// The end of the stream.
    End,
}

/// Why a read from the socket brought nothing to use.
enum Refused {
    /// The socket's own error (`WouldBlock` when there was nothing to read).
    Socket(io::Error),
    /// rustls refused what was read.
    Tls(io::Error),
}

impl Session {
    /// Reads what the socket has onto the stack and hands it to rustls. Not
    /// `async`: the buffer must never be part of a future that waits, where
    /// it would stay for as long as the connection lasts.
    fn read_from(&mut self, socket: &TcpStream) -> Result<Read, Refused> {
        let mut fresh = [0; READ_CHUNK];
        match socket.try_read(&mut fresh) {
            Ok(0) => Ok(Read::End),
            Ok(n) => match self.drive(&mut fresh[..n], Then::Wait) {
                Ok(()) => Ok(Read::Bytes),
                Err(err) => Err(Refused::Tls(err)),
            },
            Err(err) => Err(Refused::Socket(err)),
        }
    }

    fn new(config: Arc<ServerConfig>) -> io::Result<Session> {
        Ok(Session {
            conn: UnbufferedServerConnection::new(config).map_err(invalid)?,
            incoming: Vec::new(),
            plaintext: Vec::new(),
            outgoing: Vec::new(),
            closed: false,
            said_goodbye: false,
            failed: false,
        })
    }

    /// Hands rustls the bytes just read (none, for a write), after any kept
    /// from before, and does `then` once application data may be written; keeps
    /// whatever rustls cannot use yet. rustls remembers where it is in the kept
    /// bytes, so every call, the writer's too, must hand them over again.
    fn drive(&mut self, fresh: &mut [u8], then: Then<'_>) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "TLS session failed",
            ));
        }
        let result = if self.incoming.is_empty() {
            let mut done = 0;
            let result = self.advance(fresh, &mut done, then);
            self.incoming.extend_from_slice(&fresh[done..]);
            result
        } else {
            let mut incoming = std::mem::take(&mut self.incoming);
            incoming.extend_from_slice(fresh);
            let mut done = 0;
            let result = self.advance(&mut incoming, &mut done, then);
            incoming.drain(..done);
            if !incoming.is_empty() {
                self.incoming = incoming;
            }
            result
        };
        if let Err(err) = result {
            self.failed = true;
            self.incoming = Vec::new();
            return Err(err);
        }
        if self.closed {
            // Nothing after the client's goodbye is read.
            self.incoming = Vec::new();
        }
        let limit = match self.conn.is_handshaking() {
            true => MAX_HANDSHAKE,
            false => MAX_RECORD,
        };
        if self.incoming.len() > limit {
            self.failed = true;
            return Err(invalid("TLS message too long"));
        }
        Ok(())
    }

    /// Lets rustls process the records in `buf` as far as they go, queueing what
    /// it has to send, then does `then` once application data may be written;
    /// `done` counts the bytes of `buf` rustls is finished with.
    fn advance(&mut self, buf: &mut [u8], done: &mut usize, then: Then<'_>) -> io::Result<()> {
        let mut then = Some(then);
        loop {
            let UnbufferedStatus { mut discard, state } =
                self.conn.process_tls_records(&mut buf[*done..]);
            let state = match state {
                Ok(state) => state,
                Err(err) => {
                    *done += discard;
                    self.queue_alert(&mut buf[*done..]);
                    return Err(invalid(err));
                }
            };
            let finished = match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let AppDataRecord {
                            discard: more,
                            payload,
                            ..
                        } = match record {
                            Ok(record) => record,
                            Err(err) => return Err(invalid(err)),
                        };
                        discard += more;
                        self.plaintext.extend_from_slice(payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(&mut self.outgoing, |out| {
                        encode.encode(out).map_err(|err| match err {
                            EncodeError::InsufficientSize(size) => Some(size.required_size),
                            _ => None,
                        })
                    })?;
                    false
                }
                // Queued in `outgoing`, ahead of anything written after it.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    false
                }
                ConnectionState::WriteTraffic(mut traffic) => {
                    let written = match then.take() {
                        Some(Then::Encrypt(data)) => append(&mut self.outgoing, |out| {
                            traffic.encrypt(data, out).map_err(too_small)
                        }),
                        Some(Then::Goodbye) => append(&mut self.outgoing, |out| {
                            traffic.queue_close_notify(out).map_err(too_small)
                        }),
                        Some(Then::Wait) | None => Ok(()),
                    };
                    written?;
                    true
                }
                // Said once; after it, writing may still go on.
                ConnectionState::PeerClosed => {
                    self.closed = true;
                    matches!(then, Some(Then::Wait) | None)
                }
                ConnectionState::Closed => {
                    self.closed = true;
                    if let Some(Then::Encrypt(_)) = then {
                        return Err(io::ErrorKind::BrokenPipe.into());
                    }
                    true
                }
                // More bytes are needed: the handshake is not done.
                ConnectionState::BlockedHandshake => {
                    if let Some(Then::Encrypt(_)) = then {
                        return Err(invalid("TLS handshake not finished"));
                    }
                    true
                }
                // Early data, which the configuration never accepts.
                _ => return Err(invalid("unexpected TLS state")),
            };
            *done += discard;
            if finished {
                return Ok(());
            }
        }
    }

    /// After an error rustls has queued an alert saying why; it hands it over
    /// before it looks at any input, and it goes out with what is queued.
    fn queue_alert(&mut self, buf: &mut [u8]) {
        let UnbufferedStatus { state, .. } = self.conn.process_tls_records(buf);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
            let _ = append(&mut self.outgoing, |out| {
                encode.encode(out).map_err(|err| match err {
                    EncodeError::InsufficientSize(size) => Some(size.required_size),
                    _ => None,
                })
            });
        }
    }
}

/// What [`Session::advance`] does once rustls lets the server write.
enum Then<'a> {
    /// Nothing: only the records read are to be processed.
    Wait,
    /// Encrypt these bytes.
    Encrypt(&'a [u8]),
    /// Queue TLS's goodbye (close_notify).
    Goodbye,
}

fn too_small(err: EncryptError) -> Option<usize> {
    match err {
        EncryptError::InsufficientSize(size) => Some(size.required_size),
        _ => None,
    }
}

/// Appends what `write` produces to `out`, growing it to the size rustls asks
/// for (`Err(Some(size))`).
fn append(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>,
) -> io::Result<()> {
    let start = out.len();
    let written = match write(&mut []) {
        Ok(written) => written,
        Err(Some(required)) => {
            out.resize(start + required, 0);
            write(&mut out[start..]).map_err(|_| invalid("TLS record would not fit"))?
        }
        Err(None) => return Err(invalid("TLS record could not be written")),
    };
    out.truncate(start + written);
    Ok(())
}

fn invalid(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, err)
}

impl AsyncRead for TlsReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &*self.0;
        loop {
            {
                let mut session = shared.session();
                if !session.plaintext.is_empty() {
                    let n = session.plaintext.len().min(buf.remaining());
                    buf.put_slice(&session.plaintext[..n]);
                    session.plaintext.drain(..n);
                    if session.plaintext.is_empty() {
                        session.plaintext = Vec::new();
                    }
                    return Poll::Ready(Ok(()));
                }
                if session.closed {
                    return Poll::Ready(Ok(()));
                }
            }
            ready!(shared.socket.poll_read_ready(cx))?;
            match shared.session().read_from(&shared.socket) {
                Ok(Read::Bytes) => {}
                // Most clients close the socket without TLS's goodbye.
                Ok(Read::End) => return Poll::Ready(Ok(())),
                Err(Refused::Socket(err)) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(Refused::Socket(err) | Refused::Tls(err)) => return Poll::Ready(Err(err)),
            }
        }
    }
}

impl AsyncWrite for TlsWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let shared = &*self.0;
        let mut session = shared.session();
        // What was queued before goes first; until it has, nothing more is taken.
        ready!(shared.poll_send(&mut session, cx))?;
        let n = data.len().min(WRITE_CHUNK);
        session.drive(&mut [], Then::Encrypt(&data[..n]))?;
        // Taken: if the socket is full now, the next write or flush finishes it.
        if let Poll::Ready(Err(err)) = shared.poll_send(&mut session, cx) {
            return Poll::Ready(Err(err));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &*self.0;
        let mut session = shared.session();
        shared.poll_send(&mut session, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let shared = &*self.0;
        let mut session = shared.session();
        if !session.said_goodbye && !session.failed {
            session.said_goodbye = true;
            // A session rustls gave up on has no goodbye to say; what it has
            // queued (an alert) still goes.
            let _ = session.drive(&mut [], Then::Goodbye);
        }
        ready!(shared.poll_send(&mut session, cx))?;
        socket2::SockRef::from(&shared.socket).shutdown(std::net::Shutdown::Write)?;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::{ClientConfig, ClientConnection, SupportedProtocolVersion};
    use std::io::{Read, Write};

    /// A server's session and a rustls client, their handshake done in memory.
    fn pair(version: &'static SupportedProtocolVersion) -> (Session, ClientConnection) {
        let (server, client) = configs(version);
        let mut client = ClientConnection::new(client, "chat.lab".try_into().unwrap()).unwrap();
        let session = shake_hands(Session::new(server).unwrap(), &mut client);
        (session, client)
    }

    fn shake_hands(mut session: Session, client: &mut ClientConnection) -> Session {
        while session.conn.is_handshaking() || client.is_handshaking() {
            session.drive(&mut from_client(client), Then::Wait).unwrap();
            to_client(&mut session, client);
        }
        session
    }

    fn configs(
        version: &'static SupportedProtocolVersion,
    ) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let made = crate::tls::self_signed(&["chat.lab".into()]).unwrap();
        let cert = CertificateDer::from_pem_slice(made.cert_pem.as_bytes()).unwrap();
        let key = PrivateKeyDer::from_pem_slice(made.key_pem.as_bytes()).unwrap();
        let server = ServerConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn from_client(client: &mut ClientConnection) -> Vec<u8> {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        wire
    }

    /// Hands the client what the server queued; returns the plaintext it reads.
    fn to_client(session: &mut Session, client: &mut ClientConnection) -> Vec<u8> {
        let wire = std::mem::take(&mut session.outgoing);
        let mut wire = &wire[..];
        while !wire.is_empty() {
            client.read_tls(&mut wire).unwrap();
            client.process_new_packets().unwrap();
        }
        let mut read = Vec::new();
        match client.reader().read_to_end(&mut read) {
            Ok(_) => {}
            Err(err) => assert_eq!(err.kind(), io::ErrorKind::WouldBlock),
        }
        read
    }

    fn holds_nothing(session: &Session) -> bool {
        session.incoming.capacity() == 0
            && session.plaintext.capacity() == 0
            && session.outgoing.capacity() == 0
    }

    #[test]
    fn records_fed_a_byte_at_a_time_are_read_whole_and_nothing_is_held_after() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (mut session, mut client) = pair(version);
            let long = "x".repeat(40_000);
            write!(client.writer(), "sam\n{long}\n").unwrap();
            let wire = from_client(&mut client);
            for byte in &wire {
                session.drive(&mut [*byte], Then::Wait).unwrap();
            }
            assert_eq!(session.plaintext, format!("sam\n{long}\n").as_bytes());
            assert!(session.incoming.is_empty());
            session.plaintext = Vec::new();
            to_client(&mut session, &mut client);
            assert!(holds_nothing(&session), "{version:?}");
        }
    }

    #[test]
    fn what_the_server_encrypts_the_client_reads_and_a_goodbye_is_seen() {
        let (mut session, mut client) = pair(&rustls::version::TLS13);
        session
            .drive(&mut [], Then::Encrypt(b"Welcome sam!\n"))
            .unwrap();
        assert_eq!(to_client(&mut session, &mut client), b"Welcome sam!\n");
        client.send_close_notify();
        session
            .drive(&mut from_client(&mut client), Then::Wait)
            .unwrap();
        assert!(session.closed);
        // Writing after the client's goodbye still reaches it (TLS's half close).
        session.drive(&mut [], Then::Encrypt(b"bye\n")).unwrap();
        session.drive(&mut [], Then::Goodbye).unwrap();
        assert_eq!(to_client(&mut session, &mut client), b"bye\n");
    }

    /// What rustls queues while reading is not bounded here: writes wait for
    /// the socket, and rustls keeps one answer to key updates however many are
    /// asked for. This holds it to that.
    #[test]
    fn a_client_that_asks_for_key_updates_and_never_reads_is_owed_one_answer() {
        let (mut session, mut client) = pair(&rustls::version::TLS13);
        for _ in 0..5_000 {
            client.refresh_traffic_keys().unwrap();
            // A byte of chat between requests: rustls refuses many in a row.
            client.writer().write_all(b"x").unwrap();
            session
                .drive(&mut from_client(&mut client), Then::Wait)
                .unwrap();
        }
        assert_eq!(session.plaintext.len(), 5_000);
        assert!(
            session.outgoing.len() < 100,
            "{} bytes owed",
            session.outgoing.len()
        );
        session.drive(&mut [], Then::Encrypt(b"hi\n")).unwrap();
        assert_eq!(to_client(&mut session, &mut client), b"hi\n");
    }

    #[test]
    fn a_handshake_that_never_ends_is_refused_before_it_holds_much() {
        let mut hostile = Session::new(configs(&rustls::version::TLS13).0).unwrap();
        // Handshake records whose message says it is 16 MB long.
        let mut record = vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0xff, 0xff, 0xff];
        record.resize(5 + 0x4000, 0);
        let refused = (0..10).find_map(|_| hostile.drive(&mut record.clone(), Then::Wait).err());
        assert!(refused.is_some());
        assert!(hostile.incoming.len() <= MAX_HANDSHAKE);
    }

    /// The client's side of a TLS 1.3 pair, as keys to write records by hand.
    struct Forger {
        key: ring::aead::LessSafeKey,
        iv: [u8; 12],
        sequence: u64,
    }

    impl Forger {
        fn pair() -> (Session, Forger) {
            let (server, client) = configs(&rustls::version::TLS13);
            let mut client = (*client).clone();
            client.enable_secret_extraction = true;
            let mut client =
                ClientConnection::new(Arc::new(client), "chat.lab".try_into().unwrap()).unwrap();
            let session = shake_hands(Session::new(server).unwrap(), &mut client);
            let (sequence, secrets) = client.dangerous_extract_secrets().unwrap().tx;
            let (algorithm, key, iv) = match secrets {
                rustls::ConnectionTrafficSecrets::Aes256Gcm { key, iv } => {
                    (&ring::aead::AES_256_GCM, key, iv)
                }
                rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv } => {
                    (&ring::aead::AES_128_GCM, key, iv)
                }
                _ => panic!("a suite this test cannot write"),
            };
            let key = ring::aead::UnboundKey::new(algorithm, key.as_ref()).unwrap();
            let forger = Forger {
                key: ring::aead::LessSafeKey::new(key),
                iv: iv.as_ref().try_into().unwrap(),
                sequence,
            };
            (session, forger)
        }

        /// One record holding `inner` (its content, then its type's byte).
        fn record(&mut self, inner: &[u8]) -> Vec<u8> {
            let mut nonce = self.iv;
            for (n, byte) in self.sequence.to_be_bytes().iter().enumerate() {
                nonce[4 + n] ^= byte;
            }
            self.sequence += 1;
            let length = (inner.len() + 16) as u16;
            let header = [0x17, 0x03, 0x03, (length >> 8) as u8, length as u8];
            let mut body = inner.to_vec();
            self.key
                .seal_in_place_append_tag(
                    ring::aead::Nonce::assume_unique_for_key(nonce),
                    ring::aead::Aad::from(header),
                    &mut body,
                )
                .unwrap();
            [&header[..], &body].concat()
        }
    }

    /// The start of a key update (its header, not its one byte of body), as
    /// the handshake record type.
    const HALF_A_KEY_UPDATE: &[u8] = &[0x18, 0x00, 0x00, 0x01, 0x16];

    #[test]
    fn a_write_while_half_a_handshake_message_is_kept_goes_out_and_reading_goes_on() {
        let (mut session, mut forger) = Forger::pair();
        session
            .drive(&mut forger.record(HALF_A_KEY_UPDATE), Then::Wait)
            .unwrap();
        session.drive(&mut [], Then::Encrypt(b"hi\n")).unwrap();
        assert!(!session.outgoing.is_empty());
        // The key update's last byte (not requesting one back), then a line.
        session
            .drive(&mut forger.record(&[0x00, 0x16]), Then::Wait)
            .unwrap();
        // The client's keys changed with its key update; this test's do not,
        // so a line after it is refused: what matters is no panic above.
        session
            .drive(&mut forger.record(b"sam\n\x17"), Then::Wait)
            .unwrap_err();
    }

    #[test]
    fn after_a_broken_record_the_session_is_not_asked_again_and_closing_still_works() {
        let (mut session, mut forger) = Forger::pair();
        session
            .drive(&mut forger.record(HALF_A_KEY_UPDATE), Then::Wait)
            .unwrap();
        let mut broken = forger.record(&[0x00, 0x16]);
        *broken.last_mut().unwrap() ^= 1;
        session.drive(&mut broken, Then::Wait).unwrap_err();
        let write = session.drive(&mut [], Then::Encrypt(b"hi\n")).unwrap_err();
        assert_eq!(write.kind(), io::ErrorKind::BrokenPipe);
        session.drive(&mut [], Then::Goodbye).unwrap_err();
        // The alert saying why is queued for the client.
        assert_eq!(session.outgoing.first(), Some(&0x17), "an encrypted alert");
    }

    #[test]
    fn a_client_speaking_something_else_is_told_why_in_an_alert() {
        let mut session = Session::new(configs(&rustls::version::TLS13).0).unwrap();
        let refused = session.drive(&mut b"GET / HTTP/1.1\r\n\r\n".to_vec(), Then::Wait);
        assert!(refused.is_err());
        assert_eq!(
            session.outgoing.first(),
            Some(&0x15),
            "a plaintext alert record"
        );
    }
}
