//! Operator safety commands (SPEC §1 cordons, §3 scheduler pause): placing and lifting them,
//! and their expiry. An expiry is the scheduler's decision, taken on its clock and committed
//! with the version of the record it saw expire; `apply` only checks it against the proposer's
//! time stamped in the entry, never a clock of its own, so every node applies it the same way.

use super::{Applied, Cx, RejectCode, Response, invalid, reject, version_conflict};
use crate::brakes::{Cordon, MAX_CORDONS, Pause, validate_holder, validate_reason, validate_until};
use crate::command::{ADMIN, SCHEDULER};
use crate::events::EventKind;
use crate::ids::WorkerId;

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
}
