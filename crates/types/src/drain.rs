//! Drain intents and their committed move plans (SPEC §3).
//!
//! Starting a drain commits the intent together with the planner's moves, so a new leader
//! continues the same plan and a dry run previews exactly what will happen.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::ids::{PartitionId, WorkerId};

/// One planned move of a drained worker's replica.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlannedMove {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub partition: PartitionId,
    pub from: WorkerId,
    /// Target, or none while the planner has no candidate (the drain is blocked on it).
    pub to: Option<WorkerId>,
    /// The partition epoch the planner read; a plan built on an older epoch is refused.
    pub epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainIntent {
    /// The state version that started the drain.
    pub id: u64,
    /// Workers still draining under this intent.
    pub workers: BTreeSet<WorkerId>,
    /// Proposer time of the drain request.
    pub requested_ms: u64,
    /// Replicas the drained workers held when the drain started.
    pub replicas_total: u32,
    /// Whether a move plan has been committed (a drain begun by a bare state change gets its
    /// plan from the scheduler).
    pub planned: bool,
    /// Sorted by (partition, from); at most one move per (partition, from).
    pub moves: Vec<PlannedMove>,
    /// Proposer time by which the drain should have finished (SPEC §3 drain deadline).
    #[serde(rename = "deadline")]
    pub deadline_ms: Option<u64>,
    /// What the scheduler does once the deadline passes.
    pub on_deadline: OnDeadline,
    /// Proposer time the scheduler found it overdue, once it did.
    pub overdue_since_ms: Option<u64>,
}

/// What a drain's deadline does (SPEC §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum OnDeadline {
    /// Mark the drain overdue (record, event, metric) with its blocked reasons.
    #[default]
    Report,
    /// Also disable its workers the forced way, but only those whose every partition keeps a
    /// majority of healthy serving replicas without them.
    Force,
}

impl OnDeadline {
    pub fn as_str(self) -> &'static str {
        match self {
            OnDeadline::Report => "report",
            OnDeadline::Force => "force",
        }
    }
}
