//! Commands: every mutation of the replicated state, as proposed to Raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::drain::PlannedMove;
use crate::ids::{PartitionId, WorkerId};
use crate::settings::SettingsPatch;
use crate::worker::WorkerState;

/// What the leader proposes: a command and the proposer's wall-clock time, since `apply` never
/// reads a clock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// Milliseconds since the Unix epoch, stamped by the proposer.
    pub at_ms: u64,
    pub command: Command,
}

/// Who asks for a worker state change; SPEC §1's "who" column is enforced by `apply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    Operator,
    Agent,
    Scheduler,
}

/// `PUT /v1/workers/{id}` (SPEC §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub worker: WorkerId,
    pub incarnation: u64,
    pub address: String,
    pub zone: Option<String>,
    pub capacity: u32,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Register a new worker, a restart (new incarnation) or a recommission (after Disabled or
    /// removal). Same incarnation and attributes: idempotent.
    Register(Registration),
    /// A §1 state change. Agents carry their generation; `force` allows Active/Draining →
    /// Disabled, dropping the worker's replicas at once.
    SetState {
        worker: WorkerId,
        to: WorkerState,
        by: Actor,
        generation: Option<u64>,
        expected_version: Option<u64>,
        force: bool,
    },
    /// Remove a Disabled worker, leaving a tombstone with its last generation.
    Remove {
        worker: WorkerId,
        expected_version: Option<u64>,
    },
    /// Commit `dead at generation g`: its replicas are removed without acknowledgement.
    /// `term` is the leader term the verdict was decided in; an entry of any other term
    /// refuses it (`stale_term`).
    MarkDead {
        worker: WorkerId,
        generation: u64,
        term: u64,
    },
    /// Create the partition table, once.
    CreateTable { count: u32, replication_factor: u8 },
    /// Make-before-break step 1: add `worker` as a joining replica, replacing the serving
    /// replica on `replaces` once it has caught up (none for a restore).
    AddReplica {
        partition: PartitionId,
        worker: WorkerId,
        expected_epoch: u64,
        replaces: Option<WorkerId>,
    },
    /// Steps 2 and 4: the worker acknowledges catch-up (joining → serving) or release
    /// (leaving → removed) of the replica that took its role at `epoch`.
    Acknowledge {
        partition: PartitionId,
        worker: WorkerId,
        generation: u64,
        epoch: u64,
    },
    /// Step 3: mark a serving replica leaving; refused if the partition would drop below RF
    /// healthy serving replicas.
    MarkLeaving {
        partition: PartitionId,
        worker: WorkerId,
        expected_epoch: u64,
    },
    /// Withdraw a joining replica (join timeout, cancelled drain, replanned move).
    RemoveReplica {
        partition: PartitionId,
        worker: WorkerId,
        expected_epoch: u64,
    },
    /// Pick the preferred leader among healthy serving replicas.
    SetLeader {
        partition: PartitionId,
        leader: WorkerId,
        expected_epoch: u64,
    },
    /// Drain a set of Active workers as one operation, committing the planner's moves.
    StartDrain {
        workers: Vec<WorkerId>,
        moves: Vec<PlannedMove>,
    },
    /// Commit (or replace, per partition and source) planned moves of an existing drain.
    PlanDrain { drain: u64, moves: Vec<PlannedMove> },
    KvPut {
        key: String,
        value: String,
        expected_version: Option<u64>,
    },
    KvDelete {
        key: String,
        expected_version: Option<u64>,
    },
    /// Change cluster settings: the patch's fields replace the current ones, the result is
    /// validated whole; `expected_version` compares with the settings' version (0: only if the
    /// cluster's initial settings were never committed).
    UpdateSettings {
        patch: SettingsPatch,
        expected_version: Option<u64>,
    },
    /// KV writes to distinct keys that the leader proposes as one log entry (group commit).
    /// Each is applied in order as if alone and answered on its own; all take the entry's index
    /// as their version. Distinct keys keep a key's version naming exactly one write, so
    /// compare-and-set stays exact. Only `KvPut` and `KvDelete` may be batched.
    Batch(Vec<Command>),
    /// Records a committed Raft membership change in the events log, so that an audit of the
    /// cluster's history shows it beside worker transitions. Proposed by the leader after the
    /// change itself committed; it changes nothing else.
    RecordMembership(MembershipChange),
}

/// A Raft membership change, as the events log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MembershipChange {
    /// A node joined as a learner (promoted to voter once caught up).
    Added { node: u64, address: String },
    /// A node was removed from the membership.
    Removed { node: u64 },
}

impl Command {
    /// The key a batchable command writes: `Some` for `KvPut` and `KvDelete`, which may share a
    /// log entry with writes to other keys.
    pub fn batch_key(&self) -> Option<&str> {
        match self {
            Command::KvPut { key, .. } | Command::KvDelete { key, .. } => Some(key),
            _ => None,
        }
    }
}
