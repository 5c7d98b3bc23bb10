//! Drover's placement planner (SPEC §3): a pure, deterministic function from the replicated
//! state and the leader's soft liveness view to the next make-before-break steps.
//!
//! [`plan`] is one scheduling round: for every partition it decides at most one step that
//! changes the partition's epoch (add a joining replica, mark a serving one leaving, withdraw a
//! stale joiner), each carrying the epoch it read as its precondition, plus preferred-leader
//! changes and Draining → Disabled for emptied workers. It keeps no memory between rounds: an
//! in-flight move is recognized from the replica roles it left behind. Applying a round's steps
//! and the agents' acknowledgements, then planning again, converges to a settled state whose
//! plan is empty. [`plan_drain`] computes the moves a drain will make (what `StartDrain`
//! commits, and what a dry run shows).
//!
//! Rules, in priority order: (1) replicas only on Active, live, unsuspected, uncordoned
//! workers, one per worker; (2) distinct zones while at least RF zones have candidates, else as even as possible;
//! (3) each worker within floor/ceil of its capacity share of its zone's replicas, zones as even
//! as rule 2 allows, preferred leaders balanced too; (4) minimal movement; (5) restore > drain >
//! rebalance; (6) throttles on moves in flight.

mod brake;
mod drain;
mod expiry;
mod flow;
mod progress;
mod round;
#[cfg(feature = "test-util")]
pub mod sim;
mod target;
mod topology;
mod what_if;

use std::collections::BTreeSet;

use drover_types::{Command, PartitionId, WorkerId, WorkerState};
use serde::{Deserialize, Serialize};

// The explanations the planner gives (blocked reasons, waits, drain warnings and rates) are
// what the API answers: declared once, in the wire crate.
pub use brake::{DeathVerdicts, judge_deaths};
pub use drain::{DrainPlan, plan_drain};
pub use drover_api::{BlockCode, Blocked, DrainRate, DrainWarning, Wait, WaitOn, WarningCode};
pub use drover_api::{Shortfall, WhatIf, WhatIfAction};
pub use expiry::{due_expiries, overdue_drains};
pub use progress::{RATE_WINDOW_MS, drain_rate, waits};
pub use round::plan;
pub use topology::{ZoneKey, zone_key};
pub use what_if::{majority, what_if};

/// The leader's soft view of worker liveness, and its clock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Workers that missed heartbeats for `suspect_after` (or that a new leader has not heard
    /// from yet): they keep their replicas but get no new ones.
    pub suspect: BTreeSet<WorkerId>,
    /// The workers of `suspect` that are there only because this leader has not heard from
    /// them yet (right after a control-plane failover). Nothing is placed on them, but nothing
    /// changes because of them either: a preferred leader on one stays, and the round starts no
    /// move while any is unheard (placing on whoever happened to heartbeat first would need
    /// undoing once the rest are heard).
    pub unheard: BTreeSet<WorkerId>,
    /// The leader's wall clock, in milliseconds since the Unix epoch (for join timeouts).
    pub now_ms: u64,
}

impl Liveness {
    pub fn is_suspect(&self, w: &WorkerId) -> bool {
        self.suspect.contains(w)
    }
}

/// Scheduler knobs (SPEC §3 defaults).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannerConfig {
    /// Most moves in flight touching one worker (as source or target).
    pub max_moves_per_worker: u32,
    /// Most moves in flight in the cluster.
    pub max_moves_total: u32,
    /// A joining replica not acknowledged for this long is withdrawn and its move replanned.
    pub join_timeout_ms: u64,
}

impl Default for PlannerConfig {
    fn default() -> Self {
        Self {
            max_moves_per_worker: 4,
            max_moves_total: 64,
            join_timeout_ms: 60_000,
        }
    }
}

/// Why a move exists (SPEC §3 rule 5, in priority order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The partition has fewer than RF healthy replicas.
    Restore,
    /// A replica sits on a draining worker.
    Drain,
    /// Zone spread or balance.
    Rebalance,
}

/// Why a preferred leader is (re)picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaderCause {
    /// The partition had no preferred leader.
    None,
    /// The leader stopped being a healthy serving replica on a usable worker (released,
    /// draining, suspect, dead).
    Unhealthy,
    /// The leader's worker leads more than its share (rule 3).
    Balance,
}

impl LeaderCause {
    /// The label the metrics use.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaderCause::None => "none",
            LeaderCause::Unhealthy => "unhealthy",
            LeaderCause::Balance => "balance",
        }
    }
}

/// One step to commit now. Each carries the partition epoch it was planned on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Make: add `worker` as a joining replica, to replace the serving replica on `replaces`
    /// (the move's source; none for a restore).
    Add {
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
        reason: Reason,
        replaces: Option<WorkerId>,
    },
    /// Initial placement of a partition that never held a replica (a new table): joining
    /// replicas on all of `workers` at once. No data moves, so no throttle counts it (SPEC §3).
    Place {
        partition: PartitionId,
        workers: Vec<WorkerId>,
        epoch: u64,
    },
    /// Break: the partition has enough healthy serving replicas without this one.
    Release {
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
        reason: Reason,
    },
    /// A joining replica timed out or its worker became unusable.
    Withdraw {
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
    },
    /// Pick a preferred leader (changes no epoch).
    SetLeader {
        partition: PartitionId,
        worker: WorkerId,
        epoch: u64,
        cause: LeaderCause,
    },
    /// A draining worker holds nothing any more.
    Disable { worker: WorkerId },
    /// Commit drain targets: the whole plan of a drain begun by a bare state change, or the
    /// moves replanned because their committed target became unusable. Comes before the round's
    /// adds, which change the epochs these moves were planned at.
    Plan {
        drain: u64,
        moves: Vec<drover_types::PlannedMove>,
    },
}

impl Step {
    /// The command that commits this step.
    pub fn command(&self) -> Command {
        match self.clone() {
            Step::Add {
                partition,
                worker,
                epoch,
                replaces,
                ..
            } => Command::AddReplica {
                partition,
                worker,
                expected_epoch: epoch,
                replaces,
            },
            Step::Place {
                partition,
                workers,
                epoch,
            } => Command::PlaceReplicas {
                partition,
                workers,
                expected_epoch: epoch,
            },
            Step::Release {
                partition,
                worker,
                epoch,
                ..
            } => Command::MarkLeaving {
                partition,
                worker,
                expected_epoch: epoch,
            },
            Step::Withdraw {
                partition,
                worker,
                epoch,
            } => Command::RemoveReplica {
                partition,
                worker,
                expected_epoch: epoch,
            },
            Step::SetLeader {
                partition,
                worker,
                epoch,
                ..
            } => Command::SetLeader {
                partition,
                leader: worker,
                expected_epoch: epoch,
            },
            Step::Disable { worker } => Command::SetState {
                worker,
                to: WorkerState::Disabled,
                by: drover_types::Actor::Scheduler,
                generation: None,
                expected_version: None,
                force: false,
                reason: Some("drained: it holds no replica".into()),
            },
            Step::Plan { drain, moves } => Command::PlanDrain { drain, moves },
        }
    }

    pub fn reason(&self) -> Option<Reason> {
        match self {
            Step::Add { reason, .. } | Step::Release { reason, .. } => Some(*reason),
            _ => None,
        }
    }

    /// Whether this step puts a new replica on a worker (a move's make step, or a placement):
    /// what waits until the liveness of every worker is known.
    pub fn adds_replica(&self) -> bool {
        matches!(self, Step::Add { .. } | Step::Place { .. })
    }
}

/// One round's decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub blocked: Vec<Blocked>,
    /// False when something cannot progress by waiting (no candidate for a replica).
    pub feasible: bool,
}

impl Plan {
    /// Steps that start a move, by reason.
    pub fn adds(&self, reason: Reason) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Add { reason: r, .. } if *r == reason))
            .count()
    }
}
