//! A real `nats-server -js` for the cluster tests, on a free loopback port with its
//! JetStream store in a temporary folder; stopped when dropped. It can be stopped
//! and started again on the same port and store, as an operator would restart it.
//!
//! Like [`Postgres`](super::postgres::Postgres), a missing program skips the test
//! with one printed line, unless `CLASSCHAT_REQUIRE_CLUSTER=1`.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::postgres::{cluster_required, REQUIRE_CLUSTER_ENV};

/// A running (or stopped) NATS server of its own.
pub struct Nats {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl Nats {
    /// Starts a server, or says why it cannot and returns `None`.
    pub fn start() -> Option<Nats> {
        let found = Command::new("nats-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                !cluster_required(),
                "{REQUIRE_CLUSTER_ENV}=1 but nats-server is not installed"
            );
            crate::harness::skip(
                "cluster tests need nats-server and PostgreSQL; nats-server is not on PATH",
            );
            return None;
        }
        let mut nats = Nats {
            dir: tempfile::tempdir().expect("a temporary folder"),
            port: free_port(),
            child: None,
        };
        nats.start_again();
        Some(nats)
    }

    /// Where nodes reach it.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: the store survives, the clients see the connection drop).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes it (SIGSTOP): its connections stay open and say nothing, as with a
    /// hung server or a network that drops packets. [`Nats::resume`] thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("nats-server is running");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Starts it again on the same port and store, and waits until it accepts
    /// connections.
    pub fn start_again(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("bound").port()
}
