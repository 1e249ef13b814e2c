//! Every change to the chat's state as a value.
//!
//! A single server applies an [`Action`] the moment a front end asks for it. A
//! cluster node instead publishes it to the NATS JetStream stream, and every node
//! (the one it came from included) applies it when the stream hands it back, in
//! the stream's one order, to its own copy of the hub. The hub is deterministic
//! (it reads no clock: the time travels with the action), so all the copies agree
//! on every name, room and mute without any other coordination.

use serde::{Deserialize, Serialize};

use crate::hub::{ConnId, Identity};
use crate::protocol::{Command, LeaveReason};

/// One change, as a front end asked for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Action {
    /// A connection logs in under `nick`.
    Register {
        /// The connection.
        id: ConnId,
        /// The name it asked for.
        nick: String,
        /// Who it is, as the login found out.
        identity: Identity,
    },
    /// A chat line to the member's room.
    Chat {
        /// The member.
        id: ConnId,
        /// What was said.
        text: String,
    },
    /// Any command but `/op`.
    Perform {
        /// The member.
        id: ConnId,
        /// The command.
        command: Command,
    },
    /// The member became an instructor (its password was checked where it typed it).
    Op {
        /// The member.
        id: ConnId,
    },
    /// The member's roster entry was removed or its code reissued: it is told
    /// and closed.
    Revoke {
        /// The member.
        id: ConnId,
    },
    /// The member's connection ended.
    Leave {
        /// The member.
        id: ConnId,
        /// Why.
        reason: LeaveReason,
    },
    /// Cluster only: a node started. The stream sequence of this action is the
    /// node's number, and the high half of its connections' ids.
    NodeStarted {
        /// [`Settings::fingerprint`](crate::hub::Settings::fingerprint) of the
        /// node's hub: every copy must apply the same rules.
        #[serde(default)]
        settings: u64,
    },
    /// Cluster only: a node stopped answering; every member connected through it
    /// is gone (`Connection lost`).
    NodeGone {
        /// The node's number.
        node: u64,
    },
}

/// One action as it travels through the stream: when and where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// When the member did it, UTC milliseconds; every copy of the hub uses this
    /// time, never its own clock.
    pub at: i64,
    /// The node it came from (0 before the node has its number).
    pub node: u64,
    /// What happened.
    pub action: Action,
}

/// The node a connection belongs to: connection ids are `node << 32 | n`.
pub fn node_of(id: ConnId) -> u64 {
    (id as u64) >> 32
}

/// The first connection id of node `node`.
pub fn first_id(node: u64) -> ConnId {
    ((node << 32) | 1) as ConnId
}

impl Action {
    /// The member who asked for it, if a member did.
    pub fn member(&self) -> Option<ConnId> {
        match self {
            Action::Register { id, .. }
            | Action::Chat { id, .. }
            | Action::Perform { id, .. }
            | Action::Op { id }
            | Action::Revoke { id }
            | Action::Leave { id, .. } => Some(*id),
            Action::NodeStarted { .. } | Action::NodeGone { .. } => None,
        }
    }

    /// A member going away: never refused, and kept until it reaches the stream,
    /// or the others would see a ghost. (A node declared gone is not: if the
    /// stream cannot be reached, the declaring node may be the one cut off.)
    pub fn is_departure(&self) -> bool {
        matches!(
            self,
            Action::Leave { .. }
                | Action::Revoke { .. }
                | Action::Perform {
                    command: Command::Quit(_),
                    ..
                }
        )
    }
}
