//! The Drover server: configuration ([`config`]) and the clock it names ([`clock`]), the node's core ([`core`]: Raft, proposals,
//! reads, membership, scheduling, liveness; no HTTP), the admin HTTP API above it ([`api`]),
//! and [`run`], which composes the two on a listener.

pub mod api;
pub mod clock;
pub mod config;
pub mod core;
mod run;

pub use crate::core::Node;
pub use run::{Error, run};
