//! Drains as the leader plans and starts them (SPEC §3): with the same `plan_drain` the
//! scheduler executes, once this leader knows who is alive, against the state the commit is
//! checked against — and again if another commit moved a partition's epoch in between. A dry
//! run commits nothing; a drain that cannot finish is refused unless it asks `allow_blocked`.

use std::collections::BTreeSet;

use drover_api::{DrainAnswer, DrainPreview, DrainStarted};
use drover_scheduler::plan_drain;
use drover_types::{Command, RejectCode, Response as Applied, WorkerId};

use super::error::Error;
use super::node::Node;

/// How a drain is asked for.
#[derive(Clone, Debug, Default)]
pub struct DrainRequest {
    pub workers: BTreeSet<WorkerId>,
    pub dry_run: bool,
    pub allow_blocked: bool,
    pub reason: Option<String>,
    /// Proposer time by which it should finish, and what then (SPEC §3).
    pub deadline_ms: Option<u64>,
    pub on_deadline: drover_types::OnDeadline,
}

/// Why a drain was not started, besides the core's own errors.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// No worker with this id.
    #[error("no worker {0}")]
    UnknownWorker(WorkerId),
    /// Some replicas have nowhere to go and `allow_blocked` was not given; nothing changed.
    #[error("{0}")]
    Infeasible(String),
    /// `apply` answered a drain with something else: a bug.
    #[error("{0}")]
    Unexpected(&'static str),
    #[error(transparent)]
    Core(#[from] Error),
}

/// How many times a drain is planned again after its plan went stale under another commit.
const REPLANS: usize = 5;

impl Node {
    /// Plans the drain of `req.workers` and, unless it is a dry run, starts it. Call it on the
    /// leader (a follower forwards the request).
    pub async fn drain(&self, req: DrainRequest) -> Result<DrainAnswer, DrainError> {
        // A new leader plans only once it knows who is alive: the same plan as later, never a
        // `no_candidate` merely because it has not heard the workers yet.
        self.liveness_known().await;
        for _ in 0..REPLANS {
            let plan = {
                let guard = self.state().read();
                let s = &guard.state;
                if let Some(missing) = req.workers.iter().find(|w| !s.workers.contains_key(*w)) {
                    return Err(DrainError::UnknownWorker(missing.clone()));
                }
                let view = self.planner_view(s, &self.state().clock(), tokio::time::Instant::now());
                plan_drain(s, &view, &req.workers)
            };
            if req.dry_run {
                return Ok(DrainAnswer::Preview(DrainPreview {
                    dry_run: true,
                    feasible: plan.feasible,
                    moves: plan.moves,
                    blocked: plan.blocked,
                    warnings: plan.warnings,
                }));
            }
            if !plan.feasible && !req.allow_blocked {
                let stuck = plan.blocked.iter().filter(|b| !b.code.is_transient());
                let reasons: Vec<String> = stuck
                    .clone()
                    .take(5)
                    .map(|b| format!("partition {}: {}", b.partition, b.detail))
                    .collect();
                let count = stuck.count();
                return Err(DrainError::Infeasible(format!(
                    "the drain cannot finish: {count} replicas have nowhere to go ({}{}); nothing \
                     was changed — pass allow_blocked to start it anyway",
                    reasons.join("; "),
                    if count > reasons.len() { "; ..." } else { "" }
                )));
            }
            let command = Command::StartDrain {
                workers: req.workers.iter().cloned().collect(),
                moves: plan.moves.clone(),
                reason: req.reason.clone(),
                deadline_ms: req.deadline_ms,
                on_deadline: req.on_deadline,
            };
            match self.propose(command).await {
                Ok(outcome) => {
                    let Applied::Drain(intent) = outcome.response else {
                        return Err(DrainError::Unexpected(
                            "a drain was answered with something else",
                        ));
                    };
                    tracing::info!(
                        target: "drover::audit",
                        actor = "admin",
                        action = "drain",
                        workers = ?intent.workers,
                        drain = intent.id,
                        moves = intent.moves.len(),
                        feasible = plan.feasible,
                        warnings = plan.warnings.len(),
                        "drain started"
                    );
                    return Ok(DrainAnswer::Started(DrainStarted {
                        dry_run: false,
                        feasible: plan.feasible,
                        drain: intent,
                        blocked: plan.blocked,
                        warnings: plan.warnings,
                    }));
                }
                Err(Error::Rejected(r)) if r.code == RejectCode::StaleEpoch => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::unavailable(
            "placements kept changing while planning the drain; retry",
            self.leader(),
        )
        .into())
    }
}
