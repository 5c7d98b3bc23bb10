//! Drain commands: starting a drain with its committed move plan, and planning one later (SPEC §3).

use std::collections::{BTreeMap, BTreeSet};

use crate::brakes::validate_reason;
use crate::command::Actor;
use crate::drain::{DrainIntent, OnDeadline, PlannedMove};
use crate::events::EventKind;
use crate::ids::{PartitionId, WorkerId};
use crate::partition::ReplicaRole;
use crate::worker::WorkerState;

use super::{
    Applied, Cx, MAX_DRAIN_WORKERS, RejectCode, Rejection, Response, check_epoch, check_transition,
    invalid, reject,
};

impl Cx<'_> {
    /// Validates planned moves of `draining` workers against the current state and returns them
    /// keyed by (partition, from), one move per key.
    pub(super) fn check_moves(
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

    pub(super) fn start_drain(
        &mut self,
        workers: &[WorkerId],
        moves: &[PlannedMove],
        reason: Option<&str>,
        deadline_ms: Option<u64>,
        on_deadline: OnDeadline,
    ) -> Applied {
        if let Some(reason) = reason {
            validate_reason(reason).or_else(invalid)?;
        }
        if let Some(d) = deadline_ms
            && d <= self.at
        {
            return invalid(format!(
                "deadline ({d} ms) is not in the future (now {} ms)",
                self.at
            ));
        }
        if on_deadline == OnDeadline::Force && deadline_ms.is_none() {
            return invalid("on_deadline force needs a deadline");
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
                self.holdings(w)
                    .into_iter()
                    .filter_map(|p| self.s.partition(p))
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
            deadline_ms,
            on_deadline,
            overdue_since_ms: None,
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

    pub(super) fn plan_drain(&mut self, drain: u64, moves: &[PlannedMove]) -> Applied {
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

    /// The scheduler found `drain` past its deadline: marked overdue once, with why.
    pub(super) fn drain_overdue(&mut self, drain: u64, blocked: &[String]) -> Applied {
        let Some(intent) = self.s.drains.get(&drain) else {
            return reject(RejectCode::NotFound, format!("no drain {drain}"));
        };
        if intent.overdue_since_ms.is_some() {
            return Ok(Response::Drain(intent.clone()));
        }
        match intent.deadline_ms {
            Some(d) if d <= self.at => {}
            _ => {
                return invalid(format!(
                    "drain {drain} is not past a deadline at {} ms",
                    self.at
                ));
            }
        }
        if blocked.len() > 64 || blocked.iter().any(|b| b.len() > 512) {
            return invalid("at most 64 blocked reasons of 512 bytes each");
        }
        let at = self.at;
        let Some(intent) = self.s.drains.get_mut(&drain) else {
            return reject(RejectCode::NotFound, format!("no drain {drain}"));
        };
        intent.overdue_since_ms = Some(at);
        let intent = intent.clone();
        self.changes.drains.insert(drain);
        self.event(EventKind::DrainOverdue {
            drain,
            workers: intent.workers.iter().cloned().collect(),
            blocked: blocked.to_vec(),
            on_deadline: intent.on_deadline,
        });
        Ok(Response::Drain(intent))
    }
}
