//! A simulator for tests and benchmarks: builds clusters through the real `apply`, commits a
//! plan's steps as commands, plays the agents' acknowledgements, and runs rounds until the
//! plan is settled. Everything goes through `drover_types::apply`, so what it shows is what a
//! cluster would do.

use std::collections::BTreeMap;

use drover_types::{
    Actor, ClusterState, Command, LogPosition, Outcome, Proposal, Registration, Rejection,
    ReplicaRole, WorkerId, WorkerState, apply,
};

use crate::{Liveness, Plan, PlannerConfig, Step, plan};

/// A cluster state with its next log index, driven by commands.
#[derive(Clone, Debug, Default)]
pub struct Sim {
    pub state: ClusterState,
    pub index: u64,
    /// The term of the entries `run` applies (death verdicts carry it).
    pub term: u64,
    pub now_ms: u64,
}

impl Sim {
    pub fn new() -> Self {
        Self {
            state: ClusterState::default(),
            index: 0,
            term: 1,
            now_ms: 1_000_000,
        }
    }

    pub fn run(&mut self, command: Command) -> Result<Outcome, Rejection> {
        self.index += 1;
        self.now_ms += 1;
        apply(
            &mut self.state,
            LogPosition::new(self.term, self.index),
            &Proposal {
                at_ms: self.now_ms,
                command,
            },
        )
    }

    /// Registers and activates a worker.
    pub fn add_worker(&mut self, id: &str, zone: Option<&str>, capacity: u32) {
        let worker = WorkerId::from(id);
        let reg = Registration {
            worker: worker.clone(),
            incarnation: 1,
            address: "10.0.0.1:80".into(),
            zone: zone.map(str::to_owned),
            capacity,
            labels: BTreeMap::new(),
        };
        let _ = self.run(Command::Register(reg));
        let _ = self.run(Command::SetState {
            worker,
            to: WorkerState::Active,
            by: Actor::Operator,
            generation: None,
            expected_version: None,
            force: false,
            reason: None,
        });
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
