//! A student's network vanishes without a word (Wi-Fi gone: no FIN, no RST): the
//! server notices within a minute, the student gets her name back, and the
//! report's online time for the dead connection ends with it (SPEC 10, issue of
//! the class's day). The student's machine is a network namespace joined to this
//! one by a veth pair, whose far end is then set down; where namespaces cannot be
//! made (no root), the test prints one line and passes.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{skip, TestClient, TestServer};
use crate::persistence::stored_events;

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// A network namespace with one veth link to this one, removed when dropped.
struct Host {
    name: String,
    /// This side's end of the link, and its address.
    near: String,
    server_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Host {
    /// A namespace at 198.51.100.2 (TEST-NET-2: never routed anywhere), reaching
    /// this side at 198.51.100.1.
    fn make() -> Option<Host> {
        let id = std::process::id() % 10_000;
        let name = format!("cc{id}");
        let (near, far) = (format!("ccn{id}"), format!("ccf{id}"));
        let server_ip = Ipv4Addr::new(198, 51, 100, 1);
        let steps: [&[&str]; 8] = [
            &["netns", "add", &name],
            &["link", "add", &near, "type", "veth", "peer", "name", &far],
            &["link", "set", &far, "netns", &name],
            &["addr", "add", "198.51.100.1/30", "dev", &near],
            &["link", "set", &near, "up"],
            &["-n", &name, "addr", "add", "198.51.100.2/30", "dev", &far],
            &["-n", &name, "link", "set", &far, "up"],
            &["-n", &name, "link", "set", "lo", "up"],
        ];
        // Made before the steps run, so that whatever they made is removed.
        let mut host = Host {
            name: String::new(),
            near: String::new(),
            server_ip,
        };
        for step in steps {
            if !ip(step) {
                host.name.clone_from(&name);
                host.near.clone_from(&near);
                return None;
            }
        }
        host.name = name;
        host.near = near;
        Some(host)
    }

    /// The student's Wi-Fi goes: nothing crosses the link any more, and nothing
    /// says so.
    fn cut(&self) {
        let far = self.near.replace("ccn", "ccf");
        assert!(ip(&["-n", &self.name, "link", "set", &far, "down"]));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        ip(&["link", "del", &self.near]);
        ip(&["netns", "del", &self.name]);
    }
}

#[tokio::test]
async fn a_vanished_client_is_dropped_within_a_minute_and_its_name_is_free_again() {
    let Some(host) = Host::make() else {
        return skip("dropped network test (cannot make a network namespace: not root?)");
    };
    let server = TestServer::start_with(|c| {
        c.server.bind = IpAddr::V4(host.server_ip);
        c.limits.messages_per_sec = 0;
    })
    .await;
    let port = server.addr.port().to_string();
    let mut bob = TestClient::connect(server.addr).await;
    bob.send("bob").await;
    bob.expect_prefix("* Welcome, bob!").await;
    let mut amy = Command::new("ip")
        .args(["netns", "exec", &host.name, CLIENT])
        .args(["--host", &host.server_ip.to_string(), "--port", &port])
        .args(["--name", "amy", "--no-color"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    bob.expect("* amy has joined #lobby").await;
    {
        use std::io::Write;
        let stdin = amy.stdin.as_mut().unwrap();
        writeln!(stdin, "last words").unwrap();
    }
    bob.expect("amy: last words").await;
    let last_activity = Instant::now();
    host.cut();
    // The machine is gone with its client; its end of the connection never
    // closes.
    amy.kill().unwrap();
    amy.wait().unwrap();
    // The class keeps talking, so the server has data in flight to the dead
    // connection, which is when TCP alone would wait for a quarter of an hour.
    bob.send("anyone there?").await;

    let dropped = loop {
        let wait = std::time::Duration::from_secs(2);
        let line = tokio::time::timeout(wait, bob.next_line()).await;
        if let Ok(Some(line)) = line {
            if line.ends_with("* amy has left #lobby (Connection lost)") {
                break last_activity.elapsed();
            }
        }
        assert!(
            last_activity.elapsed() < Duration::from_secs(75),
            "the dead connection was still held after 75 s"
        );
    };
    assert!(
        dropped < Duration::from_secs(60),
        "dropped after {dropped:?}"
    );
    // Her name is free: she is back.
    let mut back = TestClient::connect(server.addr).await;
    back.send("amy").await;
    back.expect_prefix("* Welcome, amy!").await;

    // The report's online time for the dead connection ends within that minute.
    let dir = server.stop().await;
    let events = stored_events(&dir.path().join("data/chat.db"));
    let first_session = events
        .iter()
        .find(|e| e.sender.as_ref() == "amy")
        .unwrap()
        .session;
    let said = events
        .iter()
        .find(|e| e.text.as_deref() == Some("last words"))
        .unwrap()
        .ts_ms;
    let left = events
        .iter()
        .find(|e| e.session == first_session && e.kind == classchat::event::EventKind::Leave)
        .unwrap()
        .ts_ms;
    assert!(
        left - said <= 60_000,
        "online {} ms past the last line",
        left - said
    );
}
