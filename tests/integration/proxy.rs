//! The PROXY protocol behind a load balancer (SPEC section 9, "Real addresses
//! behind the balancer"): each test sends the header HAProxy's `send-proxy-v2`
//! sends, from a loopback address playing the balancer, and shows that the limits
//! per address and the logs see the address it names, on every listener, and that
//! nobody else's header is believed.

use std::net::SocketAddr;
use std::sync::Arc;

use classchat::config::{Config, TrustedProxy};
use ppp::v2;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;

use crate::harness::{
    enable_irc, enable_web, spawn_listening, stop_for_stderr, TestClient, TestServer, SERVER_BIN,
    WAIT,
};

/// The balancer's address in these tests (the server listens on 127.0.0.1).
const BALANCER: [u8; 4] = [127, 0, 0, 1];
/// Another machine, not a balancer.
const STRANGER: [u8; 4] = [127, 0, 0, 3];

fn trust(config: &mut Config, proxies: &[&str]) {
    config.server.proxy_protocol = true;
    config.server.trusted_proxies = proxies
        .iter()
        .map(|p| TrustedProxy::try_from(p.to_string()).unwrap())
        .collect();
}

/// A v2 header saying the connection comes from `client` to `server`.
fn header(client: &str, server: SocketAddr) -> Vec<u8> {
    let client: SocketAddr = client.parse().unwrap();
    v2::Builder::with_addresses(
        v2::Version::Two | v2::Command::Proxy,
        v2::Protocol::Stream,
        (client, server),
    )
    .build()
    .unwrap()
}

/// A connection from `from` to `server` that starts with a header naming `client`.
async fn proxied(server: SocketAddr, from: [u8; 4], client: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((from, 0))).unwrap();
    let mut stream = socket.connect(server).await.expect("connects");
    // A server that refuses the connection may have closed it already; what it
    // said, or did not, is what the tests look at.
    let _ = stream.write_all(&header(client, server)).await;
    stream
}

/// Everything the server sends until it closes the connection or goes quiet for
/// a moment after `enough` appears.
async fn read_until<S: AsyncRead + Unpin>(stream: S, enough: &str) -> String {
    let mut reader = BufReader::new(stream);
    let mut seen = String::new();
    let _ = tokio::time::timeout(WAIT, async {
        let mut line = String::new();
        while reader.read_line(&mut line).await.unwrap_or(0) > 0 {
            seen.push_str(&line);
            line.clear();
            if seen.contains(enough) {
                break;
            }
        }
    })
    .await;
    seen
}

const TOO_MANY: &str = "Too many connections from your address";

/// What the line port says first to a connection from the balancer for `client`.
async fn line_answer(server: SocketAddr, client: &str) -> String {
    let stream = proxied(server, BALANCER, client).await;
    read_until(stream, "Please enter a username").await
}

/// What the IRC port says to a registration from the balancer for `client`.
async fn irc_answer(server: SocketAddr, client: &str, nick: &str) -> String {
    let mut stream = proxied(server, BALANCER, client).await;
    let registration = format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n");
    stream.write_all(registration.as_bytes()).await.unwrap();
    read_until(stream, " 001 ").await
}

/// The status line of `GET /` through the balancer for `client`.
async fn web_answer(server: SocketAddr, client: &str) -> String {
    let mut stream = proxied(server, BALANCER, client).await;
    let request = format!("GET / HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    read_until(stream, "\r\n").await
}

/// What the line port over TLS says first through the balancer for `client`:
/// the header comes before the TLS handshake, as HAProxy sends it in TCP mode.
async fn tls_line_answer(server: SocketAddr, client: &str) -> String {
    let stream = proxied(server, BALANCER, client).await;
    let config = classchat::tls::client::AcceptAnything::client_config();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    match tokio::time::timeout(WAIT, connector.connect(name, stream)).await {
        Ok(Ok(tls)) => read_until(tls, "Please enter a username").await,
        other => format!("no TLS session: {other:?}"),
    }
}

#[tokio::test]
async fn every_listener_counts_the_address_the_balancer_names() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&key_file, key.signing_key.serialize_pem()).unwrap();
    let mut config = crate::harness::test_config(dir.path());
    enable_irc(&mut config);
    config.irc.port = 0;
    enable_web(&mut config);
    config.tls.cert = Some(cert);
    config.tls.key = Some(key_file);
    config.tls.line_port = 0;
    config.irc.tls_port = 0;
    config.web.tls_port = 0;
    // One connection a minute per address: every connection below comes from the
    // balancer, so each listener's second one is refused only if the limit counts
    // the student's address, and the next student's is let in only then.
    config.limits.connects_per_minute_per_ip = 1;
    trust(&mut config, &["127.0.0.0/30"]);
    let server = TestServer::start_in(dir, config).await;

    let first = line_answer(server.addr, "10.1.0.1:40000").await;
    assert!(first.contains("Please enter a username"), "{first}");
    let again = line_answer(server.addr, "10.1.0.1:40001").await;
    assert!(again.contains(TOO_MANY), "{again}");
    let other = line_answer(server.addr, "10.1.0.2:40000").await;
    assert!(other.contains("Please enter a username"), "{other}");

    let irc = server.irc_addr.unwrap();
    let first = irc_answer(irc, "10.2.0.1:40000", "amy").await;
    assert!(first.contains(" 001 amy "), "{first}");
    let again = irc_answer(irc, "10.2.0.1:40001", "bob").await;
    assert!(
        again.contains(" ERROR ") && again.contains(TOO_MANY),
        "{again}"
    );
    let other = irc_answer(irc, "10.2.0.2:40000", "cat").await;
    assert!(other.contains(" 001 cat "), "{other}");

    let web = server.web.unwrap();
    let first = web_answer(web, "10.3.0.1:40000").await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let again = web_answer(web, "10.3.0.1:40001").await;
    assert!(again.starts_with("HTTP/1.1 429"), "{again}");
    let other = web_answer(web, "10.3.0.2:40000").await;
    assert!(other.starts_with("HTTP/1.1 200"), "{other}");

    let tls = server.tls_addr.unwrap();
    let first = tls_line_answer(tls, "10.4.0.1:40000").await;
    assert!(first.contains("Please enter a username"), "{first}");
    let again = tls_line_answer(tls, "10.4.0.1:40001").await;
    assert!(again.contains(TOO_MANY), "{again}");
    server.stop().await;
}

#[tokio::test]
async fn a_header_from_anyone_but_a_trusted_proxy_is_refused() {
    let server = TestServer::start_with(|c| {
        enable_web(c);
        trust(c, &["127.0.0.1"]);
    })
    .await;
    // A student's machine claiming to be the balancer gets nothing at all.
    for addr in [server.addr, server.web.unwrap()] {
        let mut stranger = proxied(addr, STRANGER, "10.1.0.1:40000").await;
        let _ = stranger.write_all(b"amy\n").await;
        let mut got = Vec::new();
        let read = tokio::time::timeout(WAIT, stranger.read_to_end(&mut got)).await;
        assert!(matches!(read, Ok(Ok(_)) | Ok(Err(_))), "closed in time");
        assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    }
    // The balancer without a header is refused too: every listener expects one.
    let mut bare = TcpStream::connect(server.addr).await.unwrap();
    bare.write_all(b"amy\nhello\n").await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(WAIT, bare.read_to_end(&mut got)).await;
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // The balancer with one is served.
    let mut amy = TestClient::over(proxied(server.addr, BALANCER, "10.1.0.1:40000").await);
    amy.send("amy").await;
    amy.expect_prefix("* Welcome, amy!").await;
    server.stop().await;
}

#[tokio::test]
async fn the_log_names_the_students_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.toml");
    let text = format!(
        "[server]\nport = 0\nproxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n\
         [storage]\ndatabase = {:?}\n[log]\ndir = {:?}\n",
        dir.path().join("chat.db"),
        dir.path().join("logs"),
    );
    std::fs::write(&config, text).unwrap();
    let (child, addr) = spawn_listening(
        std::process::Command::new(SERVER_BIN)
            .arg("--config")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stderr(std::process::Stdio::piped()),
    );
    let mut amy = TestClient::over(proxied(addr, BALANCER, "10.7.7.7:40000").await);
    amy.send("amy").await;
    amy.expect_prefix("* Welcome, amy!").await;
    amy.send("/quit").await;
    amy.expect_closed().await;
    let stderr = tokio::task::spawn_blocking(move || stop_for_stderr(child))
        .await
        .unwrap();
    let logged_in = stderr
        .lines()
        .find(|line| line.contains("amy logged in"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(logged_in.contains("10.7.7.7:40000"), "{logged_in}");
}
