//! The web listener under the chat ports' limits (SPEC section 10): connections
//! per address, headers within 10 s, and idle sockets that never keep a student
//! at another address out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::{enable_web, TestClient, TestServer, WAIT};

/// A TCP connection from loopback address `from`, as another machine would.
async fn connect_from(addr: SocketAddr, from: [u8; 4]) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// `GET path` over `stream`, read to the end; returns the status line.
async fn get(mut stream: TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("a response in time")
        .unwrap();
    let text = String::from_utf8_lossy(&raw);
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_thousand_idle_http_connections_leave_other_addresses_alone() {
    // The default limits: 120 new connections a minute per address.
    idle_connections_from_one_address(|_| {}).await;
}

#[tokio::test]
async fn a_thousand_idle_http_connections_meet_the_limit_per_address() {
    idle_connections_from_one_address(|c| {
        c.limits.max_per_ip = 64;
        c.limits.connects_per_minute_per_ip = 0;
    })
    .await;
}

/// 1,100 idle connections to the web port from 127.0.0.1 under `limits`; a student
/// at 127.0.0.2 logs in on the chat port and loads the page meanwhile.
async fn idle_connections_from_one_address(limits: impl FnOnce(&mut classchat::config::Config)) {
    let server = TestServer::start_with(|c| {
        enable_web(c);
        limits(c);
    })
    .await;
    let web = server.web.unwrap();
    let mut idle = Vec::new();
    for _ in 0..1100 {
        match connect_from(web, [127, 0, 0, 1]).await {
            Ok(stream) => idle.push(stream),
            Err(err) => panic!("cannot open idle connection {}: {err}", idle.len()),
        }
    }
    // A student at another address logs in on the chat port and loads the page.
    let started = Instant::now();
    let mut student = TestClient::connect_from(server.addr, [127, 0, 0, 2]).await;
    student.send("ada").await;
    student.expect_prefix("* Welcome, ada!").await;
    let page = connect_from(web, [127, 0, 0, 2]).await.unwrap();
    assert_eq!(get(page, "/").await, "HTTP/1.1 200 OK");
    assert!(started.elapsed() < Duration::from_secs(5));
    // The address with the idle sockets is refused at once, with the reason.
    let refused = connect_from(web, [127, 0, 0, 1]).await.unwrap();
    let status = get(refused, "/").await;
    assert_eq!(status, "HTTP/1.1 429 Too Many Requests");
    drop(idle);
    server.stop().await;
}

#[tokio::test]
async fn headers_that_do_not_arrive_within_ten_seconds_close_the_connection() {
    let server = TestServer::start_with(enable_web).await;
    let mut stream = TcpStream::connect(server.web.unwrap()).await.unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest)).await;
    let waited = started.elapsed();
    assert!(read.is_ok(), "still open after {waited:?}");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(13),
        "closed after {waited:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_websocket_takes_over_its_http_connections_place() {
    let server = TestServer::start_with(|c| {
        enable_web(c);
        c.limits.max_per_ip = 2;
    })
    .await;
    let web = server.web.unwrap();
    let origin = format!("http://{web}");
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{web}/ws"
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", origin.parse().unwrap());
    let (_ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // The WebSocket holds one place, the line client the other.
    let _line = server.login("ada").await;
    let mut third = server.connect().await;
    assert_eq!(
        third.expect_closed().await,
        vec!["! Too many connections from your address (max 2)."]
    );
    server.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let server = TestServer::start_with(enable_web).await;
    let mut stream = TcpStream::connect(server.web.unwrap()).await.unwrap();
    stream
        .write_all(b"GET /favicon.ico HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(WAIT, stream.read(&mut byte)).await;
        assert_eq!(read.expect("an answer in time").unwrap(), 1, "{head:?}");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 204 "), "{head:?}");
    // Answered (204 has no body), kept alive, and now idle.
    let answered = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(70), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "still open after {:?}", answered.elapsed());
    assert!(
        answered.elapsed() <= Duration::from_secs(61),
        "{:?}",
        answered.elapsed()
    );
    server.stop().await;
}
