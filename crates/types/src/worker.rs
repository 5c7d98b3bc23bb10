//! The worker record and its lifecycle states (SPEC §1).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::brakes::{Cordon, Maintenance};
use crate::ids::WorkerId;

/// Where a worker is in its lifecycle. Serialized in lower case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WorkerState {
    /// Registered, still initializing: the scheduler places nothing on it.
    Provisioning,
    /// Serving: the scheduler places replicas on it.
    Active,
    /// Leaving: nothing new is placed; its replicas move away make-before-break.
    Draining,
    /// Left: holds no replica; safe to stop or remove.
    Disabled,
}

impl WorkerState {
    pub const ALL: [WorkerState; 4] = [
        WorkerState::Provisioning,
        WorkerState::Active,
        WorkerState::Draining,
        WorkerState::Disabled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Provisioning => "provisioning",
            WorkerState::Active => "active",
            WorkerState::Draining => "draining",
            WorkerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The replicated part of a worker record (SPEC §1). Soft fields (liveness, drain progress) are
/// computed by the leader and are not stored here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Worker {
    pub id: WorkerId,
    /// Bumped by every registration with a new incarnation, and by re-registration after death;
    /// agent calls carrying an older one are fenced.
    pub generation: u64,
    /// The random number the registering agent process picked at start.
    pub incarnation: u64,
    pub address: String,
    pub zone: Option<String>,
    /// Placement weight, at least 1.
    pub capacity: u32,
    pub labels: BTreeMap<String, String>,
    pub state: WorkerState,
    /// Committed `dead at generation` verdict for the current generation.
    pub dead: bool,
    /// State version of the last change to this record.
    pub version: u64,
    /// Proposer time of the last change of `state`, in milliseconds since the Unix epoch.
    pub state_since_ms: u64,
    /// State version of the last change to what this worker is assigned: its record, or any
    /// replica of a partition it holds or held (roles, epochs, peers). Long polls wait on it.
    pub assignments_version: u64,
    /// Why `state` last changed, as its requester gave it (SPEC §1; none if not given).
    pub state_reason: Option<String>,
    /// Who last changed `state`: `admin`, `worker:<id>` or `scheduler` (SPEC §1). (`default`
    /// only lets JSON from an older server decode; the log's encoding is unaffected.)
    #[serde(default)]
    pub state_actor: String,
    /// Cordons by holder name (SPEC §1): while any is held, no new replica is placed here; the
    /// worker keeps and serves what it holds.
    #[serde(default)]
    pub cordons: BTreeMap<String, Cordon>,
    /// A maintenance in progress (SPEC §1): a restart without data movement.
    #[serde(default)]
    pub maintenance: Option<Maintenance>,
    /// Proposer time of the committed death verdict, while `dead` (the mass-failure brake
    /// counts the deaths of the last `dead_after`).
    #[serde(default)]
    pub dead_at_ms: Option<u64>,
}

impl Worker {
    /// Whether any holder cordons the worker.
    pub fn is_cordoned(&self) -> bool {
        !self.cordons.is_empty()
    }

    pub fn in_maintenance(&self) -> bool {
        self.maintenance.is_some()
    }

    /// Whether the planner may place a new replica here, as far as the operator's flags go: not
    /// cordoned, not in maintenance (its state and liveness are the planner's to judge).
    pub fn takes_new_replicas(&self) -> bool {
        !self.is_cordoned() && !self.in_maintenance()
    }
}
