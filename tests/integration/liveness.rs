//! Clients that stop answering are dropped within a minute (SPEC section 10, issue
//! 23): IRC clients get a `PING` after 30 s of silence and must answer within
//! another 30 s; WebSocket clients are pinged every 25 s. (The TCP keep-alive and
//! user timeout for a vanished network are set on every socket; a unit test in
//! `front::liveness` checks them, since loopback never loses a packet.)
//!
//! Each test waits about a minute of real time, as a dead client would.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::{enable_irc, enable_web, TestServer};

/// Longer than the server may take to give up on a silent client.
const A_MINUTE_AND_MORE: Duration = Duration::from_secs(75);

/// Registers `nick` over raw IRC and reads until the server closes or `listen`
/// passes, answering pings if `answer`; returns when the first `PING` came and
/// whether (and when) the connection was closed, with the last line.
async fn irc_client(
    server: std::net::SocketAddr,
    nick: &str,
    answer: bool,
    listen: Duration,
) -> (Option<Duration>, Option<(Duration, String)>) {
    let stream = TcpStream::connect(server).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let hello = format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n");
    writer.write_all(hello.as_bytes()).await.unwrap();
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + listen;
    let (mut pinged, mut last) = (None, String::new());
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await;
        match read {
            Err(_) => return (pinged, None),
            Ok(Ok(0)) | Ok(Err(_)) => return (pinged, Some((started.elapsed(), last))),
            Ok(Ok(_)) => {}
        }
        if line.starts_with(":classchat PING ") || line.starts_with("PING ") {
            pinged.get_or_insert(started.elapsed());
            if answer {
                writer.write_all(b"PONG :classchat\r\n").await.unwrap();
            }
        }
        last = line.trim_end().to_owned();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_irc_client_that_never_answers_ping_is_dropped_within_a_minute() {
    let server = TestServer::start_with(|c| {
        enable_irc(c);
        c.irc.port = 0;
    })
    .await;
    let irc = server.irc_addr.unwrap();
    let mut bob = server.login("bob").await;
    let ((pinged, closed), (answered_ping, answered_closed)) = tokio::join!(
        irc_client(irc, "silent", false, A_MINUTE_AND_MORE),
        // Past the silent one's end, and its own second ping.
        irc_client(irc, "awake", true, Duration::from_secs(65)),
    );
    let pinged = pinged.expect("the silent client was pinged");
    assert!(pinged >= Duration::from_secs(25) && pinged <= Duration::from_secs(35));
    let (after, last) = closed.expect("the silent client was dropped");
    assert!(after <= Duration::from_secs(65), "dropped after {after:?}");
    assert!(
        last.contains("ERROR") && last.contains("Ping timeout"),
        "{last}"
    );
    bob.expect("* silent has left #lobby (Connection lost)")
        .await;
    // A client that answers stays.
    assert!(answered_ping.is_some());
    assert_eq!(answered_closed, None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_that_never_answers_a_ping_is_dropped_within_a_minute() {
    let server = TestServer::start_with(enable_web).await;
    let web = server.web.unwrap();
    let open = |name: &'static str| async move {
        let mut request = format!("ws://{web}/ws").into_client_request().unwrap();
        let origin = format!("http://{web}").parse().unwrap();
        request.headers_mut().insert("Origin", origin);
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(Message::text(name)).await.unwrap();
        while let Some(Ok(frame)) = ws.next().await {
            if frame.to_text().unwrap_or("").contains("Welcome") {
                break;
            }
        }
        ws
    };
    let mut bob = server.login("bob").await;
    // Never read again: tungstenite answers pings only while it is read.
    let _silent = open("silent").await;
    bob.expect("* silent has joined #lobby").await;
    // Read all along, answering every ping.
    let mut awake = open("awake").await;
    let (lines, mut heard) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = awake.next().await {
            if let Message::Text(text) = frame {
                let _ = lines.send(text.to_string());
            }
        }
    });
    let started = Instant::now();
    loop {
        let line = bob
            .next_line_within(A_MINUTE_AND_MORE)
            .await
            .expect("bob stays connected");
        if line.ends_with("* silent has left #lobby (Connection lost)") {
            break;
        }
    }
    assert!(
        started.elapsed() <= Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    bob.send("still there, awake?").await;
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), heard.recv())
            .await
            .expect("the answering client still gets lines")
            .expect("the answering client is still connected");
        if line.ends_with("bob: still there, awake?") {
            break;
        }
    }
    server.stop().await;
}
