//! Real IRC clients, irssi and WeeChat, driven in tmux: what a student sees in
//! the channel's window (SPEC 7, "What current IRC clients expect").

use classchat::config::Config;

use crate::access::{instructor, with_instructor};
use crate::harness::{enable_irc, skip, TestServer};
use crate::irc::{program, Tmux};

async fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::start_with(|config| {
        enable_irc(config);
        with_instructor(config);
        tweak(config);
    })
    .await
}

/// Whether `client` and tmux are installed; if not, the test says so and passes.
fn installed(client: &str) -> bool {
    if program(client).is_none() || program("tmux").is_none() {
        skip(&format!("{client} or tmux is not installed"));
        return false;
    }
    true
}

/// A tmux server of the test's own (`label`), running `command` in a 200×50 pane.
fn terminal(label: &str, command: &str) -> Tmux {
    let tmux = Tmux {
        socket: format!("classchat-{label}-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "irc",
        "-x",
        "200",
        "-y",
        "50",
        command,
    ]);
    tmux
}

/// irssi as `nick`, connecting with `pass` as the server password if given.
fn irssi(server: &TestServer, label: &str, nick: &str, pass: Option<&str>) -> Tmux {
    let port = server.irc_addr.unwrap().port();
    let home = server.dir.path().join(format!("irssi-{label}"));
    std::fs::create_dir_all(&home).unwrap();
    let settings = format!(
        "settings = {{ core = {{ real_name = \"{nick}\"; user_name = \"{nick}\"; nick = \"{nick}\"; }}; }};\n"
    );
    std::fs::write(home.join("config"), settings).unwrap();
    let pass = pass.map(|p| format!(" -w '{p}'")).unwrap_or_default();
    let command = format!(
        "irssi --home={} -n {nick} -c 127.0.0.1 -p {port}{pass}",
        home.display()
    );
    terminal(label, &command)
}

/// WeeChat as `nick`, with `options` for its server (`-autoreconnect_delay=1`).
fn weechat(server: &TestServer, label: &str, nick: &str, options: &str) -> Tmux {
    let port = server.irc_addr.unwrap().port();
    let home = server.dir.path().join(format!("weechat-{label}"));
    std::fs::create_dir_all(&home).unwrap();
    let version = std::process::Command::new("weechat")
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout);
    let major: u32 = version.split('.').next().unwrap().trim().parse().unwrap();
    // WeeChat 4 speaks TLS unless told otherwise.
    let plain = if major >= 4 { "-notls" } else { "" };
    let commands = format!(
        "/server add class 127.0.0.1/{port} {plain} -nicks={nick} -username={nick} {options};\
         /connect class"
    );
    let command = format!("weechat -a -d {} -r '{commands}'", home.display());
    terminal(label, &command)
}

/// Shows the `#lobby` window (irssi) or buffer (WeeChat) once the client has it:
/// `probe` is a text only that window holds.
async fn show_lobby(tmux: &Tmux, goto: &str) {
    tmux.until("the #lobby window", |tmux| {
        tmux.keys(goto);
        tmux.screen().contains("#lobby")
    })
    .await;
}

/// Waits until the `#lobby` window itself shows `text`. The clients stay in the
/// window they show, so a line in the status window never counts.
async fn in_lobby_window(tmux: &Tmux, goto: &str, text: &str) -> String {
    tmux.until(&format!("{text:?} in #lobby"), |tmux| {
        let screen = tmux.screen();
        if !screen.contains("#lobby") {
            tmux.keys(goto);
        }
        screen.contains(text)
    })
    .await;
    tmux.screen()
}

const IRSSI_LOBBY: &str = "/window goto #lobby";
const WEECHAT_LOBBY: &str = "/buffer #lobby";

/// Announcements and moderation notices land in the channel's window of irssi
/// and of WeeChat, where a student is looking.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_and_mutes_show_in_the_channel_window() {
    if !installed("irssi") || !installed("weechat") {
        return;
    }
    let server = server_with(|_| {}).await;
    let mut prof = instructor(&server).await;
    let ann = irssi(&server, "announce-irssi", "ann", None);
    prof.expect("* ann has joined #lobby").await;
    let wee = weechat(&server, "announce-weechat", "wee", "");
    prof.expect("* wee has joined #lobby").await;
    show_lobby(&ann, IRSSI_LOBBY).await;
    show_lobby(&wee, WEECHAT_LOBBY).await;

    prof.send("/announce Office hours at five").await;
    let screen = in_lobby_window(&ann, IRSSI_LOBBY, "Office hours at five").await;
    println!("irssi, #lobby:\n{screen}");
    let screen = in_lobby_window(&wee, WEECHAT_LOBBY, "Office hours at five").await;
    println!("WeeChat, #lobby:\n{screen}");

    prof.send("/mute ann 5").await;
    prof.send("/mute wee 5").await;
    let muted = "You have been muted by prof for 5 minutes.";
    in_lobby_window(&ann, IRSSI_LOBBY, muted).await;
    in_lobby_window(&wee, WEECHAT_LOBBY, muted).await;
    prof.send("/quiet on").await;
    in_lobby_window(&ann, IRSSI_LOBBY, "Quiet mode is on").await;
    in_lobby_window(&wee, WEECHAT_LOBBY, "Quiet mode is on").await;
    ann.keys("/quit");
    prof.expect_prefix("* ann has left #lobby").await;
    wee.keys("/quit");
    prof.expect_prefix("* wee has left #lobby").await;
}

/// A wrong code given with irssi's `/connect ... CODE`: the refusal says how to
/// try again, and trying so gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_retries_a_wrong_code_as_it_is_told() {
    if !installed("irssi") {
        return;
    }
    let server = server_with(|c| c.access.join_code = "owl-42".into()).await;
    let mut prof = instructor(&server).await;
    let ann = irssi(&server, "pass-irssi", "ann", Some("owl-41"));
    let screen = ann.wait_for("/quote PASS").await;
    println!("irssi after a wrong code:\n{screen}");
    assert!(screen.contains("Wrong code (2 attempts left)"), "{screen}");
    ann.keys("/quote PASS owl-42");
    prof.expect("* ann has joined #lobby").await;
    show_lobby(&ann, IRSSI_LOBBY).await;
}

/// `/me` in irssi and WeeChat is the line port's `* NAME TEXT`, and the line
/// port's `/me` is an action in both; `/ctcp NICK VERSION` is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_and_weechat_act_with_me_both_ways() {
    if !installed("irssi") || !installed("weechat") {
        return;
    }
    let server = server_with(|_| {}).await;
    let mut sam = server.login("sam").await;
    let ann = irssi(&server, "me-irssi", "ann", None);
    sam.expect("* ann has joined #lobby").await;
    let wee = weechat(&server, "me-weechat", "wee", "");
    sam.expect("* wee has joined #lobby").await;
    show_lobby(&ann, IRSSI_LOBBY).await;
    show_lobby(&wee, WEECHAT_LOBBY).await;

    sam.send("/me waves").await;
    sam.expect("* sam waves").await;
    in_lobby_window(&ann, IRSSI_LOBBY, "* sam waves").await;
    in_lobby_window(&wee, WEECHAT_LOBBY, "sam waves").await;
    ann.keys("/me dances");
    sam.expect("* ann dances").await;
    wee.keys("/me bows");
    sam.expect("* wee bows").await;
    in_lobby_window(&wee, WEECHAT_LOBBY, "ann dances").await;
    let screen = in_lobby_window(&ann, IRSSI_LOBBY, "* wee bows").await;
    println!("irssi, #lobby:\n{screen}");
    // irssi shows CTCP replies in its status window.
    ann.keys("/ctcp sam VERSION");
    ann.keys("/window 1");
    let version = concat!("classchat ", env!("CARGO_PKG_VERSION"));
    let screen = ann.wait_for(version).await;
    println!("irssi, status window:\n{screen}");
    let screen = in_lobby_window(&wee, WEECHAT_LOBBY, "wee bows").await;
    println!("WeeChat, #lobby:\n{screen}");
    ann.keys("/quit");
    sam.expect_prefix("* ann has left #lobby").await;
    wee.keys("/quit");
    sam.expect_prefix("* wee has left #lobby").await;
}

/// WeeChat logs in to a rostered class with SASL (the roster name and personal
/// code), negotiating the IRCv3 capabilities it knows (echo-message too, from
/// WeeChat 4): what it says shows once on its screen and reaches the line port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weechat_logs_in_with_sasl_in_a_rostered_class() {
    if !installed("weechat") {
        return;
    }
    let (server, codes) = crate::roster::rostered(enable_irc).await;
    let mut bob = crate::roster::log_in(&server, "bob", &codes["bob"]).await;
    let options = format!(
        "-sasl_mechanism=plain -sasl_username=amy -sasl_password={}",
        codes["amy"]
    );
    let amy = weechat(&server, "sasl-weechat", "amy", &options);
    bob.expect("* amy has joined #lobby").await;
    show_lobby(&amy, WEECHAT_LOBBY).await;
    amy.keys("hello from weechat");
    bob.expect("amy: hello from weechat").await;
    let screen = in_lobby_window(&amy, WEECHAT_LOBBY, "hello from weechat").await;
    println!("WeeChat, #lobby:\n{screen}");
    assert_eq!(screen.matches("hello from weechat").count(), 1, "{screen}");
    amy.run(&["select-window", "-t", "irc"]);
    amy.keys("/buffer class");
    let status = amy.wait_for("SASL authentication successful").await;
    println!("WeeChat, server buffer:\n{status}");
    amy.keys("/quit");
    bob.expect_prefix("* amy has left #lobby").await;
}

/// A kicked WeeChat user's client reconnects by itself: each try is refused with
/// the minutes left, and the room never sees them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kicked_weechat_user_reconnecting_is_refused_with_the_minutes_left() {
    if !installed("weechat") {
        return;
    }
    let server = server_with(|_| {}).await;
    let mut prof = instructor(&server).await;
    let wee = weechat(&server, "kick-weechat", "wee", "-autoreconnect_delay=1");
    prof.expect("* wee has joined #lobby").await;
    show_lobby(&wee, WEECHAT_LOBBY).await;
    prof.send("/kick wee spamming").await;
    prof.expect("* wee has been kicked.").await;
    wee.keys("/buffer class");
    let refused = "You were kicked; you can log in again in 10 minutes.";
    // The reconnect after the kick, and the one after that: both refused.
    wee.until("two refused reconnects", |tmux| {
        tmux.screen().matches(refused).count() >= 2
    })
    .await;
    println!("WeeChat, server buffer:\n{}", wee.screen());
    prof.send("/who").await;
    prof.expect_next("= #lobby (1): prof [instructor]").await;
    wee.keys("/quit");
}

/// Leaving and joining again in WeeChat, which keeps the channel's buffer: the
/// replay brings only the lines said meanwhile, so no line shows twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weechat_rejoin_shows_no_line_twice() {
    if !installed("weechat") {
        return;
    }
    let server = server_with(|_| {}).await;
    let mut sam = server.login("sam").await;
    sam.send("before anyone came").await;
    let wee = weechat(&server, "rejoin-weechat", "wee", "");
    sam.expect("* wee has joined #lobby").await;
    in_lobby_window(&wee, WEECHAT_LOBBY, "before anyone came").await;
    sam.send("said while wee was here").await;
    in_lobby_window(&wee, WEECHAT_LOBBY, "said while wee was here").await;
    // One room at a time: joining #lab leaves #lobby, whose buffer WeeChat keeps.
    wee.keys("/join #lab");
    sam.expect_prefix("* wee has left #lobby").await;
    sam.send("said while wee was away").await;
    wee.keys("/join #lobby");
    sam.expect("* wee has joined #lobby").await;
    let screen = in_lobby_window(&wee, WEECHAT_LOBBY, "said while wee was away").await;
    println!("WeeChat, #lobby after a rejoin:\n{screen}");
    for line in [
        "before anyone came",
        "said while wee was here",
        "said while wee was away",
    ] {
        assert_eq!(screen.matches(line).count(), 1, "{line}:\n{screen}");
    }
    wee.keys("/quit");
    sam.expect_prefix("* wee has left #lobby").await;
}
