//! The floor under S2: a fan-out server that does nothing but fan out. It greets a
//! client after its first line (the name) with `Welcome`, then writes every later
//! line, unchanged, to every other client. No parsing, no record, no history, no
//! limits: what is left is the runtime, the sockets and the kernel's loopback, which
//! every chat server pays. `bench/scenario.sh s2floor` runs S2 against it beside
//! classchat, alternating, so classchat's p99 and CPU can be quoted as ratios to it.
//!
//!   cargo build --profile bench-release --features load
//!   target/bench-release/chat-floor [ADDR]     (default 127.0.0.1:0)
//!
//! Prints `listening on ADDR` once it accepts.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Lines a client may fall behind before it misses some; S2's slowest reader is
/// the load generator itself, which never falls this far behind.
const BACKLOG: usize = 16384;

/// One line on its way out, with the connection it came from so that its sender
/// does not get it back (as a chat server does not echo a sender's own line).
#[derive(Clone)]
struct Line {
    from: u64,
    bytes: Bytes,
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("listening on {}", listener.local_addr()?);
    let (lines, _) = broadcast::channel::<Line>(BACKLOG);
    let ids = AtomicU64::new(0);
    loop {
        let (stream, _) = listener.accept().await?;
        let id = ids.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(stream, id, lines.clone()));
    }
}

async fn serve(stream: TcpStream, me: u64, lines: broadcast::Sender<Line>) {
    // Small writes go out at once, as a chat server's do.
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut name = Vec::new();
    if rd.read_until(b'\n', &mut name).await.unwrap_or(0) == 0 {
        return;
    }
    let mut inbox = lines.subscribe();
    if wr.write_all(b"Welcome\n").await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        // Everything already waiting goes out in one write, as classchat's writers do.
        let mut batch = BytesMut::new();
        loop {
            match inbox.recv().await {
                Ok(line) if line.from != me => batch.extend_from_slice(&line.bytes),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
            loop {
                match inbox.try_recv() {
                    Ok(line) if line.from != me => batch.extend_from_slice(&line.bytes),
                    Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                    Err(_) => break,
                }
            }
            if !batch.is_empty() && wr.write_all(&batch.split()).await.is_err() {
                return;
            }
        }
    });
    let mut line = Vec::new();
    loop {
        line.clear();
        match rd.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let _ = lines.send(Line {
                    from: me,
                    bytes: Bytes::copy_from_slice(&line),
                });
            }
        }
    }
    writer.abort();
}
