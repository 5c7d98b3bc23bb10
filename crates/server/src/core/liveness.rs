//! Leader soft state (SPEC §0, §1): when each worker's heartbeats were acknowledged, the death
//! verdicts being committed, and which generations gave their lease up. Never replicated: a new
//! leader starts empty, does not know yet whether unheard workers are alive, and declares none
//! dead before the death threshold has passed since it became leader.
//!
//! This module holds the leader's half of the lease argument (docs/architecture.md, "The
//! lease"). An agent holds its lease until `sent + dead_after − margin` of its last acknowledged
//! heartbeat; the leader may declare it dead only once it has been silent for the threshold
//! since the *arrival* of the last heartbeat this leader acknowledged (arrival ≥ send). Three
//! rules keep the two clocks apart on every interleaving:
//! - a death is *decided* under the same lock that acknowledges heartbeats ([`Heartbeats::
//!   decide_death`] and [`Heartbeats::acknowledge`]): a heartbeat is either recorded before the
//!   decision (and then the worker is not silent) or refused until the verdict is settled;
//! - a worker never heard by this leader has been silent since `max(leader_since, when this node
//!   applied its generation)`: every lease an earlier leader granted was sent before this leader
//!   was elected (the earlier leader confirmed it with a quorum after the heartbeat arrived);
//! - a new generation of a worker gets no lease before every older process's lease is over
//!   ([`Heartbeats::lease_wait`]): those were all sent before the new registration committed;
//! - a verdict belongs to the term of leadership it was decided in ([`Leadership`]): decided
//!   only while that term's soft state is current, and stamped with the term, so an entry of
//!   any other term refuses it — a leader of another term may have renewed the lease.
//!
//! Concurrency: one `std::sync::Mutex`, held only for map operations, never across `.await`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use drover_store::ApplyClock;
use drover_types::{ClusterState, Settings, Worker, WorkerId};
use tokio::sync::watch;
use tokio::time::Instant;

// A worker's liveness as the leader sees it: its wire type, declared once.
pub use drover_api::Liveness;

/// Liveness timing as the leader applies it at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub heartbeat_interval: Duration,
    pub suspect_after: Duration,
    /// What heartbeat answers tell agents: their lease is `sent + dead_after − margin`.
    pub dead_after: Duration,
    /// How long a worker must be silent before it may be declared dead: `dead_after`, or more
    /// while a lease granted under an earlier, longer `dead_after` may still run.
    pub death_threshold: Duration,
}

impl Timing {
    /// The timing the replicated `settings` give at `now`, on a node whose apply clock is
    /// `clock`.
    pub fn at(settings: &Settings, clock: &ApplyClock, now: Instant) -> Timing {
        let ms = Duration::from_millis;
        let dead_after = ms(settings.dead_after_ms);
        let floor = settings
            .lease_floor
            .map(|f| ms(f.dead_after_ms))
            .filter(|f| now < clock.settings_applied() + *f)
            .unwrap_or_default();
        Timing {
            heartbeat_interval: ms(settings.heartbeat_interval_ms),
            suspect_after: ms(settings.suspect_after_ms),
            dead_after,
            death_threshold: dead_after.max(floor),
        }
    }
}

/// One term of this node's leadership. The soft state belongs to it, and so does every death
/// verdict decided from that state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leadership {
    /// The Raft term this node leads in.
    pub term: u64,
    /// When this node saw itself become leader in `term`.
    pub since: Instant,
}

/// The heartbeat was not acknowledged: a death verdict for this generation is being committed.
#[derive(Debug)]
pub struct DeathPending;

#[derive(Debug, Default)]
struct Inner {
    leadership: Option<Leadership>,
    /// Worker → (generation, arrival of the last heartbeat this leader acknowledged).
    last: HashMap<WorkerId, (u64, Instant)>,
    /// Death verdicts decided and not yet settled: worker → generation.
    dying: HashMap<WorkerId, u64>,
    /// Worker → (generation that gave its lease up, from when no older process holds one).
    released: HashMap<WorkerId, (u64, Instant)>,
    /// Disabled workers an operator asked to recommission: worker → the generation whose
    /// agent is to register again (told in its heartbeats' answers).
    recommission: HashMap<WorkerId, u64>,
}

#[derive(Debug)]
pub struct Heartbeats {
    inner: Mutex<Inner>,
    /// Bumped whenever a pending death is settled, so refused heartbeats can look again.
    settled: watch::Sender<u64>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            inner: Mutex::default(),
            settled: watch::Sender::new(0),
        }
    }
}

impl Inner {
    /// Whether `w` is to be declared dead now (see [`Heartbeats::decide_death`]).
    fn is_due(
        &self,
        leadership: Leadership,
        w: &Worker,
        applied: Instant,
        threshold: Duration,
        now: Instant,
    ) -> bool {
        if self.leadership != Some(leadership) {
            return false; // that term's leadership is over: its view decides nothing
        }
        if now.saturating_duration_since(leadership.since) < threshold
            || self.dying.contains_key(&w.id)
        {
            return false;
        }
        let silent = self.silent_for(&w.id, w.generation, applied, now);
        silent.is_some_and(|s| s >= threshold)
    }

    /// How long `worker` has been silent at `generation` (see the module doc).
    fn silent_for(
        &self,
        worker: &WorkerId,
        generation: u64,
        applied: Instant,
        now: Instant,
    ) -> Option<Duration> {
        let since = match self.last.get(worker) {
            Some((g, at)) if *g == generation => *at,
            _ => self.leadership?.since.max(applied),
        };
        Some(now.saturating_duration_since(since))
    }
}

impl Heartbeats {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts the soft state afresh for a new term of leadership, `term`, seen at `now`.
    pub fn became_leader(&self, term: u64, now: Instant) {
        let mut i = self.lock();
        *i = Inner {
            leadership: Some(Leadership { term, since: now }),
            ..Inner::default()
        };
        drop(i);
        self.settled.send_modify(|n| *n += 1);
    }

    pub fn lost_leadership(&self) {
        *self.lock() = Inner::default();
        self.settled.send_modify(|n| *n += 1);
    }

    /// The term this node leads in and since when, if it leads.
    pub fn leadership(&self) -> Option<Leadership> {
        self.lock().leadership
    }

    /// When this node became leader, if it leads.
    pub fn leader_since(&self) -> Option<Instant> {
        self.leadership().map(|l| l.since)
    }

    /// Records an acknowledged heartbeat of `worker` at `generation` that arrived at `arrival`
    /// — unless a death verdict for that generation is pending, in which case nothing is
    /// recorded and the heartbeat must not be acknowledged.
    pub fn acknowledge(
        &self,
        worker: &WorkerId,
        generation: u64,
        arrival: Instant,
    ) -> Result<(), DeathPending> {
        let mut i = self.lock();
        if i.dying.get(worker) == Some(&generation) {
            return Err(DeathPending);
        }
        let at = match i.last.get(worker) {
            Some((g, at)) if *g == generation => arrival.max(*at),
            _ => arrival,
        };
        i.last.insert(worker.clone(), (generation, at));
        Ok(())
    }

    /// Decides, atomically with [`Heartbeats::acknowledge`], whether `w` is to be declared dead
    /// now: this node still leads in `leadership`'s term, has led for `threshold`, and `w` has
    /// been silent that long at its generation. A decided death stays pending until
    /// [`Heartbeats::settle`]; meanwhile its heartbeats are refused. The verdict is to be
    /// proposed stamped with `leadership.term`.
    pub fn decide_death(
        &self,
        leadership: Leadership,
        w: &Worker,
        applied: Instant,
        threshold: Duration,
        now: Instant,
    ) -> bool {
        let mut i = self.lock();
        if !i.is_due(leadership, w, applied, threshold, now) {
            return false;
        }
        i.dying.insert(w.id.clone(), w.generation);
        true
    }

    /// Whether [`Heartbeats::decide_death`] would decide `w`'s death now, deciding nothing: the
    /// scheduler first asks who is due, then the mass-failure brake judges how many of them may
    /// be declared (SPEC §3), then it decides those.
    pub fn is_due(
        &self,
        leadership: Leadership,
        w: &Worker,
        applied: Instant,
        threshold: Duration,
        now: Instant,
    ) -> bool {
        self.lock().is_due(leadership, w, applied, threshold, now)
    }

    /// Whether this leader has acknowledged a heartbeat of `worker` at `generation`.
    pub fn heard(&self, worker: &WorkerId, generation: u64) -> bool {
        self.lock()
            .last
            .get(worker)
            .is_some_and(|(g, _)| *g == generation)
    }

    /// A decided death was committed, refused, or overtaken: heartbeats are judged again.
    pub fn settle(&self, worker: &WorkerId) {
        if self.lock().dying.remove(worker).is_some() {
            self.settled.send_modify(|n| *n += 1);
        }
    }

    /// Pending deaths whose outcome `resolved` can now tell from the applied state.
    pub fn settle_resolved(&self, resolved: impl Fn(&WorkerId, u64) -> bool) {
        let settled: Vec<WorkerId> = {
            let i = self.lock();
            i.dying
                .iter()
                .filter(|(w, g)| resolved(w, **g))
                .map(|(w, _)| w.clone())
                .collect()
        };
        for w in settled {
            self.settle(&w);
        }
    }

    /// Follows settlements of pending deaths.
    pub fn settlements(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Generation `generation` of `worker` gave its lease up for good (its process stopped
    /// serving): a newer generation may hold one from `free_from` on.
    pub fn release(&self, worker: &WorkerId, generation: u64, free_from: Instant) {
        self.lock()
            .released
            .insert(worker.clone(), (generation, free_from));
    }

    /// An operator asked that generation `generation` of `worker` register again (SPEC §1:
    /// Disabled → Provisioning is its agent's registration); its heartbeats' answers say so
    /// until a newer generation registers or this term of leadership ends.
    pub fn ask_recommission(&self, worker: &WorkerId, generation: u64) {
        self.lock().recommission.insert(worker.clone(), generation);
    }

    /// Withdraws the ask for generation `generation` of `worker` (a request that gave up).
    pub fn withdraw_recommission(&self, worker: &WorkerId, generation: u64) {
        let mut i = self.lock();
        if i.recommission.get(worker) == Some(&generation) {
            i.recommission.remove(worker);
        }
    }

    /// Whether generation `generation` of `worker` is asked to register again.
    pub fn recommission_asked(&self, worker: &WorkerId, generation: u64) -> bool {
        self.lock().recommission.get(worker) == Some(&generation)
    }

    /// From when no process of `w` older than its current generation can hold a lease. Every
    /// older lease was sent before this generation's registration committed, so it has run out
    /// by `applied + threshold`; generation 1 never had a predecessor, and a predecessor that
    /// gave its lease up ([`Heartbeats::release`]) shortens the wait.
    pub fn lease_free_from(&self, w: &Worker, applied: Instant, threshold: Duration) -> Instant {
        match self.lock().released.get(&w.id) {
            Some((g, free)) if g.saturating_add(1) == w.generation => *free,
            _ if w.generation <= 1 => applied,
            _ => applied + threshold,
        }
    }

    /// How long `w`'s current generation must still wait before it may hold a lease.
    pub fn lease_wait(
        &self,
        w: &Worker,
        applied: Instant,
        threshold: Duration,
        now: Instant,
    ) -> Duration {
        self.lease_free_from(w, applied, threshold)
            .saturating_duration_since(now)
    }

    pub fn liveness(&self, w: &Worker, applied: Instant, t: &Timing, now: Instant) -> Liveness {
        if w.dead {
            return Liveness::Dead;
        }
        let i = self.lock();
        match i.last.get(&w.id) {
            Some((g, at)) if *g == w.generation => {
                if now.saturating_duration_since(*at) < t.suspect_after {
                    Liveness::Alive
                } else {
                    Liveness::Suspect
                }
            }
            _ => match i.silent_for(&w.id, w.generation, applied, now) {
                Some(silent) if silent < t.suspect_after => Liveness::Unknown,
                _ => Liveness::Suspect,
            },
        }
    }

    /// The planner's view of liveness at `now`: the workers this leader counts as suspect
    /// (silent past `suspect_after`, or not heard since it became leader), and the time of day
    /// `now_ms` it plans at.
    pub fn planner_view(
        &self,
        s: &ClusterState,
        clock: &ApplyClock,
        now: Instant,
        now_ms: u64,
    ) -> drover_scheduler::Liveness {
        let t = Timing::at(&s.settings, clock, now);
        let mut suspect = BTreeSet::new();
        // Not heard yet is no news: the planner places nothing on these workers but changes
        // nothing because of them (no leader re-picked, no move started).
        let mut unheard = BTreeSet::new();
        for w in s.workers.values() {
            let applied = clock.generation_applied(&w.id, w.generation);
            match self.liveness(w, applied, &t, now) {
                Liveness::Suspect => {
                    suspect.insert(w.id.clone());
                }
                Liveness::Unknown => {
                    suspect.insert(w.id.clone());
                    unheard.insert(w.id.clone());
                }
                Liveness::Alive | Liveness::Dead => {}
            }
        }
        drover_scheduler::Liveness {
            suspect,
            unheard,
            now_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use drover_store::ApplyClock;

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
            state_reason: None,
            state_actor: "worker:w".into(),
            cordons: Default::default(),
            maintenance: None,
            dead_at_ms: None,
        }
    }

    fn timing() -> Timing {
        Timing {
            heartbeat_interval: Duration::from_secs(1),
            suspect_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(30),
            death_threshold: Duration::from_secs(30),
        }
    }

    const S: Duration = Duration::from_secs(1);

    fn lead(h: &Heartbeats) -> Leadership {
        h.leadership().expect("leads")
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_until_heard_alive_while_fresh_dead_when_committed() {
        let t = timing();
        let h = Heartbeats::default();
        let t0 = Instant::now();
        h.became_leader(1, t0);
        let w = worker(2, false);
        assert_eq!(
            h.liveness(&w, t0, &t, t0),
            Liveness::Unknown,
            "not heard yet"
        );
        assert_eq!(h.liveness(&w, t0, &t, t0 + 6 * S), Liveness::Suspect);
        h.acknowledge(&"w".into(), 2, t0).unwrap();
        assert_eq!(h.liveness(&w, t0, &t, t0 + 4 * S), Liveness::Alive);
        assert_eq!(h.liveness(&w, t0, &t, t0 + 6 * S), Liveness::Suspect);
        assert_eq!(h.liveness(&worker(3, false), t0, &t, t0), Liveness::Unknown);
        assert_eq!(h.liveness(&worker(2, true), t0, &t, t0), Liveness::Dead);
        h.lost_leadership();
        assert_eq!(h.leader_since(), None);
    }

    /// The regression: a never-heard worker after a failover used to be declared dead only
    /// `2 × dead_after` after the new leader took over (its death clock started when the loop
    /// first asked, which was already `dead_after` in).
    #[tokio::test(start_paused = true)]
    async fn a_never_heard_worker_dies_dead_after_the_leader_took_over() {
        let h = Heartbeats::default();
        let t0 = Instant::now();
        h.became_leader(1, t0);
        let w = worker(2, false);
        let threshold = 30 * S;
        assert!(!h.decide_death(lead(&h), &w, t0 - 100 * S, threshold, t0 + 29 * S));
        assert!(h.decide_death(lead(&h), &w, t0 - 100 * S, threshold, t0 + 30 * S));
        // A generation this leader applied later gets its full threshold from then.
        let h = Heartbeats::default();
        h.became_leader(1, t0);
        let applied = t0 + 10 * S;
        assert!(!h.decide_death(lead(&h), &w, applied, threshold, t0 + 39 * S));
        assert!(h.decide_death(lead(&h), &w, applied, threshold, t0 + 40 * S));
    }

    /// A death decided is exclusive with acknowledging that generation's heartbeats: one that
    /// arrives while the verdict is pending is refused, and one recorded first prevents it.
    #[tokio::test(start_paused = true)]
    async fn no_heartbeat_is_acknowledged_while_its_death_is_pending() {
        let h = Heartbeats::default();
        let t0 = Instant::now();
        h.became_leader(1, t0);
        let w = worker(1, false);
        let id = WorkerId::from("w");
        h.acknowledge(&id, 1, t0).unwrap();
        let late = t0 + 31 * S;
        assert!(h.decide_death(lead(&h), &w, t0, 30 * S, late));
        assert!(h.acknowledge(&id, 1, late).is_err(), "pending: refused");
        assert!(
            !h.decide_death(lead(&h), &w, t0, 30 * S, late),
            "decided once"
        );
        h.settle(&id);
        h.acknowledge(&id, 1, late).unwrap();
        assert!(
            !h.decide_death(lead(&h), &w, t0, 30 * S, late),
            "heard again: not silent"
        );
        // Another generation's heartbeats are not held up by this one's verdict.
        assert!(h.decide_death(lead(&h), &w, t0, 30 * S, late + 30 * S));
        h.acknowledge(&id, 2, late).unwrap();
    }

    /// The soak's finding: a round that read term 3's soft state must not decide a death once
    /// this node leads in term 5 (re-elected; a term-4 leader elsewhere may have acknowledged
    /// the worker in between), even though the node "still leads" and the worker has been
    /// silent long enough by term 3's records.
    #[tokio::test(start_paused = true)]
    async fn a_verdict_belongs_to_the_term_it_was_decided_in() {
        let h = Heartbeats::default();
        let t0 = Instant::now();
        let w = worker(1, false);
        h.became_leader(3, t0);
        let term3 = lead(&h);
        h.became_leader(5, t0 + 40 * S);
        assert!(
            !h.decide_death(term3, &w, t0, 30 * S, t0 + 80 * S),
            "term 3 is over: its view decides nothing"
        );
        let term5 = lead(&h);
        assert_eq!(term5.term, 5);
        assert!(
            !h.decide_death(term5, &w, t0, 30 * S, t0 + 69 * S),
            "term 5 waits its own threshold"
        );
        assert!(h.decide_death(term5, &w, t0, 30 * S, t0 + 70 * S));
        h.lost_leadership();
        assert!(
            !h.decide_death(term5, &w, t0, 30 * S, t0 + 200 * S),
            "not leading"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_generation_waits_out_the_older_processes_leases() {
        let h = Heartbeats::default();
        let t0 = Instant::now();
        h.became_leader(1, t0);
        let threshold = 30 * S;
        assert_eq!(
            h.lease_wait(&worker(1, false), t0, threshold, t0),
            Duration::ZERO
        );
        assert_eq!(
            h.lease_wait(&worker(3, false), t0, threshold, t0 + 10 * S),
            20 * S
        );
        assert_eq!(
            h.lease_wait(&worker(3, false), t0, threshold, t0 + 30 * S),
            Duration::ZERO
        );
        // Generation 2 gave its lease up (a graceful restart): 3 may lease at once.
        let free = h.lease_free_from(&worker(2, false), t0 - 100 * S, threshold);
        h.release(&"w".into(), 2, free.max(t0));
        assert_eq!(
            h.lease_wait(&worker(3, false), t0, threshold, t0),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lowered_dead_after_keeps_its_floor_until_it_has_run_out() {
        let now = Instant::now();
        let clock = ApplyClock::new_at(now);
        let settings = Settings {
            dead_after_ms: 3_000,
            suspect_after_ms: 2_000,
            version: 9,
            lease_floor: Some(drover_types::LeaseFloor {
                dead_after_ms: 30_000,
                set_at_ms: 0,
            }),
            ..Settings::default()
        };
        let t = Timing::at(&settings, &clock, now + 29 * S);
        assert_eq!(t.dead_after, 3 * S, "agents are told the new value at once");
        assert_eq!(t.death_threshold, 30 * S, "deaths wait for the old leases");
        let t = Timing::at(&settings, &clock, now + 30 * S);
        assert_eq!(t.death_threshold, 3 * S);
    }
}
