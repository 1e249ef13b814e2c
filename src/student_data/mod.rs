//! Student data (SPEC 12): how long the record is kept, a student's own copy of
//! it, and erasing a student's words.
//!
//! A class's chat is a student record, kept in three places: the events table
//! (SQLite, or PostgreSQL in cluster mode), the transcript files, and each
//! running server's replay tails in memory. What is older than
//! `storage.retention_days` is deleted from the first two by the record itself
//! (`expire_before` in [`store::sqlite`](crate::store::sqlite) and
//! [`store::postgres`](crate::store::postgres)) and by
//! [`transcript::expire_transcripts`](crate::transcript::expire_transcripts) (the
//! tails hold only recent lines). [`export`] gives one student's events and roster entry. [`erase`]
//! replaces one student's words by [`ERASED`] in the record, so that the rows,
//! and the counts of earlier reports, stay; [`rewrite`] does the same to the
//! transcript files. A running server notices an erase through the `erase` event
//! it records, and rewrites its transcripts and forgets the lines itself, so that
//! nothing it appends races the command.

pub mod command;
pub mod erase;
pub mod export;
pub mod rewrite;

pub use crate::store::ERASED;
