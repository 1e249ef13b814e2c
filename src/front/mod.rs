//! Front ends: the ways a client reaches the [`Switchboard`](crate::switchboard::Switchboard).
//! Each one decodes its wire format into [`Input`](crate::protocol::Input), calls the
//! switchboard, and renders the [`Stamped`](crate::protocol::Stamped) lines queued for
//! its client in its own format.
//!
//! - [`line`]: the line protocol of SPEC section 2 over TCP (`chat-client`, `nc`).

pub mod line;
