//! Integration tests: real servers on port 0, real sockets, real binaries.

mod harness;

mod access;
mod bad_input;
mod binaries;
mod chat;
mod commands;
mod handshake;
mod irc;
mod load;
mod persistence;
mod reports;
