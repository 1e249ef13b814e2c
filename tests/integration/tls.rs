//! TLS on every port (SPEC section 10): each test makes its own CA (or a
//! self-signed pair) with rcgen, starts a real server with it, and connects with
//! real clients: tokio-rustls, `openssl s_client`, `chat-client` and irssi.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use classchat::config::Config;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::harness::{body_of, enable_irc, enable_web, skip, TestServer, WAIT};
use crate::irc::{program, Tmux};

/// A certificate authority of the test's own.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and key, as PEM, and its fingerprint.
struct Pair {
    cert: String,
    key: String,
    fingerprint: String,
}

impl TestCa {
    fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "classchat test CA");
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `localhost` and `127.0.0.1`, signed by this CA.
    fn issue(&self) -> Pair {
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            fingerprint: classchat::tls::fingerprint(cert.der()),
        }
    }

    /// A certificate for `names`, signed by this CA.
    fn issue_for(&self, names: &[&str]) -> Pair {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            fingerprint: classchat::tls::fingerprint(cert.der()),
        }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let path = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(path.path(), &self.pem).unwrap();
        classchat::tls::client::Trust::ca_file(path.path()).unwrap()
    }
}

/// Where a server's certificate and key live.
struct Files {
    cert: PathBuf,
    key: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }

    fn write(&self, pair: &Pair) {
        std::fs::write(&self.cert, &pair.cert).unwrap();
        std::fs::write(&self.key, &pair.key).unwrap();
    }
}

/// Turns on TLS with `files` on free ports.
fn enable_tls(config: &mut Config, files: &Files) {
    config.tls.cert = Some(files.cert.clone());
    config.tls.key = Some(files.key.clone());
    config.tls.line_port = 0;
    config.irc.tls_port = 0;
    config.web.tls_port = 0;
}

/// A server with `pair` on every TLS port (and IRC and the web), after `tweak`.
async fn tls_server(pair: &Pair, tweak: impl FnOnce(&mut Config)) -> (TestServer, Files) {
    let dir = tempfile::tempdir().unwrap();
    let files = Files::in_dir(dir.path());
    files.write(pair);
    let mut config = crate::harness::test_config(dir.path());
    enable_irc(&mut config);
    config.irc.port = 0;
    enable_web(&mut config);
    enable_tls(&mut config, &files);
    tweak(&mut config);
    (TestServer::start_in(dir, config).await, files)
}

/// A TLS connection verified against `roots` for the name `localhost`.
async fn tls_connect(addr: SocketAddr, roots: rustls::RootCertStore) -> TlsStream<TcpStream> {
    let config = rustls::ClientConfig::builder_with_provider(classchat::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("the certificate verifies")
}

/// The fingerprint of the certificate the server at `addr` presents now.
async fn served_fingerprint(addr: SocketAddr) -> String {
    let config = classchat::tls::client::AcceptAnything::client_config();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (_, session) = stream.get_ref();
    let certs = session.peer_certificates().unwrap();
    classchat::tls::fingerprint(certs[0].as_ref())
}

/// Waits until the server at `addr` presents the certificate `fingerprint`.
async fn wait_for_certificate(addr: SocketAddr, fingerprint: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while served_fingerprint(addr).await != fingerprint {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        // The server looks at the files every 2 s; there is nothing to wait on.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A line-protocol client over TLS.
struct TlsClient {
    reader: BufReader<tokio::io::ReadHalf<TlsStream<TcpStream>>>,
    writer: tokio::io::WriteHalf<TlsStream<TcpStream>>,
}

impl TlsClient {
    async fn login(addr: SocketAddr, roots: rustls::RootCertStore, name: &str) -> TlsClient {
        let (reader, writer) = tokio::io::split(tls_connect(addr, roots).await);
        let mut client = TlsClient {
            reader: BufReader::new(reader),
            writer,
        };
        client.send(name).await;
        client.expect_prefix(&format!("* Welcome, {name}!")).await;
        client
    }

    async fn send(&mut self, line: &str) {
        let line = format!("{line}\n");
        self.writer.write_all(line.as_bytes()).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// Reads lines until one's body starts with `prefix`.
    async fn expect_prefix(&mut self, prefix: &str) {
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .unwrap_or_else(|_| panic!("no {prefix:?} in time; got {seen:?}"))
                .unwrap();
            assert!(
                read > 0,
                "closed while waiting for {prefix:?}; got {seen:?}"
            );
            let body = body_of(line.trim_end()).to_owned();
            if body.starts_with(prefix) {
                return;
            }
            seen.push(body);
        }
    }
}

#[tokio::test]
async fn openssl_sees_tls_1_3_on_the_line_irc_and_web_ports() {
    if program("openssl").is_none() {
        skip("openssl is not installed");
        return;
    }
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |_| {}).await;
    let ca_file = server.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    for addr in [server.tls_addr, server.irc_tls_addr, server.web_tls_addr] {
        let addr = addr.unwrap();
        let ca_file = ca_file.clone();
        let output = tokio::task::spawn_blocking(move || {
            std::process::Command::new("openssl")
                .args(["s_client", "-connect", &addr.to_string(), "-tls1_3"])
                .args([
                    "-servername",
                    "localhost",
                    "-verify_return_error",
                    "-CAfile",
                ])
                .arg(&ca_file)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("TLSv1.3"), "{addr}: {stdout}");
        assert!(
            stdout.contains("Verify return code: 0 (ok)"),
            "{addr}: {stdout}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_tls_client_and_a_plain_one_chat_both_ways() {
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |_| {}).await;
    let mut ada = TlsClient::login(server.tls_addr.unwrap(), ca.roots(), "ada").await;
    let mut bob = server.login("bob").await;
    ada.expect_prefix("* bob has joined").await;
    ada.send("hello over TLS").await;
    bob.expect("ada: hello over TLS").await;
    bob.send("hello in the clear").await;
    ada.expect_prefix("bob: hello in the clear").await;
    server.stop().await;
}

/// Several lines in one TLS record, the record cut in two on the wire, then a
/// client that leaves without TLS's goodbye: every line is said, and the leave is
/// announced as a close.
#[tokio::test]
async fn lines_in_one_record_split_on_the_wire_are_all_said_and_a_bare_close_is_a_leave() {
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |_| {}).await;
    let mut bob = server.login("bob").await;
    let stream = tls_connect(server.tls_addr.unwrap(), ca.roots()).await;
    let (mut tcp, mut session) = stream.into_inner();
    tcp.set_nodelay(true).unwrap();
    std::io::Write::write_all(&mut session.writer(), b"cal\nfirst\nsecond\n").unwrap();
    let mut wire = Vec::new();
    while session.wants_write() {
        session.write_tls(&mut wire).unwrap();
    }
    let (front, back) = wire.split_at(wire.len() / 2);
    tcp.write_all(front).await.unwrap();
    tcp.flush().await.unwrap();
    tokio::task::yield_now().await;
    tcp.write_all(back).await.unwrap();
    bob.expect_prefix("* cal has joined").await;
    bob.expect("cal: first").await;
    bob.expect("cal: second").await;
    drop(tcp);
    bob.expect_prefix("* cal has left").await;
    server.stop().await;
}

#[tokio::test]
async fn a_replaced_certificate_is_served_to_the_next_connection_and_the_old_one_keeps_chatting() {
    let ca = TestCa::new();
    let first = ca.issue();
    let (server, files) = tls_server(&first, |_| {}).await;
    let tls = server.tls_addr.unwrap();
    assert_eq!(served_fingerprint(tls).await, first.fingerprint);
    let mut ada = TlsClient::login(tls, ca.roots(), "ada").await;
    let mut bob = server.login("bob").await;
    // A renewal, written as certbot does: one file, then the other.
    let second = ca.issue();
    files.write(&second);
    wait_for_certificate(tls, &second.fingerprint).await;
    ada.send("still here").await;
    bob.expect("ada: still here").await;
    bob.send("so am I").await;
    ada.expect_prefix("bob: so am I").await;
    let mut carl = TlsClient::login(tls, ca.roots(), "carl").await;
    carl.send("new certificate, same room").await;
    ada.expect_prefix("carl: new certificate, same room").await;
    // A broken pair is refused and the one in use kept.
    std::fs::write(&files.key, "not a key").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(served_fingerprint(tls).await, second.fingerprint);
    server.stop().await;
}

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// Runs `chat-client` with `args` and `stdin`, its config folder in `home`;
/// returns the exit code, stdout and stderr.
async fn chat_client(home: &Path, args: &[String], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(CLIENT)
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    let output = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await
    .expect("chat-client ends in time")
    .unwrap()
    .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A self-signed pair as `chat-server tls self-signed` makes it.
fn self_signed() -> Pair {
    let made = classchat::tls::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
    Pair {
        cert: made.cert_pem,
        key: made.key_pem,
        fingerprint: made.fingerprint,
    }
}

#[tokio::test]
async fn chat_client_pins_a_self_signed_certificate_and_refuses_a_changed_one() {
    let first = self_signed();
    let (server, files) = tls_server(&first, |_| {}).await;
    let tls = server.tls_addr.unwrap();
    let home = tempfile::tempdir().unwrap();
    let base = vec![
        "--port".to_owned(),
        tls.port().to_string(),
        "--name".to_owned(),
        "ada".to_owned(),
    ];
    // Never seen: refused, with the fingerprint and the flag to accept it.
    let mut plain_tls = base.clone();
    plain_tls.push("--tls".into());
    let (code, _, stderr) = chat_client(home.path(), &plain_tls, "/quit\n").await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&first.fingerprint), "{stderr}");
    assert!(
        stderr.contains(&format!("--tls-fingerprint {}", first.fingerprint)),
        "{stderr}"
    );
    // Pinned: in, and kept.
    let mut pinned = base.clone();
    pinned.extend(["--tls-fingerprint".into(), first.fingerprint.to_lowercase()]);
    let (code, stdout, stderr) = chat_client(home.path(), &pinned, "/quit\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("* Welcome, ada!"), "{stdout}");
    let known = std::fs::read_to_string(home.path().join("config/classchat/known_hosts")).unwrap();
    assert_eq!(known, format!("{tls} {}\n", first.fingerprint));
    // Known: in without the flag.
    let (code, stdout, stderr) = chat_client(home.path(), &plain_tls, "/quit\n").await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("* Welcome, ada!"), "{stdout}");
    // Changed: refused loudly.
    let second = self_signed();
    files.write(&second);
    wait_for_certificate(tls, &second.fingerprint).await;
    let (code, stdout, stderr) = chat_client(home.path(), &plain_tls, "/quit\n").await;
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(&format!("WARNING: the certificate of {tls} has changed")),
        "{stderr}"
    );
    assert!(stderr.contains(&second.fingerprint), "{stderr}");
    // A pin that does not match is refused too.
    let (code, _, stderr) = chat_client(home.path(), &pinned, "/quit\n").await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("not the one given with --tls-fingerprint"),
        "{stderr}"
    );
    server.stop().await;
}

/// A port nobody listens on (bound, read and closed).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One HTTP/1.1 request over `stream`; returns the response head and body.
async fn http<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    request: &str,
) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("a response in time");
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn tls_require_closes_the_plain_ports_and_the_web_redirects() {
    let ca = TestCa::new();
    let plain = free_port();
    let (server, _files) = tls_server(&ca.issue(), |c| {
        c.server.port = plain;
        c.tls.require = true;
    })
    .await;
    assert_eq!(server.irc_addr, None);
    assert_eq!(Some(server.addr), server.tls_addr);
    assert!(TcpStream::connect(("127.0.0.1", plain)).await.is_err());
    let mut ada = TlsClient::login(server.tls_addr.unwrap(), ca.roots(), "ada").await;
    ada.send("/who").await;
    ada.expect_prefix("= #lobby").await;
    let web = server.web.unwrap();
    let https = server.web_tls_addr.unwrap().port();
    let request = format!(
        "GET /instructor?since=2026-11-24 HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n",
        web.port()
    );
    let response = http(TcpStream::connect(web).await.unwrap(), &request).await;
    assert!(response.starts_with("HTTP/1.1 308 "), "{response}");
    let location = format!("location: https://localhost:{https}/instructor?since=2026-11-24\r\n");
    assert!(response.contains(&location), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn over_https_the_session_cookie_is_secure_and_hsts_is_sent() {
    let ca = TestCa::new();
    let hash = classchat::password::hash("correct horse").unwrap();
    let (server, _files) = tls_server(&ca.issue(), |c| {
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = hash;
    })
    .await;
    let https = server.web_tls_addr.unwrap();
    let host = format!("localhost:{}", https.port());
    let body = "name=prof&password=correct+horse";
    let request = format!(
        "POST /instructor/login HTTP/1.1\r\nHost: {host}\r\nOrigin: https://{host}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let response = http(tls_connect(https, ca.roots()).await, &request).await;
    assert!(response.starts_with("HTTP/1.1 303 "), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=31536000"),
        "{response}"
    );
    let cookie = lower
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .expect("a session cookie");
    assert!(cookie.contains("; secure"), "{cookie}");
    assert!(cookie.contains("httponly"), "{cookie}");
    // Plain HTTP gets neither.
    let web = server.web.unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {web}\r\nConnection: close\r\n\r\n");
    let response = http(TcpStream::connect(web).await.unwrap(), &request).await;
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    assert!(!response
        .to_ascii_lowercase()
        .contains("strict-transport-security"));
    server.stop().await;
}

/// irssi over TLS, verifying the server against the test CA, chats on the IRC
/// TLS port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_chats_over_tls_verified_against_the_ca() {
    if program("irssi").is_none() || program("tmux").is_none() {
        skip("irssi or tmux is not installed");
        return;
    }
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |_| {}).await;
    let port = server.irc_tls_addr.unwrap().port();
    let mut bob = server.login("bob").await;
    let home = server.dir.path().join("irssi");
    std::fs::create_dir_all(&home).unwrap();
    let ca_file = home.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    std::fs::write(
        home.join("config"),
        "settings = { core = { real_name = \"Ann\"; user_name = \"ann\"; nick = \"ann\"; }; };\n",
    )
    .unwrap();
    let tmux = Tmux {
        socket: format!("classchat-irssi-tls-{}", std::process::id()),
    };
    let command = format!("irssi --home={} -n ann", home.display());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "irc",
        "-x",
        "200",
        "-y",
        "50",
        &command,
    ]);
    tmux.wait_for("Irssi").await;
    tmux.keys(&format!(
        "/connect -tls -tls_verify -tls_cafile {} localhost {port}",
        ca_file.display()
    ));
    bob.expect("* ann has joined #lobby").await;
    tmux.until("the #lobby window", |tmux| {
        tmux.keys("/window goto #lobby");
        tmux.screen().contains("#lobby")
    })
    .await;
    bob.send("hello over the line port").await;
    tmux.wait_for("hello over the line port").await;
    tmux.keys("hi from irssi over TLS");
    bob.expect("ann: hi from irssi over TLS").await;
    tmux.keys("/quit bye");
    bob.expect("* ann has left #lobby (Quit: bye)").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_load_over_tls_loses_nothing() {
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |c| {
        c.limits.max_clients = 1000;
        c.limits.messages_per_sec = 0;
        c.limits.connects_per_minute_per_ip = 0;
        c.limits.max_pending_per_ip = 0;
    })
    .await;
    let line = server.tls_addr.unwrap();
    let result =
        crate::load::one_second_of_load("line", line, &["--tls", "--ready", "Welcome"]).await;
    assert_eq!(result["tls"], true);
    let irc = server.irc_tls_addr.unwrap();
    crate::load::one_second_of_load("irc", irc, &["--tls", "--channel", "#lobby"]).await;
    server.stop().await;
}

#[tokio::test]
async fn the_banner_names_every_tls_listener_and_the_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let pair = self_signed();
    let files = Files::in_dir(dir.path());
    files.write(&pair);
    let rest = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nline_port = 0\n\
         [irc]\nenabled = true\nport = 0\ntls_port = 0\n\
         [web]\nenabled = true\nport = 0\ntls_port = 0\n",
        files.cert, files.key
    );
    let (mut child, _) = crate::harness::spawn_logging(dir.path(), "", &rest);
    let mut lines = Vec::new();
    loop {
        let line = crate::harness::stdout_line(&mut child);
        assert!(!line.is_empty(), "the banner ended early: {lines:?}");
        let done = line.starts_with("certificate SHA-256 fingerprint: ");
        lines.push(line.trim_end().to_owned());
        if done {
            break;
        }
    }
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("tls listening on 127.0.0.1:"), "{lines:?}");
    assert!(has("irc tls listening on 127.0.0.1:"), "{lines:?}");
    assert!(has("web listening on https://127.0.0.1:"), "{lines:?}");
    assert_eq!(
        lines.last().unwrap(),
        &format!("certificate SHA-256 fingerprint: {}", pair.fingerprint)
    );
    crate::harness::stop_for_stderr(child);
    // A key that is not there stops the server before it listens, with the key named.
    let config = dir.path().join("missing.toml");
    let missing = dir.path().join("nowhere.pem");
    std::fs::write(
        &config,
        format!("[tls]\ncert = {:?}\nkey = {missing:?}\n", files.cert),
    )
    .unwrap();
    let output = std::process::Command::new(crate::harness::SERVER_BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`tls.key`"), "{stderr}");
    assert!(stderr.contains("nowhere.pem"), "{stderr}");
}

/// WeeChat with TLS (verification on, as it is by default) against the test CA,
/// on the IRC TLS port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weechat_chats_over_tls_verified_against_the_ca() {
    if program("weechat").is_none() || program("tmux").is_none() {
        skip("weechat or tmux is not installed");
        return;
    }
    let ca = TestCa::new();
    let (server, _files) = tls_server(&ca.issue(), |_| {}).await;
    let port = server.irc_tls_addr.unwrap().port();
    let mut bob = server.login("bob").await;
    let home = server.dir.path().join("weechat");
    std::fs::create_dir_all(&home).unwrap();
    let ca_file = home.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let tmux = Tmux {
        socket: format!("classchat-weechat-tls-{}", std::process::id()),
    };
    // WeeChat 4 named its `-ssl` option `-tls` (and made it the default).
    let version = std::process::Command::new("weechat")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let major: u32 = version.split('.').next().unwrap().trim().parse().unwrap();
    let tls = if major < 4 { "-ssl" } else { "-tls" };
    let commands = format!(
        "/set weechat.network.gnutls_ca_user {};\
         /server add class localhost/{port} {tls} -nicks=wee -username=wee;\
         /connect class",
        ca_file.display()
    );
    let command = format!("weechat -a -d {} -r '{commands}'", home.display());
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "irc",
        "-x",
        "200",
        "-y",
        "50",
        &command,
    ]);
    bob.expect("* wee has joined #lobby").await;
    tmux.until("the #lobby buffer", |tmux| {
        tmux.keys("/buffer #lobby");
        tmux.screen().contains("#lobby")
    })
    .await;
    bob.send("hello over the line port").await;
    tmux.wait_for("hello over the line port").await;
    tmux.keys("hi from weechat over TLS");
    bob.expect("wee: hi from weechat over TLS").await;
    tmux.keys("/quit bye");
    bob.expect_prefix("* wee has left #lobby").await;
    server.stop().await;
}

#[tokio::test]
async fn sighup_reads_the_certificate_again_and_never_stops_the_server() {
    // Without [tls]: nothing to read, and the server goes on.
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = crate::harness::spawn_logging(dir.path(), "", "");
    crate::harness::signal(&child, "-HUP");
    let mut ada = crate::harness::TestClient::connect(addr).await;
    ada.send("ada").await;
    ada.expect_prefix("* Welcome, ada!").await;
    crate::harness::stop_for_stderr(child);
    // With [tls]: the new pair is in use once the signal is handled.
    let dir = tempfile::tempdir().unwrap();
    let first = self_signed();
    let files = Files::in_dir(dir.path());
    files.write(&first);
    let rest = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\nline_port = 0\n",
        files.cert, files.key
    );
    let (mut child, _) = crate::harness::spawn_logging(dir.path(), "", &rest);
    let tls = loop {
        let line = crate::harness::stdout_line(&mut child);
        assert!(!line.is_empty(), "no TLS listener printed");
        if let Some(addr) = line.trim().strip_prefix("tls listening on ") {
            break addr.parse::<SocketAddr>().unwrap();
        }
    };
    assert_eq!(served_fingerprint(tls).await, first.fingerprint);
    let second = self_signed();
    files.write(&second);
    crate::harness::signal(&child, "-HUP");
    wait_for_certificate(tls, &second.fingerprint).await;
    let stderr = crate::harness::stop_for_stderr(child);
    assert!(stderr.contains("TLS certificate read again"), "{stderr}");
}

#[tokio::test]
async fn the_page_is_served_under_the_certificates_names() {
    let ca = TestCa::new();
    let pair = ca.issue_for(&["localhost", "chat.lab.example"]);
    let (server, _files) = tls_server(&pair, |_| {}).await;
    let https = server.web_tls_addr.unwrap();
    let get = |host: &str| {
        format!(
            "GET / HTTP/1.1\r\nHost: {host}:{}\r\nConnection: close\r\n\r\n",
            https.port()
        )
    };
    let named = http(
        tls_connect(https, ca.roots()).await,
        &get("chat.lab.example"),
    )
    .await;
    assert!(named.starts_with("HTTP/1.1 200 "), "{named}");
    let other = http(
        tls_connect(https, ca.roots()).await,
        &get("rebound.example"),
    )
    .await;
    assert!(other.starts_with("HTTP/1.1 421 "), "{other}");
    server.stop().await;
}
