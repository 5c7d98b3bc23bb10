//! Commands: every mutation of the replicated state, as proposed to Raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::drain::{OnDeadline, PlannedMove};
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

/// Who asks for a worker state change; SPEC §1's "who" column is enforced by `apply`. Records
/// and events name it as SPEC §1's actor ([`Actor::name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    Operator,
    Agent,
    Scheduler,
}

impl Actor {
    /// SPEC §1's actor on records and events: `admin`, `worker:<id>` (an agent acts for the
    /// worker it is) or `scheduler`.
    pub fn name(self, worker: &WorkerId) -> String {
        match self {
            Actor::Operator => ADMIN.to_owned(),
            Actor::Agent => format!("worker:{worker}"),
            Actor::Scheduler => SCHEDULER.to_owned(),
        }
    }
}

/// The actor of operator requests (the admin token, or a node running open).
pub const ADMIN: &str = "admin";
/// The actor of the leader's own decisions.
pub const SCHEDULER: &str = "scheduler";

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
        /// Why, as the requester gave it (SPEC §1: optional, ≤ 256 bytes).
        reason: Option<String>,
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
        /// Why, recorded on each worker's state change (optional, ≤ 256 bytes).
        reason: Option<String>,
        /// Proposer time by which it should finish, and what then (SPEC §3).
        deadline_ms: Option<u64>,
        on_deadline: OnDeadline,
    },
    /// The scheduler found drain `drain` unfinished past its deadline; `blocked` is why, in
    /// words, as the round that found it saw it.
    DrainOverdue { drain: u64, blocked: Vec<String> },
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
    /// KV writes to distinct keys as one log entry: the first group commit, which releases
    /// before [`Command::Group`] proposed. Kept to replay their logs; no longer proposed.
    /// Each is applied in order as if alone and answered on its own, at the entry's index.
    Batch(Vec<Command>),
    /// Records a committed Raft membership change in the events log, so that an audit of the
    /// cluster's history shows it beside worker transitions. Proposed by the leader after the
    /// change itself committed; it changes nothing else.
    RecordMembership(MembershipChange),
    /// An operator's cordon of `worker` under `holder` (SPEC §1): placed, or its reason and
    /// expiry replaced. `until_ms` must be after the proposer's time.
    Cordon {
        worker: WorkerId,
        holder: String,
        reason: String,
        until_ms: Option<u64>,
    },
    /// Remove `holder`'s cordon; a holder that has none succeeds unchanged (safe retries).
    Uncordon { worker: WorkerId, holder: String },
    /// The scheduler lifts `holder`'s cordon at its `until`: only the cordon at `version` (not
    /// one renewed since), and only once the proposer's time has reached `until`.
    ExpireCordon {
        worker: WorkerId,
        holder: String,
        version: u64,
    },
    /// An operator pauses new moves (SPEC §3), or replaces the reason and expiry of a pause.
    PauseScheduler {
        reason: String,
        until_ms: Option<u64>,
    },
    /// An operator ends the pause; not paused: succeeds unchanged.
    ResumeScheduler,
    /// The scheduler ends the pause at `version` once the proposer's time reached its `until`.
    ExpirePause { version: u64 },
    /// A worker enters maintenance (SPEC §1), or renews it: refused (`budget_exceeded`) if a
    /// partition would be left with fewer than `min_available` serving replicas on workers
    /// neither dead nor in maintenance. Agents carry their generation.
    EnterMaintenance {
        worker: WorkerId,
        reason: String,
        until_ms: u64,
        by: Actor,
        generation: Option<u64>,
    },
    /// Ends a maintenance. An operator or the worker's agent lifts it (none: succeeds
    /// unchanged); the scheduler ends the one at `version`, only once its `until` has passed or
    /// a newer generation has registered.
    EndMaintenance {
        worker: WorkerId,
        by: Actor,
        generation: Option<u64>,
        version: Option<u64>,
    },
    /// The scheduler trips the mass-failure brake, holding back the deaths of `workers`.
    TripBrake {
        workers: Vec<WorkerId>,
        reason: String,
    },
    /// Releases the mass-failure brake. An operator's release keeps it from tripping again
    /// before `until_ms`; the scheduler releases the trip at `version` once its workers returned.
    ReleaseBrake {
        by: Actor,
        version: Option<u64>,
        reason: Option<String>,
        until_ms: Option<u64>,
    },
    /// Initial placement of a partition that has never held a replica (epoch 0, as the table
    /// was created): every worker of `workers` gets a joining replica at once, as one
    /// `AddReplica` each would, in order (epochs `expected_epoch` + 1, + 2, …). No data moves,
    /// so the scheduler does not count it against the move throttles (SPEC §3).
    PlaceReplicas {
        partition: PartitionId,
        workers: Vec<WorkerId>,
        expected_epoch: u64,
    },
    /// Commands the leader proposes as one log entry. Each is applied in order as if alone and
    /// answered on its own; all take the entry's index as their version. Either group commit —
    /// KV writes and acknowledgements, each with its own [`Command::batch_key`], distinct, so a
    /// key's version names exactly one write and compare-and-set stays exact — or one
    /// scheduling round's steps ([`Command::is_step`]), in the order planned. A variant of its
    /// own, not a wider `Batch`: a node of an older release cannot decode it and stops
    /// replicating, where it would have decoded a `Batch` and refused it — a silently
    /// different state.
    Group(Vec<Command>),
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
    /// The key a group-committed command writes: `Some` for `KvPut` and `KvDelete` (the KV key)
    /// and for `Acknowledge` (its replica, in a namespace no KV key can name: KV keys hold no
    /// control characters), which may share a log entry with writes to other keys.
    pub fn batch_key(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Command::KvPut { key, .. } | Command::KvDelete { key, .. } => Some(key.into()),
            Command::Acknowledge {
                partition, worker, ..
            } => Some(format!("\u{0}ack/{partition}/{worker}").into()),
            _ => None,
        }
    }

    /// Whether this holds commands of its own (a `Group`, or an older `Batch`): answered one
    /// result per command.
    pub fn is_group(&self) -> bool {
        matches!(self, Command::Batch(_) | Command::Group(_))
    }

    /// Whether this is a scheduling step, which one round's batch may hold: replica steps and
    /// leader choices, each with the epoch it was planned at.
    pub fn is_step(&self) -> bool {
        matches!(
            self,
            Command::AddReplica { .. }
                | Command::PlaceReplicas { .. }
                | Command::MarkLeaving { .. }
                | Command::RemoveReplica { .. }
                | Command::SetLeader { .. }
        )
    }
}
