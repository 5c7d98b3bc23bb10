//! The one deterministic `apply` of the replicated state machine.
//!
//! Each handler validates everything first and only then mutates, so a rejected command leaves
//! the state exactly as it was (the property tests compare the encoded bytes). Arithmetic on
//! counters saturates: `apply` must be total, and a wrapped epoch would be worse than a stuck one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::brakes::{Brakes, validate_reason};
use crate::command::{Actor, Command, Proposal, Registration};
use crate::drain::{DrainIntent, PlannedMove};
use crate::events::EventKind;
use crate::ids::{
    MAX_PARTITIONS, MAX_REPLICATION_FACTOR, PartitionId, WorkerId, validate_address,
    validate_kv_key, validate_labels, validate_worker_id, validate_zone,
};
use crate::kv::KvEntry;
use crate::partition::{Partition, RECENT_RELEASES, Release, Replica, ReplicaRole, key_range};
use crate::settings::{Settings, SettingsPatch};
use crate::state::{ClusterState, Table};
use crate::worker::{Worker, WorkerState};

mod operator;

/// Most workers one drain request may name.
pub const MAX_DRAIN_WORKERS: usize = 1024;

/// Stable, machine-readable rejection codes (the `code` of SPEC §4's error shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// A field is malformed or out of its limits.
    Invalid,
    /// A value exceeds a size limit.
    TooLarge,
    NotFound,
    AlreadyExists,
    /// The §1 transition table forbids this change.
    IllegalTransition,
    /// `expected_version` did not match.
    VersionConflict,
    /// The partition epoch moved on: re-read assignments.
    StaleEpoch,
    /// An agent call carries an older generation.
    StaleGeneration,
    /// The worker was declared dead at this generation: re-register.
    Fenced,
    /// A registration reuses an incarnation with different attributes.
    IncarnationConflict,
    /// The target worker cannot hold this replica (rule 1).
    Unplaceable,
    /// The step would leave the partition below RF healthy serving replicas.
    UnderReplicated,
    /// A Draining worker still holds replicas.
    NotDrained,
    /// A leader's decision (a death verdict) reached the log in a term other than the one it
    /// was decided in: the leadership that justified it is over. Nothing changed.
    StaleTerm,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Invalid => "invalid",
            RejectCode::TooLarge => "too_large",
            RejectCode::NotFound => "not_found",
            RejectCode::AlreadyExists => "already_exists",
            RejectCode::IllegalTransition => "illegal_transition",
            RejectCode::VersionConflict => "version_conflict",
            RejectCode::StaleEpoch => "stale_epoch",
            RejectCode::StaleGeneration => "stale_generation",
            RejectCode::Fenced => "fenced",
            RejectCode::IncarnationConflict => "incarnation_conflict",
            RejectCode::Unplaceable => "unplaceable",
            RejectCode::UnderReplicated => "under_replicated",
            RejectCode::NotDrained => "not_drained",
            RejectCode::StaleTerm => "stale_term",
        }
    }

    /// The HTTP status of SPEC §4 for this code.
    pub fn http_status(self) -> u16 {
        match self {
            RejectCode::Invalid => 400,
            RejectCode::TooLarge => 413,
            RejectCode::NotFound => 404,
            RejectCode::StaleTerm => 503,
            _ => 409,
        }
    }

    /// Whether the same request may succeed if retried after re-reading state. No rejection
    /// succeeds on a blind retry: `apply` is deterministic.
    pub fn retryable_after_reread(self) -> bool {
        matches!(
            self,
            RejectCode::VersionConflict | RejectCode::StaleEpoch | RejectCode::UnderReplicated
        )
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed refusal: a normal answer to the client, never a storage error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
    /// The current version, with `version_conflict`.
    pub current_version: Option<u64>,
}

fn reject<T>(code: RejectCode, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection {
        code,
        message: message.into(),
        current_version: None,
    })
}

fn invalid<T>(message: impl Into<String>) -> Result<T, Rejection> {
    reject(RejectCode::Invalid, message)
}

fn version_conflict<T>(what: &str, expected: u64, current: u64) -> Result<T, Rejection> {
    Err(Rejection {
        code: RejectCode::VersionConflict,
        message: format!("{what} is at version {current}, not {expected}"),
        current_version: Some(current),
    })
}

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
/// A [`Command::Batch`] is refused here: its commands have one answer each, from
/// [`apply_proposal`].
pub fn apply(
    state: &mut ClusterState,
    at: LogPosition,
    proposal: &Proposal,
) -> Result<Outcome, Rejection> {
    check_index(state, at.index)?;
    if matches!(proposal.command, Command::Batch(_)) {
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
    let Command::Batch(commands) = &proposal.command else {
        return vec![apply(state, at, proposal)];
    };
    if let Err(refusal) = check_index(state, at.index).and_then(|()| check_batch(commands)) {
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

fn check_batch(commands: &[Command]) -> Result<(), Rejection> {
    if commands.is_empty() {
        return invalid("an empty batch");
    }
    let mut keys = std::collections::HashSet::with_capacity(commands.len());
    for command in commands {
        let Some(key) = command.batch_key() else {
            return invalid("only KV writes may be batched");
        };
        if !keys.insert(key) {
            return invalid(format!("a batch writes key {key:?} twice"));
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
        } => cx.start_drain(workers, moves, reason.as_deref()),
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
        Command::Batch(_) => invalid("batches do not nest"),
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
    }?;
    let changes = cx.changes;
    let changed = !changes.is_empty();
    if changed {
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

    /// Removes every replica `worker` holds; returns how many.
    fn drop_all_replicas(&mut self, worker: &WorkerId) -> u32 {
        let held: Vec<PartitionId> = self.s.replicas_on(worker).map(|p| p.id).collect();
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

    fn register(&mut self, r: &Registration) -> Applied {
        validate_worker_id(r.worker.as_str()).or_else(invalid)?;
        validate_address(&r.address).or_else(invalid)?;
        if let Some(zone) = &r.zone {
            validate_zone(zone).or_else(invalid)?;
        }
        if r.capacity == 0 {
            return invalid("capacity must be at least 1");
        }
        validate_labels(&r.labels).or_else(invalid)?;

        let (generation, state) = match self.s.workers.get(&r.worker) {
            None => {
                let last = self.s.tombstones.get(&r.worker).copied().unwrap_or(0);
                (last.saturating_add(1), WorkerState::Provisioning)
            }
            Some(w) if w.incarnation == r.incarnation && !w.dead => {
                let same = w.address == r.address
                    && w.zone == r.zone
                    && w.capacity == r.capacity
                    && w.labels == r.labels;
                if !same {
                    return reject(
                        RejectCode::IncarnationConflict,
                        format!(
                            "worker {} is registered by incarnation {} with other attributes; \
                             a new process must register with a new incarnation",
                            w.id, w.incarnation
                        ),
                    );
                }
                return Ok(Response::Worker(w.clone()));
            }
            // A restart keeps state and replicas; a recommission starts over.
            Some(w) if w.state == WorkerState::Disabled => {
                (w.generation.saturating_add(1), WorkerState::Provisioning)
            }
            Some(w) => (w.generation.saturating_add(1), w.state),
        };

        if self.s.tombstones.remove(&r.worker).is_some() {
            self.changes.tombstones.insert(r.worker.clone());
        }
        let previous = self.s.workers.get(&r.worker);
        // A restart keeps the state, and with it when, why and by whom it was entered; a new
        // or recommissioned worker entered Provisioning by its agent's registration now.
        let (state_since_ms, state_reason, state_actor) = match previous {
            Some(w) if w.state == state => (
                w.state_since_ms,
                w.state_reason.clone(),
                w.state_actor.clone(),
            ),
            _ => (self.at, None, Actor::Agent.name(&r.worker)),
        };
        // Cordons are the operator's, not the process's: they outlive restarts and
        // recommissions, and go only with the record (removal) or their holders.
        let cordons = previous.map(|w| w.cordons.clone()).unwrap_or_default();
        let worker = Worker {
            id: r.worker.clone(),
            generation,
            incarnation: r.incarnation,
            address: r.address.clone(),
            zone: r.zone.clone(),
            capacity: r.capacity,
            labels: r.labels.clone(),
            state,
            dead: false,
            version: self.index,
            state_since_ms,
            assignments_version: self.index,
            state_reason,
            state_actor,
            cordons,
        };
        self.s.workers.insert(r.worker.clone(), worker.clone());
        self.changes.workers.insert(r.worker.clone());
        self.event(EventKind::Registered {
            worker: r.worker.clone(),
            generation,
            state,
        });
        Ok(Response::Worker(worker))
    }

    // One argument per field of `Command::SetState`.
    #[allow(clippy::too_many_arguments)]
    fn set_state(
        &mut self,
        id: &WorkerId,
        to: WorkerState,
        by: Actor,
        generation: Option<u64>,
        expected_version: Option<u64>,
        force: bool,
        reason: Option<&str>,
    ) -> Applied {
        if let Some(reason) = reason {
            validate_reason(reason).or_else(invalid)?;
        }
        let w = self.worker(id)?;
        if by == Actor::Agent {
            let Some(g) = generation else {
                return invalid("an agent's state change must carry its generation");
            };
            check_generation(w, g)?;
        }
        let from = w.state;
        if from == to {
            return Ok(Response::Worker(w.clone()));
        }
        if let Some(v) = expected_version
            && v != w.version
        {
            return version_conflict(&format!("worker {id}"), v, w.version);
        }
        check_transition(id, from, to, by, force)?;
        let held = self.s.replicas_on(id).count();
        if from == WorkerState::Draining && to == WorkerState::Disabled && !force && held > 0 {
            return reject(
                RejectCode::NotDrained,
                format!("worker {id} still holds {held} replicas"),
            );
        }

        // Validated: mutate.
        if from == WorkerState::Draining {
            self.leave_drain(id, to == WorkerState::Active);
        }
        let mut under_replicated = None;
        if to == WorkerState::Disabled && held > 0 {
            let touched: Vec<PartitionId> = self.s.replicas_on(id).map(|p| p.id).collect();
            self.drop_all_replicas(id);
            let below = touched
                .iter()
                .filter_map(|&p| self.s.partition(p))
                .filter(|p| self.s.healthy_serving(p) < usize::from(p.replication_factor))
                .count();
            under_replicated = Some(u32::try_from(below).unwrap_or(u32::MAX));
        }
        if to == WorkerState::Draining {
            self.s.drains.insert(
                self.index,
                DrainIntent {
                    id: self.index,
                    workers: BTreeSet::from([id.clone()]),
                    requested_ms: self.at,
                    replicas_total: u32::try_from(held).unwrap_or(u32::MAX),
                    planned: false,
                    moves: Vec::new(),
                },
            );
            self.changes.drains.insert(self.index);
            self.event(EventKind::DrainStarted {
                drain: self.index,
                workers: vec![id.clone()],
                moves: 0,
            });
        }
        self.set_worker_state(id, to, force && to == WorkerState::Disabled, by, reason);
        let worker = self.worker(id)?.clone();
        // A forced disable always says how many partitions fell below RF, zero included.
        let forced = force && to == WorkerState::Disabled && from != WorkerState::Provisioning;
        Ok(if forced {
            Response::ForcedDisable {
                worker,
                under_replicated: under_replicated.unwrap_or(0),
            }
        } else {
            Response::Worker(worker)
        })
    }

    /// Takes a worker out of its drain intent. On a cancelled drain (`withdraw`), its pending
    /// moves are withdrawn: targets still joining are removed; completed moves stay.
    fn leave_drain(&mut self, id: &WorkerId, withdraw: bool) {
        let Some(drain) = self.s.drain_of(id).map(|d| d.id) else {
            return;
        };
        let Some(intent) = self.s.drains.get_mut(&drain) else {
            return;
        };
        self.changes.drains.insert(drain);
        intent.workers.remove(id);
        let mut pending = Vec::new();
        intent.moves.retain(|m| {
            if &m.from == id {
                if let Some(to) = &m.to {
                    pending.push((m.partition, to.clone()));
                }
                false
            } else {
                true
            }
        });
        if intent.workers.is_empty() {
            self.s.drains.remove(&drain);
        }
        if withdraw {
            // Every pending move off this worker: the plan's targets still joining, and any
            // joining replica that was to replace it, recorded or not.
            pending.extend(self.s.partitions.iter().flat_map(|p| {
                p.replicas
                    .iter()
                    .filter(|r| r.role == ReplicaRole::Joining && r.replaces.as_ref() == Some(id))
                    .map(move |r| (p.id, r.worker.clone()))
            }));
            pending.sort();
            pending.dedup();
            for (p, to) in pending {
                let joining = self
                    .s
                    .partition(p)
                    .and_then(|p| p.replica(&to))
                    .is_some_and(|r| r.role == ReplicaRole::Joining);
                if joining {
                    self.drop_replica(p, &to, false);
                }
            }
        }
    }

    fn remove(&mut self, id: &WorkerId, expected_version: Option<u64>) -> Applied {
        let w = self.worker(id)?;
        if let Some(v) = expected_version
            && v != w.version
        {
            return version_conflict(&format!("worker {id}"), v, w.version);
        }
        if w.state != WorkerState::Disabled {
            return reject(
                RejectCode::IllegalTransition,
                format!(
                    "worker {id} is {}; only a disabled worker can be removed",
                    w.state
                ),
            );
        }
        let generation = w.generation;
        self.s.workers.remove(id);
        self.s.tombstones.insert(id.clone(), generation);
        self.changes.workers.insert(id.clone());
        self.changes.tombstones.insert(id.clone());
        self.event(EventKind::Removed {
            worker: id.clone(),
            generation,
        });
        Ok(Response::Removed {
            worker: id.clone(),
            generation,
        })
    }

    fn mark_dead(&mut self, id: &WorkerId, generation: u64, term: u64) -> Applied {
        // The verdict rests on what the leader of `term` acknowledged (docs/architecture.md,
        // "The lease"): a leader of another term may have renewed the worker's lease since.
        if term != self.term {
            return reject(
                RejectCode::StaleTerm,
                format!(
                    "the death of {id} was decided in term {term} and reached the log in term {}",
                    self.term
                ),
            );
        }
        let w = self.worker(id)?;
        if generation < w.generation {
            return reject(
                RejectCode::StaleGeneration,
                format!(
                    "worker {id} re-registered at generation {}; generation {generation} is gone",
                    w.generation
                ),
            );
        }
        if generation > w.generation {
            return invalid(format!("worker {id} has no generation {generation}"));
        }
        if w.dead {
            return Ok(Response::Dead {
                worker: w.clone(),
                replicas_dropped: 0,
            });
        }
        let replicas_dropped = self.drop_all_replicas(id);
        if let Some(w) = self.worker_mut(id) {
            w.dead = true;
        }
        self.event(EventKind::Dead {
            worker: id.clone(),
            generation,
            replicas_dropped,
        });
        Ok(Response::Dead {
            worker: self.worker(id)?.clone(),
            replicas_dropped,
        })
    }

    fn create_table(&mut self, count: u32, replication_factor: u8) -> Applied {
        if let Some(t) = &self.s.table {
            return reject(
                RejectCode::AlreadyExists,
                format!(
                    "the partition table exists ({} partitions, RF {})",
                    t.count, t.replication_factor
                ),
            );
        }
        if !(1..=MAX_PARTITIONS).contains(&count) {
            return invalid(format!("count must be 1-{MAX_PARTITIONS}, got {count}"));
        }
        if !(1..=MAX_REPLICATION_FACTOR).contains(&replication_factor) {
            return invalid(format!(
                "replication_factor must be 1-{MAX_REPLICATION_FACTOR}, got {replication_factor}"
            ));
        }
        let table = Table {
            count,
            replication_factor,
            version: self.index,
        };
        self.s.partitions = (0..count)
            .map(|id| Partition {
                id,
                key_range: key_range(id, count),
                replication_factor,
                replicas: Vec::new(),
                leader: None,
                epoch: 0,
                version: self.index,
                recent_releases: Vec::new(),
            })
            .collect();
        self.s.table = Some(table.clone());
        self.changes.table = true;
        self.changes.partitions.extend(0..count);
        self.event(EventKind::TableCreated {
            count,
            replication_factor,
        });
        Ok(Response::Table(table))
    }

    /// Rule 1, as far as replicated state can tell: an Active, not-dead worker that holds no
    /// replica of the partition yet. Suspicion is soft state: the scheduler checks it.
    fn check_placeable(&self, p: &Partition, worker: &WorkerId) -> Result<(), Rejection> {
        let w = self.worker(worker)?;
        if w.state != WorkerState::Active || w.dead {
            let why = if w.dead { "dead" } else { w.state.as_str() };
            return reject(
                RejectCode::Unplaceable,
                format!("worker {worker} is {why}; replicas go only to active, live workers"),
            );
        }
        if p.replica(worker).is_some() {
            return reject(
                RejectCode::AlreadyExists,
                format!("partition {} already has a replica on {worker}", p.id),
            );
        }
        Ok(())
    }

    fn add_replica(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        expected: u64,
        replaces: Option<&WorkerId>,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        self.check_placeable(p, worker)?;
        if let Some(source) = replaces {
            let serving = p
                .replica(source)
                .is_some_and(|r| r.role == ReplicaRole::Serving);
            if !serving {
                return invalid(format!(
                    "partition {pid} has no serving replica on {source} to replace"
                ));
            }
        }
        let limit = usize::from(p.replication_factor) * 2;
        if p.replicas.len() >= limit {
            return invalid(format!(
                "partition {pid} already has {} replicas (at most {limit} during moves)",
                p.replicas.len()
            ));
        }
        let at = self.at;
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.epoch = p.epoch.saturating_add(1);
        let epoch = p.epoch;
        p.replicas.push(Replica {
            worker: worker.clone(),
            role: ReplicaRole::Joining,
            since: epoch,
            since_ms: at,
            acked_join: None,
            replaces: replaces.cloned(),
        });
        let p = p.clone();
        self.event(EventKind::ReplicaAdded {
            partition: pid,
            worker: worker.clone(),
            epoch,
            replaces: replaces.cloned(),
        });
        self.touch_holders(pid, None);
        Ok(Response::Partition(p))
    }

    fn acknowledge(
        &mut self,
        pid: PartitionId,
        worker: &WorkerId,
        generation: u64,
        epoch: u64,
    ) -> Applied {
        let p = self.partition(pid)?;
        check_generation(self.worker(worker)?, generation)?;
        let step = match p.replica(worker) {
            Some(r) if r.since == epoch => r.role,
            Some(r) if r.role == ReplicaRole::Serving && r.acked_join == Some(epoch) => {
                return Ok(Response::Partition(p.clone()));
            }
            None if p
                .recent_releases
                .iter()
                .any(|r| &r.worker == worker && r.since == epoch) =>
            {
                return Ok(Response::Partition(p.clone()));
            }
            _ => {
                return reject(
                    RejectCode::StaleEpoch,
                    format!(
                        "partition {pid} has no step of {worker} at epoch {epoch} to acknowledge \
                         (now epoch {}); re-read assignments",
                        p.epoch
                    ),
                );
            }
        };
        match step {
            // Nothing is pending on a serving replica: the acknowledgement changes nothing.
            ReplicaRole::Serving => Ok(Response::Partition(p.clone())),
            ReplicaRole::Joining => {
                let at = self.at;
                let Some(p) = self.partition_mut(pid) else {
                    return reject(RejectCode::NotFound, format!("no partition {pid}"));
                };
                p.epoch = p.epoch.saturating_add(1);
                let new_epoch = p.epoch;
                if let Some(r) = p.replica_mut(worker) {
                    r.role = ReplicaRole::Serving;
                    r.since = new_epoch;
                    r.since_ms = at;
                    r.acked_join = Some(epoch);
                }
                let p = p.clone();
                self.event(EventKind::ReplicaRole {
                    partition: pid,
                    worker: worker.clone(),
                    role: ReplicaRole::Serving,
                    epoch: new_epoch,
                });
                self.touch_holders(pid, None);
                Ok(Response::Partition(p))
            }
            ReplicaRole::Leaving => {
                self.drop_replica(pid, worker, true);
                let Some(p) = self.partition_mut(pid) else {
                    return reject(RejectCode::NotFound, format!("no partition {pid}"));
                };
                p.recent_releases.push(Release {
                    worker: worker.clone(),
                    since: epoch,
                });
                let excess = p.recent_releases.len().saturating_sub(RECENT_RELEASES);
                p.recent_releases.drain(..excess);
                Ok(Response::Partition(p.clone()))
            }
        }
    }

    fn mark_leaving(&mut self, pid: PartitionId, worker: &WorkerId, expected: u64) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        match p.replica(worker) {
            Some(r) if r.role == ReplicaRole::Serving => {}
            Some(r) => {
                return invalid(format!(
                    "the replica of partition {pid} on {worker} is {:?}, not serving",
                    r.role
                ));
            }
            None => {
                return reject(
                    RejectCode::NotFound,
                    format!("partition {pid} has no replica on {worker}"),
                );
            }
        }
        let healthy = self.s.healthy_serving(p);
        let after = healthy.saturating_sub(usize::from(self.s.is_alive(worker)));
        let rf = usize::from(p.replication_factor);
        if after < rf {
            return reject(
                RejectCode::UnderReplicated,
                format!(
                    "partition {pid} has {healthy} healthy serving replicas; releasing {worker} \
                     would leave {after}, below RF {rf}"
                ),
            );
        }
        let at = self.at;
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.epoch = p.epoch.saturating_add(1);
        let epoch = p.epoch;
        if let Some(r) = p.replica_mut(worker) {
            r.role = ReplicaRole::Leaving;
            r.since = epoch;
            r.since_ms = at;
        }
        let lost_leader = p.leader.as_ref() == Some(worker);
        if lost_leader {
            p.leader = None;
        }
        let p = p.clone();
        self.event(EventKind::ReplicaRole {
            partition: pid,
            worker: worker.clone(),
            role: ReplicaRole::Leaving,
            epoch,
        });
        self.touch_holders(pid, None);
        if lost_leader {
            self.event(EventKind::LeaderChanged {
                partition: pid,
                leader: None,
            });
        }
        Ok(Response::Partition(p))
    }

    fn remove_replica(&mut self, pid: PartitionId, worker: &WorkerId, expected: u64) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        match p.replica(worker) {
            Some(r) if r.role == ReplicaRole::Joining => {}
            Some(r) => {
                return invalid(format!(
                    "the replica of partition {pid} on {worker} is {:?}; only a joining replica \
                     can be withdrawn, a leaving one goes with its release acknowledgement",
                    r.role
                ));
            }
            None => {
                return reject(
                    RejectCode::NotFound,
                    format!("partition {pid} has no replica on {worker}"),
                );
            }
        }
        self.drop_replica(pid, worker, false);
        Ok(Response::Partition(self.partition(pid)?.clone()))
    }

    fn set_leader(&mut self, pid: PartitionId, leader: &WorkerId, expected: u64) -> Applied {
        let p = self.partition(pid)?;
        check_epoch(p, expected)?;
        let serving = p
            .replica(leader)
            .is_some_and(|r| r.role == ReplicaRole::Serving);
        if !serving || !self.s.is_alive(leader) {
            return reject(
                RejectCode::Unplaceable,
                format!("{leader} is not a healthy serving replica of partition {pid}"),
            );
        }
        if p.leader.as_ref() == Some(leader) {
            return Ok(Response::Partition(p.clone()));
        }
        let Some(p) = self.partition_mut(pid) else {
            return reject(RejectCode::NotFound, format!("no partition {pid}"));
        };
        p.leader = Some(leader.clone());
        let p = p.clone();
        self.event(EventKind::LeaderChanged {
            partition: pid,
            leader: Some(leader.clone()),
        });
        Ok(Response::Partition(p))
    }

    /// Validates planned moves of `draining` workers against the current state and returns them
    /// keyed by (partition, from), one move per key.
    fn check_moves(
        &self,
        draining: &BTreeSet<WorkerId>,
        moves: &[PlannedMove],
    ) -> Result<BTreeMap<(PartitionId, WorkerId), PlannedMove>, Rejection> {
        let mut out = BTreeMap::new();
        let mut targets = BTreeSet::new();
        for m in moves {
            let p = self.partition(m.partition)?;
            check_epoch(p, m.epoch)?;
            if !draining.contains(&m.from) {
                return invalid(format!(
                    "move of partition {} from {}: that worker is not being drained",
                    m.partition, m.from
                ));
            }
            if p.replica(&m.from).is_none() {
                return invalid(format!(
                    "move of partition {} from {}: it holds no replica there",
                    m.partition, m.from
                ));
            }
            if let Some(to) = &m.to {
                if draining.contains(to) {
                    return reject(
                        RejectCode::Unplaceable,
                        format!("move of partition {} targets {to}, which is draining", p.id),
                    );
                }
                self.check_placeable(p, to)?;
                if !targets.insert((m.partition, to.clone())) {
                    return reject(
                        RejectCode::Unplaceable,
                        format!("two moves of partition {} target {to}", m.partition),
                    );
                }
            }
            if out
                .insert((m.partition, m.from.clone()), m.clone())
                .is_some()
            {
                return invalid(format!(
                    "two moves of partition {} from {}",
                    m.partition, m.from
                ));
            }
        }
        Ok(out)
    }

    fn start_drain(
        &mut self,
        workers: &[WorkerId],
        moves: &[PlannedMove],
        reason: Option<&str>,
    ) -> Applied {
        if let Some(reason) = reason {
            validate_reason(reason).or_else(invalid)?;
        }
        if workers.is_empty() || workers.len() > MAX_DRAIN_WORKERS {
            return invalid(format!(
                "a drain names 1-{MAX_DRAIN_WORKERS} workers, got {}",
                workers.len()
            ));
        }
        let set: BTreeSet<WorkerId> = workers.iter().cloned().collect();
        if set.len() != workers.len() {
            return invalid("a drain names each worker once");
        }
        let mut already = 0;
        for id in &set {
            let w = self.worker(id)?;
            match w.state {
                WorkerState::Active => {}
                WorkerState::Draining => already += 1,
                other => {
                    check_transition(id, other, WorkerState::Draining, Actor::Operator, false)?
                }
            }
        }
        if already == set.len() {
            // A retry of a drain that was applied: succeed unchanged.
            if let Some(d) = workers.first().and_then(|w| self.s.drain_of(w)) {
                return Ok(Response::Drain(d.clone()));
            }
        }
        if already > 0 {
            let Some(busy) = set
                .iter()
                .find(|id| self.s.workers.get(*id).map(|w| w.state) == Some(WorkerState::Draining))
            else {
                return invalid("inconsistent drain request");
            };
            return reject(
                RejectCode::IllegalTransition,
                format!("worker {busy} is already draining; drain the others on their own"),
            );
        }
        let planned = self.check_moves(&set, moves)?;
        // Leaving replicas are already on their way out: a plan need not move them.
        let held: BTreeSet<(PartitionId, WorkerId)> = set
            .iter()
            .flat_map(|w| {
                self.s
                    .replicas_on(w)
                    .filter(move |p| p.replica(w).is_some_and(|r| r.role != ReplicaRole::Leaving))
                    .map(move |p| (p.id, w.clone()))
            })
            .collect();
        if let Some((p, w)) = held.iter().find(|k| !planned.contains_key(k)) {
            return invalid(format!(
                "the plan has no move for partition {p} on {w}; a drain plan covers every \
                 replica the drained workers hold"
            ));
        }

        let moves: Vec<PlannedMove> = planned.into_values().collect();
        let intent = DrainIntent {
            id: self.index,
            workers: set.clone(),
            requested_ms: self.at,
            replicas_total: u32::try_from(held.len()).unwrap_or(u32::MAX),
            planned: true,
            moves,
        };
        for id in &set {
            self.set_worker_state(id, WorkerState::Draining, false, Actor::Operator, reason);
        }
        self.event(EventKind::DrainStarted {
            drain: self.index,
            workers: set.into_iter().collect(),
            moves: u32::try_from(intent.moves.len()).unwrap_or(u32::MAX),
        });
        self.s.drains.insert(self.index, intent.clone());
        self.changes.drains.insert(self.index);
        Ok(Response::Drain(intent))
    }

    fn plan_drain(&mut self, drain: u64, moves: &[PlannedMove]) -> Applied {
        let Some(intent) = self.s.drains.get(&drain) else {
            return reject(RejectCode::NotFound, format!("no drain {drain}"));
        };
        let planned = self.check_moves(&intent.workers, moves)?;
        let Some(intent) = self.s.drains.get_mut(&drain) else {
            return reject(RejectCode::NotFound, format!("no drain {drain}"));
        };
        let mut all: BTreeMap<(PartitionId, WorkerId), PlannedMove> = intent
            .moves
            .drain(..)
            .map(|m| ((m.partition, m.from.clone()), m))
            .collect();
        all.extend(planned);
        intent.moves = all.into_values().collect();
        intent.planned = true;
        let intent = intent.clone();
        self.changes.drains.insert(drain);
        self.event(EventKind::DrainPlanned {
            drain,
            moves: u32::try_from(moves.len()).unwrap_or(u32::MAX),
        });
        Ok(Response::Drain(intent))
    }

    fn kv_put(&mut self, key: &str, value: &str, expected_version: Option<u64>) -> Applied {
        validate_kv_key(key).or_else(invalid)?;
        let max = self.s.settings.kv_max_value_bytes;
        if value.len() > usize::try_from(max).unwrap_or(usize::MAX) {
            return reject(
                RejectCode::TooLarge,
                format!("value is {} bytes; the limit is {max}", value.len()),
            );
        }
        let existing = self.s.kv.get(key);
        let current = existing.map_or(0, |e| e.version);
        if let Some(v) = expected_version
            && v != current
        {
            return version_conflict(&format!("key {key:?}"), v, current);
        }
        let entry = KvEntry {
            value: value.to_owned(),
            version: self.index,
            create_version: existing.map_or(self.index, |e| e.create_version),
        };
        self.s.kv.insert(key.to_owned(), entry.clone());
        self.changes.kv.insert(key.to_owned());
        Ok(Response::Kv {
            key: key.to_owned(),
            entry,
        })
    }

    fn kv_delete(&mut self, key: &str, expected_version: Option<u64>) -> Applied {
        validate_kv_key(key).or_else(invalid)?;
        let Some(e) = self.s.kv.get(key) else {
            return reject(RejectCode::NotFound, format!("no key {key:?}"));
        };
        if let Some(v) = expected_version
            && v != e.version
        {
            return version_conflict(&format!("key {key:?}"), v, e.version);
        }
        self.s.kv.remove(key);
        self.changes.kv.insert(key.to_owned());
        Ok(Response::KvDeleted {
            key: key.to_owned(),
            version: self.index,
        })
    }

    fn update_settings(&mut self, patch: &SettingsPatch, expected: Option<u64>) -> Applied {
        let current = &self.s.settings;
        if let Some(v) = expected
            && v != current.version
        {
            return version_conflict("the settings", v, current.version);
        }
        let mut new = current.patched(patch).or_else(invalid)?;
        if current.same_values(&new) && current.version > 0 {
            return Ok(Response::Settings(current.clone()));
        }
        if new.dead_after_ms != current.dead_after_ms {
            new.lease_floor = current.floor_after_change(new.dead_after_ms, self.at);
        }
        new.version = self.index;
        let retain = usize::try_from(new.events_retained).unwrap_or(usize::MAX);
        self.s.settings = new.clone();
        self.changes.settings = true;
        if self.s.events.events.len() > retain {
            let excess = self.s.events.events.len() - retain;
            self.s.events.events.drain(..excess);
            self.changes.events = true;
        }
        Ok(Response::Settings(new))
    }
}
