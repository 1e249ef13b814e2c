//! The wire protocol of SPEC section 2, in types and pure functions (no I/O, no
//! shared state), so all of it is tested without sockets.
//!
//! - [`codec`]: client bytes to lines.
//! - [`input`]: a client's line to [`Input`] (chat or a [`Command`]), names and rooms.
//! - [`error`]: why a line was refused ([`CommandError`], [`NickError`]).
//! - [`line`](mod@line): every line the server sends ([`ServerLine`]), rendered and parsed in
//!   one place.

pub mod codec;
pub mod error;
pub mod input;
pub mod line;

pub use codec::{Inbound, LineCodec};
pub use error::{Asked, CommandError, LoginError, NickError};
pub use input::{
    check_nick, command, normalize_room, parse, read_line, sanitize, Command, DmPolicy, Input,
    POLL_CHOICES,
};
pub use line::{
    Answer, CodeKind, Hand, LeaveReason, LineKind, Name, Notice, Role, ServerLine, Stamped,
    WhoEntry,
};
