//! classchat: a classroom chat server, its client's protocol and its grading tools.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod clock;
pub mod config;
pub mod connection;
pub mod event;
pub mod hub;
pub mod limiter;
pub mod password;
pub mod protocol;
pub mod report;
pub mod server;
pub mod store;
pub mod transcript;
