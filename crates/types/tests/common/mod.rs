//! Shared helpers for drover-types tests: a tiny harness that feeds proposals to `apply` with
//! increasing log indexes, as the Raft state machine does.
#![allow(dead_code)]

use std::collections::BTreeMap;

use drover_types::{
    Actor, ClusterState, Command, LogPosition, Outcome, Proposal, Registration, Rejection,
    WorkerId, WorkerState, apply,
};

#[derive(Debug)]
pub struct Harness {
    pub state: ClusterState,
    pub index: u64,
    /// The term of the entries `run` applies (the leader that appends them).
    pub term: u64,
    pub now_ms: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    pub fn new() -> Self {
        Self {
            state: ClusterState::default(),
            index: 0,
            term: 1,
            now_ms: 1_700_000_000_000,
        }
    }

    pub fn run(&mut self, command: Command) -> Result<Outcome, Rejection> {
        self.index += 1;
        self.now_ms += 10;
        apply(
            &mut self.state,
            LogPosition::new(self.term, self.index),
            &Proposal {
                at_ms: self.now_ms,
                command,
            },
        )
    }

    pub fn ok(&mut self, command: Command) -> Outcome {
        let c = format!("{command:?}");
        self.run(command)
            .unwrap_or_else(|e| panic!("{c} was rejected: {e}"))
    }

    pub fn register(&mut self, id: &str, incarnation: u64, zone: &str) -> Outcome {
        self.ok(register_cmd(id, incarnation, zone))
    }

    pub fn set_state(
        &mut self,
        id: &str,
        to: WorkerState,
        by: Actor,
        force: bool,
    ) -> Result<Outcome, Rejection> {
        let generation = self
            .state
            .workers
            .get(&WorkerId::from(id))
            .map(|w| w.generation);
        self.run(Command::SetState {
            worker: id.into(),
            to,
            by,
            generation,
            expected_version: None,
            force,
            reason: None,
        })
    }

    pub fn worker(&self, id: &str) -> &drover_types::Worker {
        &self.state.workers[&WorkerId::from(id)]
    }
}

pub fn register_cmd(id: &str, incarnation: u64, zone: &str) -> Command {
    Command::Register(Registration {
        worker: id.into(),
        incarnation,
        address: format!("127.0.0.1:{}", 9000 + incarnation % 1000),
        zone: Some(zone.to_owned()),
        capacity: 1,
        labels: BTreeMap::new(),
    })
}
