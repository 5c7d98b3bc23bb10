//! What the API answers, as the client reads it. Replicated records are `drover-types`' own;
//! the views the server composes around them (pages, assignments, drain answers) are declared
//! here. Unknown fields are ignored, so a newer server does not break an older client.

use std::collections::BTreeMap;

use drover_types::{
    DrainIntent, Event, KeyRange, Partition, PlannedMove, ReplicaRole, Table, Worker, WorkerState,
};
use serde::{Deserialize, Serialize};

pub use drover_scheduler::{
    BlockCode, Blocked, DrainRate, DrainWarning, Wait, WaitOn, WarningCode,
};

/// `GET /v1/cluster`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// The node that answered.
    pub node: u64,
    /// That node's Raft role (`Leader`, `Follower`, `Learner`, `Candidate`).
    pub state: String,
    pub leader: Option<u64>,
    pub term: u64,
    pub members: Vec<Member>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub state_version: u64,
    #[serde(default)]
    pub snapshot_index: Option<u64>,
    #[serde(default)]
    pub purged_index: Option<u64>,
    /// The scheduler's brakes: an operator's pause, if one holds.
    #[serde(default)]
    pub brakes: drover_types::Brakes,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: u64,
    pub address: String,
    /// `voter` or `learner`.
    pub role: String,
}

/// One page of a list, with the cursor to continue from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T, C = String> {
    pub items: Vec<T>,
    pub more: bool,
    pub next_cursor: Option<C>,
}

/// Registration: what an agent announces about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub incarnation: u64,
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `GET /v1/workers/{id}`: the record plus what the answering node knows about it. Liveness and
/// drain progress come only from the leader.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    #[serde(flatten)]
    pub record: Worker,
    #[serde(default)]
    pub replicas: Vec<HeldReplica>,
    #[serde(default)]
    pub liveness: Option<String>,
    #[serde(default)]
    pub drain: Option<DrainProgress>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldReplica {
    pub partition: u32,
    pub role: ReplicaRole,
    pub since: u64,
}

/// Progress of a draining worker, and what holds it up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrainProgress {
    pub drain: Option<u64>,
    pub requested_ms: Option<u64>,
    pub replicas_total: Option<u32>,
    pub replicas_remaining: u64,
    pub moves_in_flight: u64,
    /// One entry per partition.
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// The transient ones of `blocked`, one per thing waited for.
    #[serde(default)]
    pub waits: Vec<Wait>,
    #[serde(default)]
    pub rate: Option<DrainRate>,
}

/// A state change's answer: the record, or — for a forced disable — the record and how many
/// partitions fell below their replication factor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StateChange {
    Forced {
        worker: Worker,
        partitions_below_rf: u32,
    },
    Changed(Worker),
}

impl StateChange {
    pub fn worker(&self) -> &Worker {
        match self {
            StateChange::Forced { worker, .. } | StateChange::Changed(worker) => worker,
        }
    }
}

/// `POST /v1/workers/{id}/heartbeat`: the liveness settings the agent's lease is built on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub worker: String,
    pub generation: u64,
    pub heartbeat_interval_ms: u64,
    pub suspect_after_ms: u64,
    pub dead_after_ms: u64,
    /// 0: this acknowledgement grants the lease; otherwise an older process of the worker may
    /// still hold one for this long, and this one holds none yet.
    #[serde(default)]
    pub lease_wait_ms: u64,
}

/// `GET /v1/workers/{id}/assignments`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignments {
    pub worker: String,
    pub state: WorkerState,
    pub generation: u64,
    pub dead: bool,
    /// Pass as `after` to wait for the next change.
    pub version: u64,
    pub replicas: Vec<Assignment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub partition: u32,
    pub key_range: KeyRange,
    pub role: ReplicaRole,
    /// Epoch at which this replica got its role: the epoch an acknowledgement names.
    pub since: u64,
    pub epoch: u64,
    /// Whether this worker is the partition's preferred leader.
    pub leader: bool,
    pub peers: Vec<Peer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub worker: String,
    pub address: Option<String>,
    pub role: ReplicaRole,
}

/// A drain's answer: the plan and verdict (a dry run) or the committed intent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReply {
    pub dry_run: bool,
    pub feasible: bool,
    /// The plan (dry runs).
    #[serde(default)]
    pub moves: Vec<PlannedMove>,
    /// The committed intent with its plan (real drains).
    #[serde(default)]
    pub drain: Option<DrainIntent>,
    #[serde(default)]
    pub blocked: Vec<Blocked>,
    /// Partitions that lose zone spread or their preferred leader.
    #[serde(default)]
    pub warnings: Vec<DrainWarning>,
}

impl DrainReply {
    /// The moves, whichever kind of answer this is.
    pub fn planned_moves(&self) -> &[PlannedMove] {
        match &self.drain {
            Some(d) => &d.moves,
            None => &self.moves,
        }
    }
}

/// `GET /v1/partitions/by-key/{key}`: the owning partition and where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Located {
    pub partition: Partition,
    pub serving: Vec<Endpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub worker: String,
    pub address: String,
    pub zone: Option<String>,
    pub leader: bool,
}

/// A KV entry with its key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvItem {
    pub key: String,
    pub value: String,
    pub version: u64,
    pub create_version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvDeleted {
    pub key: String,
    pub version: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub more: bool,
    /// Pass as `after` to continue.
    pub next_after: u64,
}

/// `DELETE /v1/workers/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    pub id: String,
    pub removed: bool,
    #[serde(default)]
    pub generation: Option<u64>,
}

pub type CreatedTable = Table;

/// A backup: the codec-encoded state and the state version it was taken at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub bytes: bytes::Bytes,
    pub version: u64,
}
