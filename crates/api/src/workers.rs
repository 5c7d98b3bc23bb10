//! `/v1/workers`: registration, records with what the leader knows about them, lifecycle state
//! changes, removal, heartbeats and assignments (SPEC §1, §4).

use std::collections::BTreeMap;
use std::fmt;

use drover_types::{KeyRange, ReplicaRole, Worker, WorkerId, WorkerState};
use serde::{Deserialize, Serialize};

use crate::drains::{Blocked, DrainRate, Wait};

/// A worker's liveness as the leader sees it (SPEC §1; `unknown` is shown as `suspect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Liveness {
    Alive,
    /// Missed heartbeats for `suspect_after`.
    Suspect,
    /// Not heard at its generation since this node became leader, which was less than
    /// `suspect_after` ago: a new leader does not know yet. Nothing is placed on it, and nothing
    /// is moved because of it.
    Unknown,
    /// Declared dead at its current generation (a committed verdict).
    Dead,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Suspect => "suspect",
            Liveness::Unknown => "unknown",
            Liveness::Dead => "dead",
        }
    }
}

impl fmt::Display for Liveness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replica a worker holds, as shown on its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeldReplica {
    pub partition: u32,
    pub role: ReplicaRole,
    /// The partition epoch at which the replica took its role.
    pub since: u64,
}

/// Drain progress (SPEC §3), on a Draining worker's record, as the leader sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainProgress {
    /// The drain intent (the state version that started it), if one is committed.
    pub drain: Option<u64>,
    /// Proposer time of the drain request, in ms since the Unix epoch.
    pub requested_ms: Option<u64>,
    /// Replicas the drained workers held when the drain started.
    pub replicas_total: Option<u32>,
    /// Replicas this worker still holds.
    pub replicas_remaining: usize,
    pub moves_in_flight: usize,
    /// Why moves of this worker's replicas cannot progress now, one entry per partition.
    pub blocked: Vec<Blocked>,
    /// The transient entries of `blocked` (throttled, awaiting an acknowledgement), one per
    /// thing waited for: a worker's or the cluster's move slot (with its in-flight count and
    /// limit), a suspect planned target, an acknowledgement.
    pub waits: Vec<Wait>,
    /// Moves completed per minute over the last minutes, and the ETA at that pace.
    pub rate: Option<DrainRate>,
}

/// A worker record with what is not in it: the replicas it holds (replicated) and, when this
/// node leads, its liveness and drain progress (leader soft state).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerView {
    #[serde(flatten)]
    pub record: Worker,
    pub replicas: Vec<HeldReplica>,
    /// Only when the answering node leads (it is soft state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Liveness>,
    /// Only on a Draining worker, and only from the leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drain: Option<DrainProgress>,
}

/// The answer to a forced disable: the record, and how many partitions fell below RF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForcedDisable {
    pub worker: Worker,
    pub partitions_below_rf: u32,
}

/// A state change's answer: the worker record, or for a forced disable the record with the
/// number of partitions that fell below RF.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum StateChanged {
    // A forced disable's body lacks the record's own fields, so it never reads as a record.
    Worker(Worker),
    ForcedDisable(ForcedDisable),
}

impl StateChanged {
    /// The record after the change, whichever kind of answer this is.
    pub fn worker(&self) -> &Worker {
        match self {
            StateChanged::Worker(worker)
            | StateChanged::ForcedDisable(ForcedDisable { worker, .. }) => worker,
        }
    }
}

/// A removed worker: its tombstone keeps the last generation, so a stale agent stays fenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerRemoved {
    pub id: WorkerId,
    pub removed: bool,
    pub generation: u64,
}

// `PUT /v1/workers/{id}`: what an agent announces about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// The random number the agent process picked at start: the same one is an idempotent
    /// retry, a new one a restart (generation + 1). At least 1.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub incarnation: u64,
    /// Where the worker serves, `host:port` (at most 256 bytes).
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 256,
            pattern = r"^[^\s\u0000-\u001f\u007f-\u009f]+:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"
        )
    )]
    pub address: String,
    /// Failure domain: 1-64 of `[A-Za-z0-9._-]`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._-]{1,64}$"))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Placement weight, at least 1 (default 1).
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// At most 32 pairs; keys 1-256 bytes, values at most 256 bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerPage {
    pub items: Vec<WorkerView>,
    /// Whether more workers match after this page.
    pub more: bool,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

// `POST /v1/workers/{id}/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StateRequest {
    /// The state to move to (SPEC §1's transitions; never `provisioning`).
    pub state: WorkerState,
    /// Compare-and-set on the worker's version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// Active/Draining → Disabled at once, dropping the worker's replicas.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
    /// Agents send their generation; it fences a stale process. Required with the worker
    /// token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// Why (SPEC §1: optional, at most 256 bytes), recorded on the worker and in its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub reason: Option<String>,
}

impl StateRequest {
    /// A plain request for `state`: no compare-and-set, no force, no generation.
    pub fn to(state: WorkerState) -> Self {
        StateRequest {
            state,
            expected_version: None,
            force: false,
            generation: None,
            reason: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Peer {
    pub worker: String,
    /// The peer worker's address, if its record is still there.
    pub address: Option<String>,
    pub role: ReplicaRole,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignment {
    pub partition: u32,
    pub key_range: KeyRange,
    pub role: ReplicaRole,
    /// The epoch at which this replica took its role: acknowledgements name it.
    pub since: u64,
    /// The partition's epoch, a fencing token.
    pub epoch: u64,
    /// Whether this worker is the partition's preferred leader.
    pub leader: bool,
    pub peers: Vec<Peer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Assignments {
    pub worker: String,
    pub state: WorkerState,
    pub generation: u64,
    pub dead: bool,
    /// Pass as `after` to wait for the next change.
    pub version: u64,
    pub replicas: Vec<Assignment>,
}

// `POST /v1/workers/{id}/heartbeat`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatRequest {
    /// The generation the agent registered with.
    pub generation: u64,
    /// This process has stopped serving for good and gives its lease up: a newer process of
    /// the worker may hold one at once instead of waiting out this one's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub release: bool,
}

/// A heartbeat's acknowledgement, with the liveness settings the agent's lease depends on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HeartbeatAck {
    pub worker: WorkerId,
    pub generation: u64,
    pub heartbeat_interval_ms: u64,
    pub suspect_after_ms: u64,
    /// The lease this acknowledgement grants runs until `sent + dead_after − margin`.
    pub dead_after_ms: u64,
    /// 0: the lease is granted. Otherwise an older process of this worker may still hold a
    /// lease for this long, so this one holds none yet (the heartbeat still counts for
    /// liveness).
    pub lease_wait_ms: u64,
    /// An operator asked to recommission this disabled worker (`POST
    /// /v1/workers/{id}/recommission`): register again — a new generation, Provisioning — and
    /// ask for Active when ready.
    #[serde(default)]
    pub register_again: bool,
}

/// A recommissioned worker: its agent registered again, so it is back in Provisioning at a new
/// generation (Active once the agent says it is ready).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommissioned {
    pub worker: Worker,
    /// The generation that was disabled.
    pub previous_generation: u64,
}
