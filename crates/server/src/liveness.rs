//! Leader soft state (SPEC §0, §1): when each worker last heartbeated. Never replicated: a new
//! leader starts empty, treats workers it has not heard from yet as suspect, and (with the
//! scheduler) declares none dead before `dead_after` has passed since it became leader.
//!
//! Concurrency: one `std::sync::Mutex`, held only for map operations, never across `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use drover_types::{Worker, WorkerId};
use serde::Serialize;

use crate::config::LivenessConfig;

/// A worker's liveness as the leader sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Liveness {
    Alive,
    /// Missed heartbeats for `suspect_after`, or not heard since this node became leader.
    Suspect,
    /// Declared dead at its current generation (a committed verdict).
    Dead,
}

#[derive(Debug, Default)]
struct Inner {
    leader_since: Option<Instant>,
    /// Worker → (generation, time of its last heartbeat). Looked up, never iterated for
    /// decisions, so a `HashMap` is fine.
    last: HashMap<WorkerId, (u64, Instant)>,
    /// Worker → (generation, when this leader first saw it at that generation): the death
    /// clock of a worker never heard at its generation starts here, not at some earlier time.
    first_seen: HashMap<WorkerId, (u64, Instant)>,
}

#[derive(Debug, Default)]
pub struct Heartbeats(Mutex<Inner>);

impl Heartbeats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the soft state afresh for a new term of leadership.
    pub fn became_leader(&self, now: Instant) {
        let mut i = self.lock();
        i.leader_since = Some(now);
        i.last.clear();
        i.first_seen.clear();
    }

    pub fn lost_leadership(&self) {
        let mut i = self.lock();
        i.leader_since = None;
        i.last.clear();
        i.first_seen.clear();
    }

    /// When this node became leader, if it leads.
    pub fn leader_since(&self) -> Option<Instant> {
        self.lock().leader_since
    }

    /// How long the worker has been silent at `generation`: since its last heartbeat at that
    /// generation, or, if never heard at it, since this leader first asked (a freshly
    /// registered or restarted worker gets a full `dead_after` to be heard).
    pub fn silent_for(
        &self,
        worker: &WorkerId,
        generation: u64,
        now: Instant,
    ) -> std::time::Duration {
        let mut i = self.lock();
        if let Some((g, at)) = i.last.get(worker)
            && *g == generation
        {
            return now.saturating_duration_since(*at);
        }
        let seen = i
            .first_seen
            .entry(worker.clone())
            .or_insert((generation, now));
        if seen.0 != generation {
            *seen = (generation, now);
        }
        now.saturating_duration_since(seen.1)
    }

    pub fn record(&self, worker: &WorkerId, generation: u64, now: Instant) {
        self.lock().last.insert(worker.clone(), (generation, now));
    }

    pub fn liveness(&self, w: &Worker, now: Instant, cfg: &LivenessConfig) -> Liveness {
        if w.dead {
            return Liveness::Dead;
        }
        match self.lock().last.get(&w.id) {
            Some((g, at))
                if *g == w.generation && now.saturating_duration_since(*at) < cfg.suspect_after =>
            {
                Liveness::Alive
            }
            _ => Liveness::Suspect,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn worker(generation: u64, dead: bool) -> Worker {
        Worker {
            id: "w".into(),
            generation,
            incarnation: 1,
            address: "h:1".into(),
            zone: None,
            capacity: 1,
            labels: Default::default(),
            state: drover_types::WorkerState::Active,
            dead,
            version: 1,
            state_since_ms: 0,
            assignments_version: 1,
        }
    }

    #[test]
    fn suspect_until_heard_alive_while_fresh_dead_when_committed() {
        let cfg = LivenessConfig {
            heartbeat_interval: Duration::from_secs(1),
            suspect_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
        };
        let h = Heartbeats::default();
        let t0 = Instant::now();
        h.became_leader(t0);
        assert_eq!(
            h.liveness(&worker(2, false), t0, &cfg),
            Liveness::Suspect,
            "not heard yet"
        );
        h.record(&"w".into(), 2, t0);
        assert_eq!(
            h.liveness(&worker(2, false), t0 + Duration::from_secs(4), &cfg),
            Liveness::Alive
        );
        assert_eq!(
            h.liveness(&worker(2, false), t0 + Duration::from_secs(6), &cfg),
            Liveness::Suspect
        );
        assert_eq!(
            h.liveness(&worker(3, false), t0, &cfg),
            Liveness::Suspect,
            "an older generation's beat"
        );
        assert_eq!(h.liveness(&worker(2, true), t0, &cfg), Liveness::Dead);
        // The death clock of a worker never heard at its generation starts when first asked.
        let later = t0 + Duration::from_secs(100);
        assert_eq!(h.silent_for(&"w".into(), 3, later), Duration::ZERO);
        assert_eq!(
            h.silent_for(&"w".into(), 3, later + Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        assert_eq!(
            h.silent_for(&"w".into(), 2, t0 + Duration::from_secs(4)),
            Duration::from_secs(4)
        );
        h.lost_leadership();
        assert_eq!(h.leader_since(), None);
    }
}
