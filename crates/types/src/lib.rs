//! Drover's domain model and the one deterministic `apply` that every node's replicated state
//! machine runs.
//!
//! Everything here is pure: no clock, no I/O, no randomness, no async. The proposer stamps
//! wall-clock time into a [`Proposal`]; [`apply`] validates a [`Command`] against the
//! [`ClusterState`] and either mutates it (returning an [`Outcome`] that names every record it
//! touched) or rejects it with a typed [`Rejection`] and leaves the state exactly as it was.
//!
//! What goes into the Raft log or a snapshot is encoded by [`codec`]: bincode 2 behind a format
//! version byte, from types built only of `BTreeMap`s, `Vec`s, plain structs and externally
//! tagged enums, so every node encodes identical bytes.

// `apply` must be total: nothing in the library may panic on any input.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

mod apply;
pub mod backup;
mod brakes;
pub mod codec;
mod command;
mod drain;
mod events;
mod ids;
mod kv;
mod partition;
mod settings;
mod state;
// Test helpers panic on purpose (a rejected setup step fails the test); they are never part
// of a server build.
#[cfg(feature = "test-util")]
#[allow(clippy::panic, clippy::indexing_slicing)]
pub mod testing;
mod worker;

pub use apply::{
    Changes, LogPosition, Outcome, RejectCode, Rejection, Response, apply, apply_proposal,
    check_generation,
};
pub use brakes::{
    Brakes, Cordon, Hold, MAX_CORDONS, MAX_HOLDER_BYTES, MAX_MAINTENANCE_MS, MAX_REASON_BYTES,
    Maintenance, MassFailure, Pause, validate_holder, validate_reason, validate_until,
};
pub use command::{ADMIN, Actor, Command, MembershipChange, Proposal, Registration, SCHEDULER};
pub use drain::{DrainIntent, OnDeadline, PlannedMove};
pub use events::{Event, EventKind, EventLog};
pub use ids::{
    MAX_KV_KEY_BYTES, MAX_LABEL_BYTES, MAX_LABELS, MAX_PARTITIONS, MAX_REPLICATION_FACTOR,
    MAX_WORKER_ID_BYTES, PartitionId, WorkerId, validate_address, validate_kv_key, validate_labels,
    validate_worker_id, validate_zone,
};
pub use kv::KvEntry;
pub use partition::{KeyRange, Partition, Replica, ReplicaRole, key_range, partition_for_key};
pub use settings::{Fraction, LeaseFloor, MAX_DEAD_AFTER_MS, Settings, SettingsPatch};
pub use state::{ClusterState, InvariantViolation, Table};
pub use worker::{Worker, WorkerState};
