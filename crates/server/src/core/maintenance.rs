//! A worker's maintenance as the leader starts it (SPEC §1 "Cordon and maintenance"): `apply`
//! checks the replicated half of the disruption budget (dead verdicts, other maintenances) on
//! every node, so two concurrent requests cannot both pass; the leader adds the half only it
//! knows — the workers it does not hear now — before it proposes.

use drover_api::Liveness;
use drover_types::{Actor, Command, Rejection, Response, Worker, WorkerId};

use super::error::{Error, Result};
use super::node::Node;

/// What an operator or the worker's agent asks: the maintenance of `worker` until `until_ms`
/// (on the leader's clock, which judges deaths and the expiry).
#[derive(Clone, Debug)]
pub struct EnterMaintenance {
    pub worker: WorkerId,
    pub reason: String,
    pub until_ms: u64,
    pub by: Actor,
    /// The agent's generation, when the agent asks.
    pub generation: Option<u64>,
}

impl Node {
    /// Puts a worker in maintenance, or renews its maintenance (which the budget already
    /// counts), and returns its record.
    pub async fn enter_maintenance(&self, req: EnterMaintenance) -> Result<Worker> {
        {
            let guard = self.state().read();
            let s = &guard.state;
            if s.workers
                .get(&req.worker)
                .is_some_and(|w| !w.in_maintenance())
            {
                let now = tokio::time::Instant::now();
                let unheard = |w: &WorkerId| {
                    s.workers.get(w).is_some_and(|x| {
                        !matches!(self.liveness_of(s, x, now), Some(Liveness::Alive) | None)
                    })
                };
                let short = s.budget_shortfall(&req.worker, unheard);
                if !short.is_empty() {
                    return Err(Error::Rejected(Rejection::budget_exceeded(
                        &format!(
                            "maintenance of {}, counting the workers not heard from now,",
                            req.worker
                        ),
                        "their disruption budget of",
                        short,
                    )));
                }
            }
        }
        let outcome = self
            .propose(Command::EnterMaintenance {
                worker: req.worker,
                reason: req.reason,
                until_ms: req.until_ms,
                by: req.by,
                generation: req.generation,
            })
            .await?;
        match outcome.response {
            Response::Worker(w) => Ok(w),
            other => Err(Error::outcome_unknown(
                format!("a maintenance was answered as {other:?}"),
                None,
            )),
        }
    }
}
