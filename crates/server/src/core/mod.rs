//! The server's core: a node's Raft instance and state with everything it does that is not
//! HTTP — proposals and group commit, linearizable reads, membership, leadership, the
//! leader-only scheduling loop, drains as the leader plans and starts them, liveness and the
//! core's metrics. Nothing here imports the
//! HTTP layer (`api/`); the core answers with its own [`Error`], which `api/error.rs` maps to
//! statuses in one place.
//!
//! Files import each other in one direction: `start.rs` assembles the node from the leaves
//! (`node.rs` and what it holds) and spawns the tasks; the files with `impl Node` blocks
//! (`propose.rs`, `commit.rs`, `reads.rs`, `membership.rs`) build on `node.rs`.

mod agents;
mod batcher;
mod commit;
mod drains;
mod error;
mod leadership;
pub mod liveness;
mod maintenance;
mod membership;
pub mod metrics;
mod node;
mod propose;
mod read_index;
mod reads;
mod recovery;
pub(crate) mod schedule;
mod start;
mod views;

pub use drains::{DrainError, DrainRequest};
pub use error::{Error, LeaderHint, Result};
pub use maintenance::EnterMaintenance;
pub use membership::{CAUGHT_UP_LAG, MembershipError};
pub use node::Node;
pub use recovery::RecoveryError;
pub use start::{StartError, start};
pub use views::RoundOnce;
