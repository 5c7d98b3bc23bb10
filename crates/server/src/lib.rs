//! The Drover server: configuration ([`config`]), the node that composes storage, Raft and the
//! admin API ([`run`]), and the API itself.

pub mod api;
mod batcher;
pub mod config;
pub mod liveness;
mod node;
mod read_index;
mod schedule;

pub use node::{Error, Node, run};
