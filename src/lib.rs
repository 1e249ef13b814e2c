//! classchat: a classroom chat server, its client's protocol and its grading tools.
//!
//! # Layout
//!
//! A client's bytes arrive at a **front end** ([`front`]): today the line protocol
//! of `chat-client` and `nc` ([`front::line`]), IRC ([`front::irc`]), and the same
//! line protocol over the browser's WebSocket ([`front::web`], which also serves the
//! instructor page). A front end decodes its wire format into a
//! [`protocol::Input`] and calls the [`switchboard`]; who may log in, and as whom,
//! is decided for all of them by [`front::login`] (with the class [`roster`]), and
//! their places under the connection limits by [`front::seat`].
//!
//! The [`switchboard`] holds the [`hub`] behind one lock. The hub is the room
//! manager as a pure state machine: given an action and the time, it returns an
//! [`hub::Outcome`]: which [`protocol::ServerLine`] goes to whom, which
//! [`event::Event`] is recorded, who is closed. The switchboard queues each line
//! on its members' bounded outboxes ([`mailbox`]) and hands each event to an
//! [`event::EventSink`]: the [`store`], whose writer thread puts it in SQLite and
//! the [`transcript`]. Each front end's writer task renders the queued lines in
//! its own format; the line protocol's wording lives in [`protocol::line`] alone.
//!
//! Around them: [`config`] (the TOML file, validated into a
//! [`config::ValidConfig`]), [`server`] (accept loops, seats, orderly shutdown),
//! [`tls`] (the certificate every TLS listener presents, and the client's trust),
//! [`access`] and [`limiter`] (limits per address and per login name that survive
//! reconnecting), [`clock`] (timestamps), [`password`] (argon2 hashes) and
//! [`report`] (the grading report and transcript read back from the database,
//! attendance per [`class`] session) and [`student_data`] (retention, a student's own copy, erasure: SPEC 12).
//!
//! In cluster mode ([`cluster`]) the switchboard turns each request into a
//! [`switchboard::Action`] and publishes it to a NATS JetStream stream instead of
//! applying it; every node applies the stream's actions, in the stream's order, to
//! its own copy of the hub, so all of them agree without any protocol of their
//! own. The record lives in PostgreSQL ([`store::postgres`]): the events in stream order
//! and the roster, shared by every node; the report and the roster commands read
//! and write it there.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod access;
pub mod class;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod event;
pub mod front;
pub mod hub;
pub mod limiter;
pub mod mailbox;
pub mod password;
pub mod protocol;
pub mod report;
pub mod roster;
pub mod server;
pub mod store;
pub mod student_data;
pub mod switchboard;
pub mod tls;
pub mod transcript;
