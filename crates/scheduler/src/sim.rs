//! A simulator for tests and benchmarks: builds clusters through the real `apply`, commits a
//! plan's steps as commands, plays the agents' acknowledgements, and runs rounds until the
//! plan is settled. Everything goes through `drover_types::apply`, so what it shows is what a
//! cluster would do.

use std::ops::{Deref, DerefMut};

use drover_types::testing::Harness;
use drover_types::{Command, ReplicaRole, WorkerId};

use crate::{Liveness, Plan, PlannerConfig, Step, plan};

/// A cluster driven by commands (the types crate's [`Harness`], whose fields and methods it
/// derefs to), with the planner's rounds on top.
#[derive(Clone, Debug)]
pub struct Sim(Harness);

impl Deref for Sim {
    type Target = Harness;
    fn deref(&self) -> &Harness {
        &self.0
    }
}

impl DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Harness {
        &mut self.0
    }
}

impl Default for Sim {
    fn default() -> Self {
        Self::new()
    }
}

impl Sim {
    /// An empty cluster whose clock starts at 1,000 s and moves 1 ms per entry.
    pub fn new() -> Self {
        Self(Harness::starting_at(1_000_000, 1))
    }

    /// Applies `command` as the next entry ([`Harness::run`]; a method of its own so that a
    /// command can read the simulator's fields, `sim.run(… sim.term …)`).
    pub fn run(
        &mut self,
        command: Command,
    ) -> Result<drover_types::Outcome, drover_types::Rejection> {
        self.0.run(command)
    }

    /// Commits every step of `plan`; returns how many were accepted.
    pub fn commit(&mut self, plan: &Plan) -> usize {
        plan.steps
            .iter()
            .filter(|s| self.run(s.command()).is_ok())
            .count()
    }

    /// Acknowledges every joining and leaving replica, as healthy agents would.
    pub fn ack_all(&mut self) {
        self.ack_where(|_, _| true);
    }

    /// Acknowledges the joining and leaving replicas `pick` chooses (agents answer at their
    /// own pace: between two rounds some moves have finished a step and others not).
    pub fn ack_where(&mut self, mut pick: impl FnMut(u32, &WorkerId) -> bool) {
        let pending: Vec<(u32, WorkerId, u64)> = self
            .state
            .partitions
            .iter()
            .flat_map(|p| {
                p.replicas
                    .iter()
                    .filter(|r| r.role != ReplicaRole::Serving)
                    .map(move |r| (p.id, r.worker.clone(), r.since))
            })
            .collect();
        for (partition, worker, epoch) in pending {
            if !pick(partition, &worker) {
                continue;
            }
            let generation = self.state.workers.get(&worker).map_or(0, |w| w.generation);
            let _ = self.run(Command::Acknowledge {
                partition,
                worker,
                generation,
                epoch,
            });
        }
    }

    /// Plans, commits and acknowledges until a round plans no step (or `max_rounds` pass).
    /// Calls `each` with every plan before committing it. Returns the last (settled) plan.
    pub fn settle(
        &mut self,
        live: &Liveness,
        cfg: &PlannerConfig,
        max_rounds: usize,
        each: impl FnMut(&Sim, &Plan),
    ) -> (Plan, usize) {
        self.settle_acking(live, cfg, max_rounds, each, Sim::ack_all)
    }

    /// [`Self::settle`], with `ack` playing the agents between rounds.
    pub fn settle_acking(
        &mut self,
        live: &Liveness,
        cfg: &PlannerConfig,
        max_rounds: usize,
        mut each: impl FnMut(&Sim, &Plan),
        mut ack: impl FnMut(&mut Sim),
    ) -> (Plan, usize) {
        for round in 0..max_rounds {
            let live = Liveness {
                now_ms: self.now_ms,
                ..live.clone()
            };
            let p = plan(&self.state, &live, cfg);
            each(self, &p);
            let busy = self
                .state
                .partitions
                .iter()
                .any(|p| p.replicas.iter().any(|r| r.role != ReplicaRole::Serving));
            if p.steps.is_empty() && !busy {
                return (p, round);
            }
            self.commit(&p);
            ack(self);
        }
        let live = Liveness {
            now_ms: self.now_ms,
            ..live.clone()
        };
        (plan(&self.state, &live, cfg), max_rounds)
    }

    /// Counts steps by kind in a plan, for tests.
    pub fn count(plan: &Plan, f: impl Fn(&Step) -> bool) -> usize {
        plan.steps.iter().filter(|s| f(s)).count()
    }
}
