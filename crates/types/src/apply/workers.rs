//! Worker commands (SPEC §1): registration, state changes, leaving a drain, removal, death
//! verdicts.

use std::collections::BTreeSet;

use crate::brakes::validate_reason;
use crate::command::{Actor, Registration, SCHEDULER};
use crate::drain::DrainIntent;
use crate::events::EventKind;
use crate::ids::{
    PartitionId, WorkerId, validate_address, validate_labels, validate_worker_id, validate_zone,
};
use crate::partition::ReplicaRole;
use crate::worker::{Worker, WorkerState};

use super::{
    Applied, Cx, RejectCode, Response, check_generation, check_transition, invalid, reject,
    version_conflict,
};

impl Cx<'_> {
    pub(super) fn register(&mut self, r: &Registration) -> Applied {
        validate_worker_id(r.worker.as_str()).or_else(invalid)?;
        validate_address(&r.address).or_else(invalid)?;
        if let Some(zone) = &r.zone {
            validate_zone(zone).or_else(invalid)?;
        }
        if r.capacity == 0 {
            return invalid("capacity must be at least 1");
        }
        if r.incarnation == 0 {
            // Reserved: a record restored from a backup carries it (`backup::restored`), so
            // that every process registers anew.
            return invalid("incarnation must be at least 1");
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
            // A maintenance outlives the restart it is for: the scheduler ends it once the new
            // generation heartbeats.
            maintenance: previous.and_then(|w| w.maintenance.clone()),
            dead_at_ms: None,
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
    pub(super) fn set_state(
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
        let holdings = self.holdings(id);
        let held = holdings.len();
        if by == Actor::Scheduler && force {
            // A drain's deadline (`on_deadline: force`): only where every partition keeps a
            // majority of healthy serving replicas without this worker.
            let short: Vec<PartitionId> = holdings
                .iter()
                .filter_map(|&p| self.s.partition(p))
                .filter(|p| {
                    let others = p
                        .replicas
                        .iter()
                        .filter(|r| &r.worker != id && r.role == ReplicaRole::Serving)
                        .filter(|r| self.s.is_alive(&r.worker))
                        .count();
                    others < usize::from(p.replication_factor) / 2 + 1
                })
                .map(|p| p.id)
                .collect();
            if !short.is_empty() {
                return reject(
                    RejectCode::UnderReplicated,
                    format!(
                        "forcing {id} out would leave partitions {short:?} without a majority of \
                         healthy serving replicas"
                    ),
                );
            }
        }
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
            self.drop_all_replicas(id);
            let below = holdings
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
                    deadline_ms: None,
                    on_deadline: Default::default(),
                    overdue_since_ms: None,
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
        if to == WorkerState::Disabled && self.worker(id)?.in_maintenance() {
            self.finish_maintenance(id, &by.name(id), "disabled")?;
        }
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
    pub(super) fn leave_drain(&mut self, id: &WorkerId, withdraw: bool) {
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

    pub(super) fn remove(&mut self, id: &WorkerId, expected_version: Option<u64>) -> Applied {
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

    pub(super) fn mark_dead(&mut self, id: &WorkerId, generation: u64, term: u64) -> Applied {
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
        // Only an Active or Draining worker is judged: a verdict decided before an operator
        // disabled the worker (or it finished draining) must not mark the Disabled record dead.
        if !matches!(w.state, WorkerState::Active | WorkerState::Draining) {
            return reject(
                RejectCode::IllegalTransition,
                format!(
                    "worker {id} is {}: only an Active or Draining worker is declared dead",
                    w.state.as_str()
                ),
            );
        }
        // Structural, not only the scheduler's judgement: a verdict decided before the brake
        // tripped (by this leader or an old one) cannot slip in behind it.
        if let Some(b) = &self.s.brakes.mass_failure {
            return reject(
                RejectCode::BrakeTripped,
                format!(
                    "the mass-failure brake (tripped at version {}: {}) holds every death",
                    b.version, b.reason
                ),
            );
        }
        let replicas_dropped = self.drop_all_replicas(id);
        let at = self.at;
        if let Some(w) = self.worker_mut(id) {
            w.dead = true;
            w.dead_at_ms = Some(at);
        }
        if self.worker(id)?.in_maintenance() {
            self.finish_maintenance(id, SCHEDULER, "dead")?;
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
}
