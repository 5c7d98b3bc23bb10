//! A test harness (feature `test-util`): feeds commands to [`apply`] with increasing log
//! indexes and a clock that moves a fixed step per entry, as the Raft state machine would. The
//! scheduler's simulator builds on it, so every crate's tests drive state one way.

use std::collections::BTreeMap;

use crate::{
    Actor, ClusterState, Command, LogPosition, Outcome, Proposal, Registration, Rejection, Worker,
    WorkerId, WorkerState, apply,
};

/// A cluster state with its next log index, driven by commands.
#[derive(Clone, Debug)]
pub struct Harness {
    pub state: ClusterState,
    /// The index of the last entry applied.
    pub index: u64,
    /// The term of the entries `run` applies (the leader that appends them; death verdicts
    /// carry it).
    pub term: u64,
    /// The proposal time of the last entry, in ms since the epoch.
    pub now_ms: u64,
    /// How far `now_ms` moves per entry.
    pub tick_ms: u64,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// An empty cluster at term 1, its clock at a realistic wall time, 10 ms per entry.
    pub fn new() -> Self {
        Self::starting_at(1_700_000_000_000, 10)
    }

    /// An empty cluster at term 1 whose clock starts at `now_ms` and moves `tick_ms` per entry.
    pub fn starting_at(now_ms: u64, tick_ms: u64) -> Self {
        Self {
            state: ClusterState::default(),
            index: 0,
            term: 1,
            now_ms,
            tick_ms,
        }
    }

    /// Applies `command` as the next entry.
    pub fn run(&mut self, command: Command) -> Result<Outcome, Rejection> {
        self.index += 1;
        self.now_ms += self.tick_ms;
        apply(
            &mut self.state,
            LogPosition::new(self.term, self.index),
            &Proposal {
                at_ms: self.now_ms,
                command,
            },
        )
    }

    /// Applies `command`, panicking with the rejection if there is one.
    pub fn ok(&mut self, command: Command) -> Outcome {
        let c = format!("{command:?}");
        self.run(command)
            .unwrap_or_else(|e| panic!("{c} was rejected: {e}"))
    }

    /// Adds a joining replica of `partition` on `worker` at the partition's current epoch
    /// (replacing `replaces`'s, if given), panicking with the rejection if there is one.
    pub fn add_replica(
        &mut self,
        partition: crate::PartitionId,
        worker: &str,
        replaces: Option<&str>,
    ) -> Outcome {
        let expected_epoch = self.state.partition(partition).map_or(0, |p| p.epoch);
        self.ok(Command::AddReplica {
            partition,
            worker: worker.into(),
            expected_epoch,
            replaces: replaces.map(WorkerId::from),
        })
    }

    /// Registers `id` in `zone` with capacity 1.
    pub fn register(&mut self, id: &str, incarnation: u64, zone: &str) -> Outcome {
        self.ok(register_cmd(id, incarnation, zone))
    }

    /// Moves `id` to `to`, with its current generation.
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

    /// Registers and activates a worker (`zone` optional, any capacity); rejections ignored.
    pub fn add_worker(&mut self, id: &str, zone: Option<&str>, capacity: u32) {
        let worker = WorkerId::from(id);
        let _ = self.run(Command::Register(Registration {
            worker: worker.clone(),
            incarnation: 1,
            address: "10.0.0.1:80".into(),
            zone: zone.map(str::to_owned),
            capacity,
            labels: BTreeMap::new(),
        }));
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

    /// The worker `id`; panics if there is none.
    pub fn worker(&self, id: &str) -> &Worker {
        &self.state.workers[&WorkerId::from(id)]
    }
}

/// The registration of `id`'s incarnation `incarnation` in `zone`, capacity 1.
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
