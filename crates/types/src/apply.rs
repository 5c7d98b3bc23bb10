//! The one deterministic `apply` of the replicated state machine.
//!
//! Each handler validates everything first and only then mutates, so a rejected command leaves
//! the state exactly as it was (the property tests compare the encoded bytes). Arithmetic on
//! counters saturates: `apply` must be total, and a wrapped epoch would be worse than a stuck one.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::brakes::Brakes;
use crate::command::{Actor, Command, Proposal};
use crate::drain::DrainIntent;
use crate::events::EventKind;
use crate::ids::{PartitionId, WorkerId};
use crate::kv::KvEntry;
use crate::partition::Partition;
use crate::settings::Settings;
use crate::state::{ClusterState, Table};
use crate::worker::{Worker, WorkerState};

mod drains;
mod kv;
mod operator;
mod reject;
mod replicas;
mod workers;

pub use reject::{RejectCode, Rejection};
use reject::{budget_exceeded, invalid, reject, version_conflict};

/// Most workers one drain request may name.
pub const MAX_DRAIN_WORKERS: usize = 1024;

/// The records an applied command wrote, so storage can persist exactly those: for each named
/// key, the record now in the state (or its absence) is the new value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub workers: BTreeSet<WorkerId>,
    pub tombstones: BTreeSet<WorkerId>,
    pub partitions: BTreeSet<PartitionId>,
    pub kv: BTreeSet<String>,
    pub drains: BTreeSet<u64>,
    pub table: bool,
    pub settings: bool,
    pub events: bool,
    /// The scheduler's brakes (a pause).
    pub brakes: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }

    /// Whether any record the planner reads was touched: everything but KV entries and events.
    /// A KV write changes the state version and nothing placement depends on.
    pub fn touch_placement(&self) -> bool {
        !self.workers.is_empty()
            || !self.tombstones.is_empty()
            || !self.partitions.is_empty()
            || !self.drains.is_empty()
            || self.table
            || self.settings
            || self.brakes
    }

    /// Adds what `other` touched, for persisting several applied entries in one batch.
    pub fn merge(&mut self, other: Changes) {
        self.workers.extend(other.workers);
        self.tombstones.extend(other.tombstones);
        self.partitions.extend(other.partitions);
        self.kv.extend(other.kv);
        self.drains.extend(other.drains);
        self.table |= other.table;
        self.settings |= other.settings;
        self.events |= other.events;
        self.brakes |= other.brakes;
    }
}

/// What an accepted command answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    Worker(Worker),
    /// A forced disable: the record and how many partitions fell below RF.
    ForcedDisable {
        worker: Worker,
        under_replicated: u32,
    },
    Removed {
        worker: WorkerId,
        generation: u64,
    },
    Dead {
        worker: Worker,
        replicas_dropped: u32,
    },
    Table(Table),
    Partition(Partition),
    Drain(DrainIntent),
    Kv {
        key: String,
        entry: KvEntry,
    },
    KvDeleted {
        key: String,
        version: u64,
    },
    Settings(Settings),
    /// An event was recorded (a membership change).
    Recorded,
    /// The scheduler's brakes after a pause, resume or expiry.
    Brakes(Brakes),
}

/// An accepted command's result. `changed` is false for idempotent repeats, which leave the
/// state (and its version) untouched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub changed: bool,
    pub response: Response,
    pub changes: Changes,
}

/// Where a log entry sits: the term of the leader that appended it, and its index.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub term: u64,
    pub index: u64,
}

impl LogPosition {
    pub fn new(term: u64, index: u64) -> Self {
        LogPosition { term, index }
    }
}

/// Apply the command of the log entry at `at` to `state`.
///
/// Total: any command yields `Ok` or a typed `Rejection`, never a panic. On `Err` the state is
/// unchanged. On a change, the state version and every touched record's version become
/// `at.index`. A command that carries the term it was decided in (a death verdict) is refused
/// in an entry of any other term.
///
/// A [`Command::Group`] (or an older [`Command::Batch`]) is refused here: its commands have
/// one answer each, from [`apply_proposal`].
pub fn apply(
    state: &mut ClusterState,
    at: LogPosition,
    proposal: &Proposal,
) -> Result<Outcome, Rejection> {
    check_index(state, at.index)?;
    if proposal.command.is_group() {
        return invalid("a batch has one answer per command: apply it with apply_proposal");
    }
    apply_command(state, at, proposal.at_ms, &proposal.command)
}

/// Apply a log entry's proposal: one result for a command, or one per command of a batch, in
/// order, each applied as if alone at the entry's index.
///
/// A malformed batch (empty, nested, a command that may not be batched, or two writes to one
/// key) changes nothing: every command in it is answered `invalid`.
pub fn apply_proposal(
    state: &mut ClusterState,
    at: LogPosition,
    proposal: &Proposal,
) -> Vec<Result<Outcome, Rejection>> {
    let (commands, checked) = match &proposal.command {
        Command::Batch(commands) => (commands, check_kv_batch(commands)),
        Command::Group(commands) => (commands, check_group(commands)),
        _ => return vec![apply(state, at, proposal)],
    };
    if let Err(refusal) = check_index(state, at.index).and(checked) {
        return vec![Err(refusal); commands.len().max(1)];
    }
    commands
        .iter()
        .map(|command| apply_command(state, at, proposal.at_ms, command))
        .collect()
}

fn check_index(state: &ClusterState, index: u64) -> Result<(), Rejection> {
    if index <= state.version {
        return invalid(format!(
            "log index {index} is not above the state version {}",
            state.version
        ));
    }
    Ok(())
}

/// An older release's `Batch`: KV writes to distinct keys, nothing else — exactly what that
/// release accepted, so its logs replay to the state it applied.
fn check_kv_batch(commands: &[Command]) -> Result<(), Rejection> {
    if commands.is_empty() {
        return invalid("an empty batch");
    }
    let mut keys = std::collections::HashSet::with_capacity(commands.len());
    for command in commands {
        let key = match command {
            Command::KvPut { key, .. } | Command::KvDelete { key, .. } => key,
            _ => return invalid("only KV writes may be batched"),
        };
        if !keys.insert(key) {
            return invalid(format!("a batch writes key {key:?} twice"));
        }
    }
    Ok(())
}

fn check_group(commands: &[Command]) -> Result<(), Rejection> {
    if commands.is_empty() {
        return invalid("an empty batch");
    }
    // One scheduling round's steps, in the order planned.
    if commands.iter().all(Command::is_step) {
        return Ok(());
    }
    // Group commit: each command's key once.
    let mut keys = std::collections::HashSet::with_capacity(commands.len());
    for command in commands {
        let Some(key) = command.batch_key() else {
            return invalid(
                "a batch holds KV writes and acknowledgements, or scheduling steps, only",
            );
        };
        if !keys.insert(key) {
            return invalid("a batch writes one key twice");
        }
    }
    Ok(())
}

/// One command at `at`, without the index check (a batch's commands share its index).
fn apply_command(
    state: &mut ClusterState,
    at: LogPosition,
    at_ms: u64,
    command: &Command,
) -> Result<Outcome, Rejection> {
    let mut cx = Cx {
        s: state,
        index: at.index,
        term: at.term,
        at: at_ms,
        changes: Changes::default(),
    };
    let response = match command {
        Command::Register(r) => cx.register(r),
        Command::SetState {
            worker,
            to,
            by,
            generation,
            expected_version,
            force,
            reason,
        } => cx.set_state(
            worker,
            *to,
            *by,
            *generation,
            *expected_version,
            *force,
            reason.as_deref(),
        ),
        Command::Remove {
            worker,
            expected_version,
        } => cx.remove(worker, *expected_version),
        Command::MarkDead {
            worker,
            generation,
            term,
        } => cx.mark_dead(worker, *generation, *term),
        Command::CreateTable {
            count,
            replication_factor,
        } => cx.create_table(*count, *replication_factor),
        Command::AddReplica {
            partition,
            worker,
            expected_epoch,
            replaces,
        } => cx.add_replica(*partition, worker, *expected_epoch, replaces.as_ref()),
        Command::Acknowledge {
            partition,
            worker,
            generation,
            epoch,
        } => cx.acknowledge(*partition, worker, *generation, *epoch),
        Command::MarkLeaving {
            partition,
            worker,
            expected_epoch,
        } => cx.mark_leaving(*partition, worker, *expected_epoch),
        Command::RemoveReplica {
            partition,
            worker,
            expected_epoch,
        } => cx.remove_replica(*partition, worker, *expected_epoch),
        Command::SetLeader {
            partition,
            leader,
            expected_epoch,
        } => cx.set_leader(*partition, leader, *expected_epoch),
        Command::StartDrain {
            workers,
            moves,
            reason,
            deadline_ms,
            on_deadline,
        } => cx.start_drain(
            workers,
            moves,
            reason.as_deref(),
            *deadline_ms,
            *on_deadline,
        ),
        Command::DrainOverdue { drain, blocked } => cx.drain_overdue(*drain, blocked),
        Command::PlanDrain { drain, moves } => cx.plan_drain(*drain, moves),
        Command::KvPut {
            key,
            value,
            expected_version,
        } => cx.kv_put(key, value, *expected_version),
        Command::KvDelete {
            key,
            expected_version,
        } => cx.kv_delete(key, *expected_version),
        Command::UpdateSettings {
            patch,
            expected_version,
        } => cx.update_settings(patch, *expected_version),
        Command::Batch(_) | Command::Group(_) => invalid("batches do not nest"),
        Command::PlaceReplicas {
            partition,
            workers,
            expected_epoch,
        } => cx.place_replicas(*partition, workers, *expected_epoch),
        Command::RecordMembership(change) => {
            cx.event(EventKind::Membership {
                change: change.clone(),
            });
            Ok(Response::Recorded)
        }
        Command::Cordon {
            worker,
            holder,
            reason,
            until_ms,
        } => cx.cordon(worker, holder, reason, *until_ms),
        Command::Uncordon { worker, holder } => cx.uncordon(worker, holder),
        Command::ExpireCordon {
            worker,
            holder,
            version,
        } => cx.expire_cordon(worker, holder, *version),
        Command::PauseScheduler { reason, until_ms } => cx.pause(reason, *until_ms),
        Command::ResumeScheduler => cx.resume(),
        Command::ExpirePause { version } => cx.expire_pause(*version),
        Command::EnterMaintenance {
            worker,
            reason,
            until_ms,
            by,
            generation,
        } => cx.enter_maintenance(worker, reason, *until_ms, *by, *generation),
        Command::EndMaintenance {
            worker,
            by,
            generation,
            version,
        } => cx.end_maintenance(worker, *by, *generation, *version),
        Command::TripBrake { workers, reason } => cx.trip_brake(workers, reason),
        Command::ReleaseBrake {
            by,
            version,
            reason,
            until_ms,
        } => cx.release_brake(*by, *version, reason.as_deref(), *until_ms),
    }?;
    let changes = cx.changes;
    let changed = !changes.is_empty();
    if changed {
        state.holdings.follow(
            &state.partitions,
            state.version,
            at.index,
            &changes.partitions,
        );
        state.version = at.index;
    }
    Ok(Outcome {
        changed,
        response,
        changes,
    })
}

/// One application in progress: the state, the entry's index and time, and what was touched.
struct Cx<'a> {
    s: &'a mut ClusterState,
    index: u64,
    /// The term of the entry being applied.
    term: u64,
    at: u64,
    changes: Changes,
}

type Applied = Result<Response, Rejection>;

/// The §1 transition table with its "who" column. `Ok` means the pair is legal for `by`.
fn check_transition(
    id: &WorkerId,
    from: WorkerState,
    to: WorkerState,
    by: Actor,
    force: bool,
) -> Result<(), Rejection> {
    use Actor::*;
    use WorkerState::*;
    let legal = match (from, to) {
        (Provisioning, Active) => matches!(by, Agent | Operator),
        (Provisioning, Disabled) => by == Operator,
        (Active, Draining) => matches!(by, Agent | Operator),
        (Draining, Active) => by == Operator,
        (Draining, Disabled) => by == Scheduler || (by == Operator && force),
        (Active, Disabled) => by == Operator && force,
        _ => false,
    };
    if legal {
        return Ok(());
    }
    let hint = match (from, to) {
        (_, Provisioning) => "; provisioning is entered only by registration",
        (Active | Draining, Disabled) if by == Operator => {
            "; drain it first, or pass force to drop its replicas at once"
        }
        (Disabled, _) => "; a disabled worker comes back by registering again",
        _ => "",
    };
    reject(
        RejectCode::IllegalTransition,
        format!("worker {id} cannot move from {from} to {to} (requested by {by:?}){hint}"),
    )
}

/// Generation fencing for agent calls (SPEC §1): an older generation is `stale_generation`,
/// the current one after a death verdict is `fenced`, a newer one was never issued.
pub fn check_generation(w: &Worker, generation: u64) -> Result<(), Rejection> {
    if generation < w.generation {
        return reject(
            RejectCode::StaleGeneration,
            format!(
                "worker {} is at generation {}, not {generation}",
                w.id, w.generation
            ),
        );
    }
    if generation > w.generation {
        return invalid(format!(
            "worker {} has no generation {generation} (current {})",
            w.id, w.generation
        ));
    }
    if w.dead {
        return reject(
            RejectCode::Fenced,
            format!(
                "worker {} was declared dead at generation {generation}; register again",
                w.id
            ),
        );
    }
    Ok(())
}

fn check_epoch(p: &Partition, expected: u64) -> Result<(), Rejection> {
    if p.epoch != expected {
        return reject(
            RejectCode::StaleEpoch,
            format!(
                "partition {} is at epoch {}, not {expected}; re-read assignments",
                p.id, p.epoch
            ),
        );
    }
    Ok(())
}

impl Cx<'_> {
    fn event(&mut self, kind: EventKind) {
        let retain = usize::try_from(self.s.settings.events_retained).unwrap_or(usize::MAX);
        self.s.events.push(self.index, self.at, kind, retain);
        self.changes.events = true;
    }

    fn worker(&self, id: &WorkerId) -> Result<&Worker, Rejection> {
        match self.s.workers.get(id) {
            Some(w) => Ok(w),
            None => reject(RejectCode::NotFound, format!("no worker {id}")),
        }
    }

    fn partition(&self, id: PartitionId) -> Result<&Partition, Rejection> {
        match self.s.partition(id) {
            Some(p) => Ok(p),
            None => reject(RejectCode::NotFound, format!("no partition {id}")),
        }
    }

    /// Mutable access to a worker known to exist (validated earlier), marking it changed.
    fn worker_mut(&mut self, id: &WorkerId) -> Option<&mut Worker> {
        self.changes.workers.insert(id.clone());
        let index = self.index;
        let w = self.s.workers.get_mut(id)?;
        w.version = index;
        w.assignments_version = index;
        Some(w)
    }

    /// Mutable access to a partition known to exist, marking it changed.
    fn partition_mut(&mut self, id: PartitionId) -> Option<&mut Partition> {
        self.changes.partitions.insert(id);
        let index = self.index;
        let p = self.s.partitions.get_mut(usize::try_from(id).ok()?)?;
        p.version = index;
        Some(p)
    }

    /// Marks the assignments of every worker holding a replica of `partition` (and `also`) as
    /// changed: their long polls must wake, since their replica or its peers changed.
    fn touch_holders(&mut self, partition: PartitionId, also: Option<&WorkerId>) {
        let mut holders: Vec<WorkerId> = self
            .s
            .partition(partition)
            .map(|p| p.replicas.iter().map(|r| r.worker.clone()).collect())
            .unwrap_or_default();
        holders.extend(also.cloned());
        for id in holders {
            if let Some(w) = self.s.workers.get_mut(&id) {
                w.assignments_version = self.index;
                self.changes.workers.insert(id);
            }
        }
    }

    /// Removes `worker`'s replica from `partition` (epoch + 1), clearing the preferred leader
    /// if it was that replica.
    fn drop_replica(&mut self, partition: PartitionId, worker: &WorkerId, acknowledged: bool) {
        let Some(p) = self.partition_mut(partition) else {
            return;
        };
        let before = p.replicas.len();
        p.replicas.retain(|r| &r.worker != worker);
        if p.replicas.len() == before {
            return;
        }
        p.epoch = p.epoch.saturating_add(1);
        let epoch = p.epoch;
        let lost_leader = p.leader.as_ref() == Some(worker);
        if lost_leader {
            p.leader = None;
        }
        self.event(EventKind::ReplicaRemoved {
            partition,
            worker: worker.clone(),
            epoch,
            acknowledged,
        });
        self.touch_holders(partition, Some(worker));
        if lost_leader {
            self.event(EventKind::LeaderChanged {
                partition,
                leader: None,
            });
        }
    }

    /// The partitions holding a replica on `worker` at this point of the command.
    fn holdings(&self, worker: &WorkerId) -> Vec<PartitionId> {
        self.s
            .holdings_while_applying(worker, &self.changes.partitions)
    }

    /// Removes every replica `worker` holds; returns how many.
    fn drop_all_replicas(&mut self, worker: &WorkerId) -> u32 {
        let held = self.holdings(worker);
        for &p in &held {
            self.drop_replica(p, worker, false);
        }
        u32::try_from(held.len()).unwrap_or(u32::MAX)
    }

    /// Moves a worker to `to`, recording who asked and why on the record and in the event.
    fn set_worker_state(
        &mut self,
        id: &WorkerId,
        to: WorkerState,
        forced: bool,
        by: Actor,
        reason: Option<&str>,
    ) {
        let at = self.at;
        let actor = by.name(id);
        let reason = reason.map(str::to_owned);
        let Some(w) = self.worker_mut(id) else {
            return;
        };
        let from = w.state;
        w.state = to;
        w.state_since_ms = at;
        w.state_reason = reason.clone();
        w.state_actor = actor.clone();
        self.event(EventKind::StateChanged {
            worker: id.clone(),
            from,
            to,
            forced,
            reason,
            actor,
        });
    }
}
