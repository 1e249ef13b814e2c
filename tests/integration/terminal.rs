//! `chat-client` on a real terminal: tmux gives it a pseudo-terminal, types into it
//! as a person (or a paste) would, and shows what is on the screen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{TestServer, WAIT};

const CLIENT: &str = env!("CARGO_BIN_EXE_chat-client");

/// A tmux server of the test's own, so that nothing else on the machine is touched.
pub(crate) struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// `None` (after one printed line) where tmux is not installed.
    pub(crate) fn start(command: &str) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            crate::harness::skip("tmux is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tmux = Tmux {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        tmux.run(&["new-session", "-d", "-x", "120", "-y", "30", command]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env_remove("TMUX")
            .output()
            .unwrap();
        assert!(out.status.success(), "tmux {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` and Enter in one `send-keys`: the keys arrive together.
    pub(crate) fn type_line(&self, text: &str) {
        self.run(&["send-keys", "-t", "0", text, "Enter"]);
    }

    /// Pastes `text` through a tmux buffer: one write of every line, as a terminal
    /// pastes.
    fn paste(&self, text: &str) {
        self.run(&["set-buffer", "-b", "burst", text]);
        self.run(&["paste-buffer", "-p", "-b", "burst", "-t", "0"]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "0"])
    }

    /// Waits until the screen shows `needle`; returns the screen.
    pub(crate) async fn wait_for(&self, needle: &str) -> String {
        let started = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                started.elapsed() < WAIT,
                "the screen never showed {needle:?}:\n{screen}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn client_command(port: u16, name: &str, home: &Path) -> String {
    // HOME keeps rustyline's history file out of the real one.
    format!(
        "env HOME={} NO_COLOR=1 {CLIENT} --port {port} --name {name}",
        home.display()
    )
}

#[tokio::test]
async fn keys_typed_together_are_sent_at_once_and_the_prompt_follows_nick() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let home = tempfile::tempdir().unwrap();
    let Some(tmux) = Tmux::start(&client_command(server.addr.port(), "amy", home.path())) else {
        return;
    };
    bob.expect("* amy has joined #lobby").await;
    tmux.wait_for("amy>").await;
    tmux.type_line("hello there");
    bob.expect_next("amy: hello there").await;
    tmux.type_line("/nick amelia");
    bob.expect_next("* amy is now known as amelia").await;
    // The prompt shows the new name before anything else is typed.
    tmux.wait_for("amelia>").await;
    tmux.type_line("still me");
    bob.expect_next("amelia: still me").await;
    tmux.type_line("/quit");
    bob.expect_next("* amelia has left #lobby (Quit)").await;
}

#[tokio::test]
async fn codes_and_passwords_are_asked_without_echo() {
    let hash = classchat::password::hash("owl-secret-7").unwrap();
    let server = TestServer::start_with(|c| {
        c.access.instructors = vec!["prof".into()];
        c.access.instructor_password = hash;
    })
    .await;
    let home = tempfile::tempdir().unwrap();
    let Some(tmux) = Tmux::start(&client_command(server.addr.port(), "prof", home.path())) else {
        return;
    };
    // The instructor's reserved name asks for the password at log-in.
    tmux.wait_for("password>").await;
    tmux.type_line("owl-secret-7");
    let screen = tmux.wait_for("Welcome, prof!").await;
    assert!(!screen.contains("owl-secret-7"), "{screen}");
    tmux.wait_for("prof>").await;
    // And `/op` typed alone asks for it the same way.
    tmux.type_line("/op");
    tmux.wait_for("password>").await;
    tmux.type_line("owl-secret-7");
    let screen = tmux.wait_for("You are now an instructor").await;
    assert!(!screen.contains("owl-secret-7"), "{screen}");
    // Nor is it in the line editor's history: Up brings back nothing.
    tmux.run(&["send-keys", "-t", "0", "Up"]);
    let screen = tmux.wait_for("prof>").await;
    assert!(!screen.contains("owl-secret-7"), "{screen}");
}

#[tokio::test]
async fn lines_typed_ahead_or_pasted_in_one_burst_all_arrive_in_order() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    let home = tempfile::tempdir().unwrap();
    let Some(tmux) = Tmux::start(&client_command(server.addr.port(), "amy", home.path())) else {
        return;
    };
    bob.expect("* amy has joined #lobby").await;
    tmux.wait_for("amy>").await;
    // Three lines and their Enters in one send-keys: one write to the terminal.
    tmux.run(&[
        "send-keys",
        "-t",
        "0",
        "fast1",
        "Enter",
        "fast2",
        "Enter",
        "fast3",
        "Enter",
    ]);
    bob.expect_next("amy: fast1").await;
    bob.expect_next("amy: fast2").await;
    bob.expect_next("amy: fast3").await;
    // A paste of three lines (bracketed, where the terminal does that) is the same.
    tmux.paste("paste1\npaste2\npaste3\n");
    bob.expect_next("amy: paste1").await;
    bob.expect_next("amy: paste2").await;
    bob.expect_next("amy: paste3").await;
    tmux.type_line("/quit");
    bob.expect_next("* amy has left #lobby (Quit)").await;
}
