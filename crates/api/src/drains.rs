//! Drains (SPEC §3): the requests, the two answers (a dry run's plan, a started drain), and the
//! planner's explanations they carry — why a move is blocked, what it waits for, what a drain
//! costs a partition, how fast it goes. The scheduler computes these; they are declared here,
//! once, because they are what the API answers (the scheduler depends on this crate for them,
//! which keeps both pure: no I/O, no transport).

use drover_types::{DrainIntent, PartitionId, PlannedMove, WorkerId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainOneRequest {
    /// Plan and answer the verdict, committing nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Start the drain even if it cannot finish (it stays Draining, blocked); without it such
    /// a drain is refused with `drain_infeasible`.
    #[serde(default)]
    pub allow_blocked: bool,
    /// Why (SPEC §1: optional, at most 256 bytes), recorded on the worker and in its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub reason: Option<String>,
    /// When the drain should have finished, in ms since the Unix epoch (SPEC §3); past it the
    /// drain is reported overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Or how long from now (the leader's clock): `30m`, `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "30m"))]
    pub deadline_in: Option<String>,
    /// What the deadline does: `report` (default) marks the drain overdue; `force` also
    /// disables its workers the forced way where every partition keeps a majority.
    #[serde(default)]
    pub on_deadline: drover_types::OnDeadline,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainSetRequest {
    /// The workers to drain as one operation (a rack, a zone), each named once.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<WorkerId>, min_items = 1))]
    pub workers: Vec<String>,
    /// Plan and answer the verdict, committing nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Start the drain even if it cannot finish (it stays Draining, blocked); without it such
    /// a drain is refused with `drain_infeasible`.
    #[serde(default)]
    pub allow_blocked: bool,
    /// Why (SPEC §1: optional, at most 256 bytes), recorded on the worker and in its event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 256))]
    pub reason: Option<String>,
    /// When the drain should have finished, in ms since the Unix epoch (SPEC §3); past it the
    /// drain is reported overdue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
    /// Or how long from now (the leader's clock): `30m`, `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(example = "30m"))]
    pub deadline_in: Option<String>,
    /// What the deadline does: `report` (default) marks the drain overdue; `force` also
    /// disables its workers the forced way where every partition keeps a majority.
    #[serde(default)]
    pub on_deadline: drover_types::OnDeadline,
}

/// A dry run's answer: the moves a drain started from this state would make, and whether it
/// can finish.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainPreview {
    /// Always true here.
    pub dry_run: bool,
    /// Whether every replica has a target.
    pub feasible: bool,
    pub moves: Vec<PlannedMove>,
    pub blocked: Vec<Blocked>,
    /// Partitions that would lose zone spread or their preferred leader (the drain is not
    /// refused for them).
    pub warnings: Vec<DrainWarning>,
}

/// A started drain: the committed intent with its move plan. An infeasible drain starts too;
/// its workers stay Draining with `blocked` reasons.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainStarted {
    /// Always false here.
    pub dry_run: bool,
    pub feasible: bool,
    pub drain: DrainIntent,
    pub blocked: Vec<Blocked>,
    /// Partitions that lose zone spread or their preferred leader: the same as the dry run's.
    pub warnings: Vec<DrainWarning>,
}

// A drain's answer. A started drain's body has no `moves` (they are in its `drain`), so it never
// reads as a preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DrainAnswer {
    Preview(DrainPreview),
    Started(DrainStarted),
}

impl DrainAnswer {
    pub fn dry_run(&self) -> bool {
        matches!(self, DrainAnswer::Preview(_))
    }

    pub fn feasible(&self) -> bool {
        match self {
            DrainAnswer::Preview(p) => p.feasible,
            DrainAnswer::Started(s) => s.feasible,
        }
    }

    /// The moves, whichever kind of answer this is.
    pub fn planned_moves(&self) -> &[PlannedMove] {
        match self {
            DrainAnswer::Preview(p) => &p.moves,
            DrainAnswer::Started(s) => &s.drain.moves,
        }
    }

    /// The committed intent (real drains).
    pub fn drain(&self) -> Option<&DrainIntent> {
        match self {
            DrainAnswer::Preview(_) => None,
            DrainAnswer::Started(s) => Some(&s.drain),
        }
    }

    pub fn blocked(&self) -> &[Blocked] {
        match self {
            DrainAnswer::Preview(p) => &p.blocked,
            DrainAnswer::Started(s) => &s.blocked,
        }
    }

    /// Partitions that lose zone spread or their preferred leader.
    pub fn warnings(&self) -> &[DrainWarning] {
        match self {
            DrainAnswer::Preview(p) => &p.warnings,
            DrainAnswer::Started(s) => &s.warnings,
        }
    }
}

/// Machine-readable reasons a partition or worker cannot progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum BlockCode {
    /// No Active, live worker that does not already hold the partition can take it.
    NoCandidate,
    /// Candidates exist, but only in zones the partition already uses while rule 2 asks for a
    /// new one.
    ZoneConstraint,
    /// The move waits for a throttle slot.
    Throttled,
    /// A make or break step waits for the worker's acknowledgement.
    AwaitingAck,
    /// An operator paused the scheduler (SPEC §3): the move starts once it is resumed.
    Paused,
    /// The mass-failure brake holds (SPEC §3): nothing is re-created until it is released.
    MassFailure,
}

impl BlockCode {
    /// Whether waiting can resolve it (acks arrive, throttle slots free up).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            BlockCode::Throttled
                | BlockCode::AwaitingAck
                | BlockCode::Paused
                | BlockCode::MassFailure
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Blocked {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub partition: PartitionId,
    /// The worker whose replica is stuck, when there is one.
    pub worker: Option<WorkerId>,
    pub code: BlockCode,
    pub detail: String,
}

/// What a drain costs a partition it does not block (machine-readable, SPEC §3: "dry runs and
/// drain answers also warn of partitions that would lose zone spread or their preferred
/// leader").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WarningCode {
    /// Once the planned moves land, the partition's replicas span fewer distinct zones than
    /// they do now (the zones left cannot take the drained zone's share).
    LostZoneSpread,
    /// The partition's preferred leader is on a drained worker: the scheduler picks another
    /// leader among the replicas that stay as soon as the drain starts.
    LeaderMoves,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainWarning {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub partition: PartitionId,
    pub code: WarningCode,
    /// For `leader_moves`, the preferred leader now (a drained worker); for
    /// `lost_zone_spread`, none.
    pub worker: Option<WorkerId>,
    /// Distinct zones the partition's replicas span now.
    pub zones_before: u32,
    /// Distinct zones they span once the drain's planned moves have landed (a replica with no
    /// target stays where it is).
    pub zones_after: u32,
    pub detail: String,
}

/// What a waiting move waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WaitOn {
    /// A slot under `max_moves_per_worker` on `worker` (the draining worker itself or
    /// the move's target); with no `worker`, every worker that could take the move is at it.
    WorkerSlot,
    /// A slot under `max_moves_total`.
    TotalSlot,
    /// The move's planned target is suspect: it is waited for, not replaced, while it may come
    /// back (SPEC §3: only moves whose target became unusable are replanned).
    SuspectTarget,
    /// The joining replica on `worker` has not acknowledged its catch-up yet.
    JoinAck,
    /// The leaving replica on `worker` has not acknowledged its release yet.
    ReleaseAck,
}

/// Moves that wait for the same thing, counted once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wait {
    /// `throttled` or `awaiting_ack`.
    pub code: BlockCode,
    pub on: WaitOn,
    /// The worker waited on, when there is one.
    pub worker: Option<WorkerId>,
    /// How many moves wait for it.
    pub moves: u32,
    /// Their partitions.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u32>))]
    pub partitions: Vec<PartitionId>,
    /// For a slot: the moves in flight that hold it (on `worker`, or in the cluster).
    pub in_flight: Option<u32>,
    /// For a slot: the limit (`max_moves_per_worker` or `max_moves_total`).
    pub limit: Option<u32>,
    pub detail: String,
}

/// How fast a draining worker's moves complete, and when it will be empty at that pace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DrainRate {
    /// The span the rate is measured over: the last `window` of the drain (shorter while the
    /// drain is younger, or when older events were compacted).
    pub window_ms: u64,
    /// The worker's replicas released (moves completed) within it.
    pub moves_completed: u32,
    pub moves_per_minute: f64,
    /// Replicas the worker still holds.
    pub remaining: u32,
    /// `remaining` at `moves_per_minute`; none until a move has completed within the window.
    pub eta_ms: Option<u64>,
}
