//! Every command's success and failure.

use crate::harness::TestServer;

#[tokio::test]
async fn nick_changes_are_announced_to_the_room_and_checked() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;

    bob.send("/nick robert").await;
    bob.expect_next("* bob is now known as robert").await;
    alice.expect_next("* bob is now known as robert").await;
    bob.send("hi").await;
    alice.expect_next("robert: hi").await;

    bob.send("/nick ALICE").await;
    bob.expect_next("! Username ALICE is already taken").await;
    bob.send("/nick 9lives").await;
    bob.expect_next("! Username must start with a letter").await;
    bob.send("/nick Admin").await;
    bob.expect_next("! Username Admin is reserved").await;
    bob.send("/nick").await;
    bob.expect_next("! Usage: /nick NEW").await;
    // The old name is free again, and case changes of one's own name are allowed.
    let mut bob2 = server.login("bob").await;
    bob2.send("/nick BOB").await;
    bob2.expect("* bob is now known as BOB").await;
    alice.expect("* bob is now known as BOB").await;
}

#[tokio::test]
async fn private_messages_reach_only_the_recipient_in_any_room() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    bob.send("/join lab").await;
    bob.expect("* You are now in #lab with 0 others.").await;

    alice.send("/msg BOB psst, over here").await;
    alice.expect("[PM to bob] psst, over here").await;
    bob.expect_next("[PM from alice] psst, over here").await;
    alice.send("/msg nobody hello").await;
    alice.expect_next("! No such user: nobody").await;
    alice.send("/msg bob").await;
    alice.expect_next("! Usage: /msg NICK TEXT").await;

    carol.expect("* bob has left #lobby (joined #lab)").await;
    carol.expect_nothing_pending().await;
    bob.expect_nothing_pending().await;
}

#[tokio::test]
async fn who_lists_the_room_sorted_case_insensitively() {
    let server = TestServer::start().await;
    let mut zed = server.login("zed").await;
    let _amy = server.login("Amy").await;
    let _bob = server.login("bob").await;
    zed.expect("* bob has joined #lobby").await;
    zed.send("/WHO").await;
    zed.expect_next("= #lobby (3): Amy, bob, zed").await;
}

#[tokio::test]
async fn join_moves_between_rooms_and_rooms_lists_them() {
    let server = TestServer::start_with(|c| c.server.rooms = vec!["help-desk".into()]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;

    bob.send("/join #Lab").await;
    bob.expect_next("* You are now in #lab with 0 others.")
        .await;
    alice
        .expect_next("* bob has left #lobby (joined #lab)")
        .await;
    alice.send("/rooms").await;
    alice
        .expect_next("= Rooms: #help-desk (0), #lab (1), #lobby (1)")
        .await;

    alice.send("/join lab").await;
    alice
        .expect_next("* You are now in #lab with 1 other.")
        .await;
    bob.expect_next("* alice has joined #lab").await;
    alice.send("in the lab").await;
    bob.expect_next("alice: in the lab").await;

    bob.send("/join lab").await;
    bob.expect_next("! You are already in #lab").await;
    bob.send("/join bad.name").await;
    bob.expect_next("! Invalid room name: rooms are 1-32 of a-z 0-9 _ -")
        .await;
    bob.send("/join").await;
    bob.expect_next("! Usage: /join ROOM").await;

    // Empty non-permanent rooms disappear; permanent ones stay.
    alice.send("/join lobby").await;
    alice
        .expect_next("* You are now in #lobby with 0 others.")
        .await;
    bob.send("/join lobby").await;
    bob.expect("* You are now in #lobby with 1 other.").await;
    bob.send("/rooms").await;
    bob.expect("= Rooms: #help-desk (0), #lobby (2)").await;
}

#[tokio::test]
async fn rooms_are_limited() {
    let server = TestServer::start_with(|c| c.limits.max_rooms = 2).await;
    let mut alice = server.login("alice").await;
    alice.send("/join one").await;
    alice
        .expect_next("* You are now in #one with 0 others.")
        .await;
    let mut bob = server.login("bob").await;
    bob.send("/join two").await;
    bob.expect_next("! Too many rooms (max 2); join an existing one (see /rooms)")
        .await;
}

#[tokio::test]
async fn help_lists_every_command() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    alice.send("/help").await;
    let mut text = String::new();
    for _ in 0..classchat::protocol::line::HELP.len() {
        let body = alice.next_body().await;
        assert!(body.starts_with("= "), "{body}");
        text.push_str(&body);
    }
    for command in ["/nick", "/msg", "/who", "/join", "/rooms", "/help", "/quit"] {
        assert!(text.contains(command), "{command} missing from {text}");
    }
    alice.expect_nothing_pending().await;
}

#[tokio::test]
async fn unknown_commands_and_the_double_slash_escape() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect_next("* bob has joined #lobby").await;
    alice.send("/foo bar").await;
    alice
        .expect_next("! Unknown command: /foo (try /help)")
        .await;
    alice.send("//shrug").await;
    bob.expect_next("alice: /shrug").await;
    alice.send("   ").await;
    alice.send("trailing   \t ").await;
    bob.expect_next("alice: trailing").await;
    bob.expect_nothing_pending().await;
}

#[tokio::test]
async fn renaming_to_ones_own_name_is_refused_with_a_reason() {
    let server = TestServer::start().await;
    let mut bob = server.login("bob").await;
    bob.send("/nick bob").await;
    bob.expect_next("! You are already bob").await;
}

#[tokio::test]
async fn room_names_are_at_most_32_characters() {
    let server = TestServer::start().await;
    let mut alice = server.login("alice").await;
    let longest = "r".repeat(32);
    alice.send(&format!("/join {longest}")).await;
    alice
        .expect_next(&format!("* You are now in #{longest} with 0 others."))
        .await;
    alice.send(&format!("/join {longest}x")).await;
    alice
        .expect_next("! Invalid room name: rooms are 1-32 of a-z 0-9 _ -")
        .await;
}

#[tokio::test]
async fn leaving_a_room_that_vanishes_frees_its_place_under_the_limit() {
    let server = TestServer::start_with(|c| c.limits.max_rooms = 2).await;
    let mut alice = server.login("alice").await;
    alice.send("/join one").await;
    alice
        .expect_next("* You are now in #one with 0 others.")
        .await;
    // #one empties as alice leaves it, so #two fits.
    alice.send("/join two").await;
    alice
        .expect_next("* You are now in #two with 0 others.")
        .await;
    alice.send("/rooms").await;
    alice.expect_next("= Rooms: #lobby (0), #two (1)").await;
}
