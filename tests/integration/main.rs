//! Integration tests: real servers on port 0, real sockets, real binaries.

mod harness;

mod access;
mod bad_input;
mod binaries;
mod browser;
mod chat;
mod classroom;
mod cluster;
mod cluster_limits;
mod cluster_start;
mod commands;
mod dropped_network;
mod durability;
mod handshake;
mod hostile;
mod irc;
mod limits;
mod liveness;
mod load;
mod nats;
mod persistence;
mod postgres;
mod proxy;
mod record_postgres;
mod reports;
mod roster;
mod student_data;
mod terminal;
mod tls;
mod web;
mod web_limits;
