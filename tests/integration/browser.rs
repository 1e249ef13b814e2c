//! The web pages in real headless Chromium: `tests/browser/run.mjs`, driven by
//! playwright-core, against the `chat-server` binary built for these tests.
//!
//! Skipped, with one line saying so, where Chromium, Node or `npm ci` in
//! `tests/browser` is missing, so that `cargo test` passes on a bare machine;
//! `.ci/run` installs them and sets `CLASSCHAT_REQUIRE_BROWSER=1` so that CI cannot
//! skip them silently.

use std::path::Path;
use std::process::Command;

use crate::harness::SERVER_BIN;

const CHROMIUM: &str = "/usr/bin/chromium";

#[test]
fn the_pages_work_in_headless_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let node = Command::new("node").arg("--version").output();
    let missing = [
        (!Path::new(CHROMIUM).exists()).then_some(CHROMIUM),
        node.is_err().then_some("node"),
        (!dir.join("node_modules/playwright-core").exists()).then_some("npm ci in tests/browser"),
    ];
    let missing: Vec<&str> = missing.into_iter().flatten().collect();
    if !missing.is_empty() {
        assert!(
            std::env::var_os("CLASSCHAT_REQUIRE_BROWSER").is_none(),
            "browser tests required but missing: {missing:?}"
        );
        crate::harness::skip(&format!("browser tests need {}", missing.join(", ")));
        return;
    }
    let output = Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir)
        .env("CHAT_SERVER", SERVER_BIN)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "browser tests failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    print!("{stdout}");
}
