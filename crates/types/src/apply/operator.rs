//! Operator safety commands (SPEC §1 cordons, §3 scheduler pause): placing and lifting them,
//! and their expiry. An expiry is the scheduler's decision, taken on its clock and committed
//! with the version of the record it saw expire; `apply` only checks it against the proposer's
//! time stamped in the entry, never a clock of its own, so every node applies it the same way.

use super::{
    Applied, Cx, RejectCode, Response, budget_exceeded, check_generation, invalid, reject,
    version_conflict,
};
use crate::brakes::{
    Cordon, Hold, MAX_CORDONS, MAX_MAINTENANCE_MS, Maintenance, MassFailure, Pause,
    validate_holder, validate_reason, validate_until,
};
use crate::command::{ADMIN, Actor, SCHEDULER};
use crate::events::EventKind;
use crate::ids::WorkerId;
use crate::worker::WorkerState;

impl Cx<'_> {
    pub(super) fn cordon(
        &mut self,
        id: &WorkerId,
        holder: &str,
        reason: &str,
        until_ms: Option<u64>,
    ) -> Applied {
        validate_holder(holder).or_else(invalid)?;
        validate_reason(reason).or_else(invalid)?;
        validate_until(until_ms, self.at).or_else(invalid)?;
        let w = self.worker(id)?;
        match w.cordons.get(holder) {
            Some(c) if c.reason == reason && c.until_ms == until_ms => {
                return Ok(Response::Worker(w.clone()));
            }
            Some(_) => {}
            None if w.cordons.len() >= MAX_CORDONS => {
                return invalid(format!(
                    "worker {id} already has {MAX_CORDONS} cordon holders, the most it may have"
                ));
            }
            None => {}
        }
        let cordon = Cordon {
            reason: reason.to_owned(),
            actor: ADMIN.to_owned(),
            since_ms: self.at,
            until_ms,
            version: self.index,
        };
        let Some(w) = self.worker_mut(id) else {
            return reject(RejectCode::NotFound, format!("no worker {id}"));
        };
        w.cordons.insert(holder.to_owned(), cordon);
        let worker = w.clone();
        self.event(EventKind::Cordoned {
            worker: id.clone(),
            holder: holder.to_owned(),
            reason: reason.to_owned(),
            actor: ADMIN.to_owned(),
            until_ms,
        });
        Ok(Response::Worker(worker))
    }

    pub(super) fn uncordon(&mut self, id: &WorkerId, holder: &str) -> Applied {
        validate_holder(holder).or_else(invalid)?;
        let w = self.worker(id)?;
        if !w.cordons.contains_key(holder) {
            return Ok(Response::Worker(w.clone()));
        }
        self.lift(id, holder, ADMIN, false)
    }

    pub(super) fn expire_cordon(&mut self, id: &WorkerId, holder: &str, version: u64) -> Applied {
        let w = self.worker(id)?;
        let Some(c) = w.cordons.get(holder) else {
            return reject(
                RejectCode::NotFound,
                format!("worker {id} has no cordon held by {holder}"),
            );
        };
        if c.version != version {
            return version_conflict(&format!("cordon {holder} on {id}"), version, c.version);
        }
        match c.until_ms {
            Some(until) if until <= self.at => {}
            _ => {
                return invalid(format!(
                    "cordon {holder} on {id} has not expired at {} ms",
                    self.at
                ));
            }
        }
        self.lift(id, holder, SCHEDULER, true)
    }

    /// Removes a cordon known to exist.
    fn lift(&mut self, id: &WorkerId, holder: &str, actor: &str, expired: bool) -> Applied {
        let Some(w) = self.worker_mut(id) else {
            return reject(RejectCode::NotFound, format!("no worker {id}"));
        };
        w.cordons.remove(holder);
        let worker = w.clone();
        self.event(EventKind::Uncordoned {
            worker: id.clone(),
            holder: holder.to_owned(),
            actor: actor.to_owned(),
            expired,
        });
        Ok(Response::Worker(worker))
    }

    pub(super) fn pause(&mut self, reason: &str, until_ms: Option<u64>) -> Applied {
        validate_reason(reason).or_else(invalid)?;
        validate_until(until_ms, self.at).or_else(invalid)?;
        if let Some(p) = &self.s.brakes.pause
            && p.reason == reason
            && p.until_ms == until_ms
        {
            return Ok(Response::Brakes(self.s.brakes.clone()));
        }
        self.s.brakes.pause = Some(Pause {
            reason: reason.to_owned(),
            actor: ADMIN.to_owned(),
            since_ms: self.at,
            until_ms,
            version: self.index,
        });
        self.changes.brakes = true;
        self.event(EventKind::SchedulerPaused {
            reason: reason.to_owned(),
            actor: ADMIN.to_owned(),
            until_ms,
        });
        Ok(Response::Brakes(self.s.brakes.clone()))
    }

    pub(super) fn resume(&mut self) -> Applied {
        if self.s.brakes.pause.is_none() {
            return Ok(Response::Brakes(self.s.brakes.clone()));
        }
        self.end_pause(ADMIN, false)
    }

    pub(super) fn expire_pause(&mut self, version: u64) -> Applied {
        let Some(p) = &self.s.brakes.pause else {
            return reject(RejectCode::NotFound, "the scheduler is not paused");
        };
        if p.version != version {
            return version_conflict("the pause", version, p.version);
        }
        match p.until_ms {
            Some(until) if until <= self.at => {}
            _ => return invalid(format!("the pause has not expired at {} ms", self.at)),
        }
        self.end_pause(SCHEDULER, true)
    }

    fn end_pause(&mut self, actor: &str, expired: bool) -> Applied {
        self.s.brakes.pause = None;
        self.changes.brakes = true;
        self.event(EventKind::SchedulerResumed {
            actor: actor.to_owned(),
            expired,
        });
        Ok(Response::Brakes(self.s.brakes.clone()))
    }

    // -- maintenance (SPEC §1) ------------------------------------------------------------

    pub(super) fn enter_maintenance(
        &mut self,
        id: &WorkerId,
        reason: &str,
        until_ms: u64,
        by: Actor,
        generation: Option<u64>,
    ) -> Applied {
        validate_reason(reason).or_else(invalid)?;
        validate_until(Some(until_ms), self.at).or_else(invalid)?;
        if until_ms - self.at > MAX_MAINTENANCE_MS {
            return invalid(format!(
                "a maintenance lasts at most {} h; renew it if the restart takes longer",
                MAX_MAINTENANCE_MS / 3_600_000
            ));
        }
        let w = self.worker(id)?;
        match (by, generation) {
            (Actor::Agent, Some(g)) => check_generation(w, g)?,
            (Actor::Agent, None) => {
                return invalid("an agent's maintenance must carry its generation");
            }
            (Actor::Scheduler, _) => return invalid("the scheduler does not start maintenance"),
            (Actor::Operator, _) => {}
        }
        if w.state != WorkerState::Active || w.dead {
            let what = if w.dead {
                "declared dead".to_owned()
            } else {
                w.state.to_string()
            };
            return reject(
                RejectCode::IllegalTransition,
                format!("worker {id} is {what}; only an active worker enters maintenance"),
            );
        }
        let actor = by.name(id);
        let renewal = w.maintenance.clone();
        if let Some(m) = &renewal
            && m.reason == reason
            && m.until_ms == until_ms
        {
            return Ok(Response::Worker(w.clone()));
        }
        if renewal.is_none() {
            let short = self.s.budget_shortfall(id, |_| false);
            if !short.is_empty() {
                let min = match self.s.settings.min_available {
                    0 => "a majority of their".to_owned(),
                    n => format!("min_available = {n}"),
                };
                return budget_exceeded(&format!("maintenance of {id}"), &min, short);
            }
        }
        let generation = renewal.map_or(w.generation, |m| m.generation);
        let (at, index) = (self.at, self.index);
        let Some(w) = self.worker_mut(id) else {
            return reject(RejectCode::NotFound, format!("no worker {id}"));
        };
        w.maintenance = Some(Maintenance {
            reason: reason.to_owned(),
            actor: actor.clone(),
            since_ms: at,
            until_ms,
            generation,
            version: index,
        });
        let worker = w.clone();
        self.event(EventKind::MaintenanceStarted {
            worker: id.clone(),
            reason: reason.to_owned(),
            actor,
            until_ms,
        });
        Ok(Response::Worker(worker))
    }

    pub(super) fn end_maintenance(
        &mut self,
        id: &WorkerId,
        by: Actor,
        generation: Option<u64>,
        version: Option<u64>,
    ) -> Applied {
        let w = self.worker(id)?;
        if by == Actor::Agent {
            let Some(g) = generation else {
                return invalid("an agent's maintenance must carry its generation");
            };
            check_generation(w, g)?;
        }
        let Some(m) = &w.maintenance else {
            if by == Actor::Scheduler {
                return reject(
                    RejectCode::NotFound,
                    format!("worker {id} is not in maintenance"),
                );
            }
            return Ok(Response::Worker(w.clone()));
        };
        let cause = if by == Actor::Scheduler {
            let Some(v) = version else {
                return invalid("the scheduler ends a maintenance at the version it saw");
            };
            if m.version != v {
                return version_conflict(&format!("maintenance of {id}"), v, m.version);
            }
            if w.generation > m.generation {
                "returned"
            } else if m.until_ms <= self.at {
                "expired"
            } else {
                return invalid(format!(
                    "maintenance of {id} has neither expired nor seen a restart at {} ms",
                    self.at
                ));
            }
        } else {
            "lifted"
        };
        self.finish_maintenance(id, &by.name(id), cause)
    }

    /// Ends a maintenance known to exist.
    pub(super) fn finish_maintenance(
        &mut self,
        id: &WorkerId,
        actor: &str,
        cause: &str,
    ) -> Applied {
        let Some(w) = self.worker_mut(id) else {
            return reject(RejectCode::NotFound, format!("no worker {id}"));
        };
        w.maintenance = None;
        let worker = w.clone();
        self.event(EventKind::MaintenanceEnded {
            worker: id.clone(),
            actor: actor.to_owned(),
            cause: cause.to_owned(),
        });
        Ok(Response::Worker(worker))
    }

    // -- the mass-failure brake (SPEC §3) -------------------------------------------------

    pub(super) fn trip_brake(&mut self, workers: &[WorkerId], reason: &str) -> Applied {
        validate_reason(reason).or_else(invalid)?;
        if workers.is_empty() {
            return invalid("a brake holds back the deaths of at least one worker");
        }
        for w in workers {
            self.worker(w)?;
        }
        if let Some(b) = &self.s.brakes.mass_failure
            && b.workers == workers
        {
            return Ok(Response::Brakes(self.s.brakes.clone()));
        }
        self.s.brakes.mass_failure = Some(MassFailure {
            workers: workers.to_vec(),
            reason: reason.to_owned(),
            since_ms: self.at,
            version: self.index,
        });
        self.changes.brakes = true;
        self.event(EventKind::BrakeTripped {
            workers: workers.to_vec(),
            reason: reason.to_owned(),
        });
        Ok(Response::Brakes(self.s.brakes.clone()))
    }

    pub(super) fn release_brake(
        &mut self,
        by: Actor,
        version: Option<u64>,
        reason: Option<&str>,
        until_ms: Option<u64>,
    ) -> Applied {
        if let Some(reason) = reason {
            validate_reason(reason).or_else(invalid)?;
        }
        validate_until(until_ms, self.at).or_else(invalid)?;
        match by {
            Actor::Agent => return invalid("an agent cannot release the brake"),
            Actor::Scheduler => {
                let Some(b) = &self.s.brakes.mass_failure else {
                    return reject(RejectCode::NotFound, "the brake is not tripped");
                };
                if version != Some(b.version) {
                    return version_conflict("the brake", version.unwrap_or(0), b.version);
                }
                if until_ms.is_some() {
                    return invalid("only an operator's release holds the brake off");
                }
            }
            Actor::Operator => {
                if self.s.brakes.mass_failure.is_none() && until_ms.is_none() {
                    return Ok(Response::Brakes(self.s.brakes.clone()));
                }
            }
        }
        let actor = if by == Actor::Operator {
            ADMIN
        } else {
            SCHEDULER
        };
        self.s.brakes.mass_failure = None;
        self.s.brakes.released = until_ms.map(|until| Hold {
            reason: reason.unwrap_or("released by an operator").to_owned(),
            actor: actor.to_owned(),
            since_ms: self.at,
            until_ms: Some(until),
            version: self.index,
        });
        self.changes.brakes = true;
        self.event(EventKind::BrakeReleased {
            actor: actor.to_owned(),
            reason: reason.map(str::to_owned),
            until_ms,
        });
        Ok(Response::Brakes(self.s.brakes.clone()))
    }
}
