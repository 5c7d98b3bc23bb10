//! SPEC §6 invariants at every committed state version, from the events log.
//!
//! The events log lists every lifecycle change with the state version that made it: worker
//! registrations, transitions, deaths and removals, and every replica change with its partition
//! epoch. Replaying it builds the lifecycle part of the state version by version (a [`Shadow`]);
//! after the last event of each version the invariants are checked on it:
//! a Disabled or Provisioning worker holds no replica; a dead worker holds none either (its own
//! figure, [`Shadow::dead_replicas`]: a death drops its replicas in the entry that commits it,
//! so no later version may show one); no partition has two replicas on
//! one worker; a replica is marked leaving only while the others keep RF healthy serving
//! replicas; a preferred leader is a serving replica; every transition is legal (SPEC §1) and
//! starts from the state the log last gave; versions, epochs, sequence numbers and generations
//! only grow. Maintenance and cordons (SPEC §1): a maintenance is committed only while every
//! partition of its worker keeps `min_available` serving replicas on other workers that are
//! neither dead nor in maintenance (the disruption budget); no replica is added to a worker in
//! maintenance or cordoned; a worker in maintenance is declared dead only once its `until` has
//! passed. Snapshots taken during the run are checked whole with
//! [`drover_types::ClusterState::check_invariants`], and the replayed workers must match the
//! final snapshot's.

use std::collections::{BTreeMap, BTreeSet};

use drover_types::{ClusterState, Event, EventKind, ReplicaRole, WorkerState};

#[derive(Clone, Debug, Default)]
struct ShadowWorker {
    state: Option<WorkerState>,
    generation: u64,
    dead: bool,
    /// In maintenance until this wall-clock millisecond.
    maintenance_until: Option<u64>,
    /// The holders of its cordons.
    cordons: BTreeSet<String>,
}

#[derive(Clone, Debug, Default)]
struct ShadowPartition {
    epoch: u64,
    replicas: BTreeMap<String, ReplicaRole>,
    leader: Option<String>,
}

/// The lifecycle state rebuilt from events, and what was found wrong with it.
#[derive(Debug, Default)]
pub struct Shadow {
    workers: BTreeMap<String, ShadowWorker>,
    partitions: BTreeMap<u32, ShadowPartition>,
    rf: usize,
    last_seq: u64,
    last_version: u64,
    /// Version whose events have been applied but not yet checked.
    pending: Option<u64>,
    pub events: u64,
    pub versions_checked: u64,
    /// Events lost to retention before they were read (coverage, not a violation).
    pub gaps: u64,
    pub violations: Vec<String>,
    /// Replicas held by a dead worker, by state version.
    pub dead_replicas: Vec<String>,
    /// Deaths the log committed, in log order.
    pub deaths: Vec<Death>,
    /// The mass-failure brake is tripped (between its `brake_tripped` and `brake_released`
    /// events): no death may be committed.
    pub brake_on: bool,
    pub brake_trips: u64,
    /// The cluster's `min_available` setting (0: a majority of RF), for the budget check.
    pub min_available: u64,
    /// Maintenances begun (renewals not counted).
    pub maintenances: u64,
}

/// A death as the log committed it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Death {
    pub worker: String,
    pub generation: u64,
    /// The proposer's wall clock, read before it proposed the verdict (so before the commit).
    pub at_ms: u64,
    pub seq: u64,
    pub version: u64,
    /// When the harness had read the event (nanoseconds since the run started): the death was
    /// committed by then. Set by [`Shadow::seen`].
    pub seen_ns: Option<u64>,
}

impl Shadow {
    /// Applies the next page of events (in sequence order).
    pub fn feed(&mut self, events: &[Event]) {
        for e in events {
            if e.seq <= self.last_seq {
                continue;
            }
            if self.last_seq > 0 && e.seq != self.last_seq + 1 {
                self.violations.push(format!(
                    "events log skips from seq {} to {}",
                    self.last_seq, e.seq
                ));
            }
            if e.version < self.last_version {
                self.violations.push(format!(
                    "event {} has version {} below the previous {}",
                    e.seq, e.version, self.last_version
                ));
            }
            if let Some(v) = self.pending
                && e.version > v
            {
                self.check(v);
            }
            self.last_seq = e.seq;
            self.last_version = e.version;
            self.pending = Some(e.version);
            self.events += 1;
            self.apply(e);
        }
    }

    /// The deaths fed so far were read by `now` (nanoseconds since the run started).
    pub fn seen(&mut self, now: u64) {
        for d in self.deaths.iter_mut().rev() {
            if d.seen_ns.is_some() {
                break;
            }
            d.seen_ns = Some(now);
        }
    }

    /// Events before `first_seq` were compacted before we read them: restart from there.
    pub fn skip_to(&mut self, first_seq: u64) {
        self.gaps += first_seq.saturating_sub(self.last_seq + 1);
        self.last_seq = first_seq.saturating_sub(1);
    }

    /// The state version of the last event fed.
    pub fn last_version(&self) -> u64 {
        self.last_version
    }

    pub fn next_after(&self) -> u64 {
        self.last_seq
    }

    /// Checks the last version once no more events can arrive for it.
    pub fn finish(&mut self) {
        if let Some(v) = self.pending.take() {
            self.check(v);
        }
    }

    fn bad(&mut self, seq: u64, version: u64, what: String) {
        self.violations
            .push(format!("event {seq} (version {version}): {what}"));
    }

    fn apply(&mut self, e: &Event) {
        let (seq, v) = (e.seq, e.version);
        match &e.kind {
            EventKind::Registered {
                worker,
                generation,
                state,
            } => {
                let w = self.workers.entry(worker.to_string()).or_default();
                let prev = w.generation;
                w.generation = *generation;
                w.state = Some(*state);
                w.dead = false;
                if *generation <= prev {
                    self.bad(
                        seq,
                        v,
                        format!("{worker} registered at generation {generation} after {prev}"),
                    );
                }
            }
            EventKind::StateChanged {
                worker,
                from,
                to,
                forced,
                ..
            } => {
                let held = self.held(worker.as_str());
                let w = self.workers.entry(worker.to_string()).or_default();
                let was = w.state;
                w.state = Some(*to);
                if was != Some(*from) {
                    self.bad(
                        seq,
                        v,
                        format!("{worker} changed from {from} but was {was:?}"),
                    );
                }
                use WorkerState::*;
                let legal = match (from, to) {
                    (Provisioning, Active | Disabled) | (Active, Draining) | (Draining, Active) => {
                        true
                    }
                    (Draining, Disabled) => *forced || held == 0,
                    (Active, Disabled) => *forced,
                    _ => false,
                };
                if !legal {
                    self.bad(
                        seq,
                        v,
                        format!("illegal transition of {worker}: {from} -> {to} (forced {forced})"),
                    );
                }
            }
            EventKind::BrakeTripped { .. } => {
                self.brake_on = true;
                self.brake_trips += 1;
            }
            EventKind::BrakeReleased { .. } => self.brake_on = false,
            EventKind::Dead {
                worker, generation, ..
            } => {
                if self.brake_on {
                    self.bad(
                        seq,
                        v,
                        format!("{worker} declared dead while the mass-failure brake was tripped"),
                    );
                }
                self.deaths.push(Death {
                    worker: worker.to_string(),
                    generation: *generation,
                    at_ms: e.at_ms,
                    seq,
                    version: v,
                    seen_ns: None,
                });
                let w = self.workers.entry(worker.to_string()).or_default();
                w.dead = true;
                if *generation != w.generation {
                    let g = w.generation;
                    self.bad(
                        seq,
                        v,
                        format!("{worker} dead at generation {generation}, but it is at {g}"),
                    );
                }
            }
            EventKind::Removed { worker, .. } => {
                let held = self.held(worker.as_str());
                let state = self.workers.get(worker.as_str()).and_then(|w| w.state);
                if state != Some(WorkerState::Disabled) || held > 0 {
                    self.bad(
                        seq,
                        v,
                        format!("{worker} removed while {state:?} holding {held} replicas"),
                    );
                }
                // The tombstone keeps the generation: a new registration must exceed it.
                if let Some(w) = self.workers.get_mut(worker.as_str()) {
                    w.state = None;
                }
            }
            EventKind::TableCreated {
                count,
                replication_factor,
            } => {
                self.rf = usize::from(*replication_factor);
                for p in 0..*count {
                    self.partitions.insert(p, ShadowPartition::default());
                }
            }
            EventKind::ReplicaAdded {
                partition,
                worker,
                epoch,
                ..
            } => {
                self.epoch(seq, v, *partition, *epoch);
                if let Some(w) = self.workers.get(worker.as_str()) {
                    let why = if w.maintenance_until.is_some() {
                        Some("in maintenance".to_owned())
                    } else if !w.cordons.is_empty() {
                        Some(format!("cordoned by {:?}", w.cordons))
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        self.bad(
                            seq,
                            v,
                            format!("partition {partition} got a new replica on {worker}, {why}"),
                        );
                    }
                }
                let p = self.partitions.entry(*partition).or_default();
                if p.replicas
                    .insert(worker.to_string(), ReplicaRole::Joining)
                    .is_some()
                {
                    self.bad(
                        seq,
                        v,
                        format!("partition {partition} got a second replica on {worker}"),
                    );
                }
            }
            EventKind::ReplicaRole {
                partition,
                worker,
                role,
                epoch,
            } => {
                self.epoch(seq, v, *partition, *epoch);
                if *role == ReplicaRole::Leaving {
                    // Planned moves never take a partition below RF healthy serving replicas.
                    let p = self.partitions.get(partition).cloned().unwrap_or_default();
                    let others = p
                        .replicas
                        .iter()
                        .filter(|(w, r)| {
                            w.as_str() != worker.as_str()
                                && **r == ReplicaRole::Serving
                                && self.workers.get(w.as_str()).is_some_and(|x| !x.dead)
                        })
                        .count();
                    if others < self.rf {
                        self.bad(
                            seq,
                            v,
                            format!(
                                "partition {partition}: {worker} marked leaving with {others} \
                                 other healthy serving replicas, RF {}",
                                self.rf
                            ),
                        );
                    }
                }
                let p = self.partitions.entry(*partition).or_default();
                if p.replicas.insert(worker.to_string(), *role).is_none() {
                    self.bad(
                        seq,
                        v,
                        format!("partition {partition}: role change of absent replica {worker}"),
                    );
                }
            }
            EventKind::ReplicaRemoved {
                partition,
                worker,
                epoch,
                ..
            } => {
                self.epoch(seq, v, *partition, *epoch);
                let p = self.partitions.entry(*partition).or_default();
                if p.replicas.remove(worker.as_str()).is_none() {
                    self.bad(
                        seq,
                        v,
                        format!("partition {partition}: removed absent replica {worker}"),
                    );
                }
            }
            EventKind::LeaderChanged { partition, leader } => {
                self.partitions.entry(*partition).or_default().leader =
                    leader.as_ref().map(|l| l.to_string());
            }
            EventKind::Cordoned { worker, holder, .. } => {
                let w = self.workers.entry(worker.to_string()).or_default();
                w.cordons.insert(holder.clone());
            }
            EventKind::Uncordoned { worker, holder, .. } => {
                let w = self.workers.entry(worker.to_string()).or_default();
                w.cordons.remove(holder);
            }
            EventKind::MaintenanceStarted {
                worker, until_ms, ..
            } => {
                let renewal = self
                    .workers
                    .get(worker.as_str())
                    .is_some_and(|w| w.maintenance_until.is_some());
                if !renewal {
                    self.maintenances += 1;
                    for what in self.short_of_budget(worker.as_str()) {
                        self.bad(seq, v, format!("maintenance of {worker} allowed: {what}"));
                    }
                }
                let w = self.workers.entry(worker.to_string()).or_default();
                w.maintenance_until = Some(*until_ms);
            }
            EventKind::MaintenanceEnded { worker, cause, .. } => {
                let w = self.workers.entry(worker.to_string()).or_default();
                let until = w.maintenance_until.take();
                if cause == "dead"
                    && let Some(until) = until
                    && e.at_ms < until
                {
                    self.bad(
                        seq,
                        v,
                        format!(
                            "{worker} declared dead at {} ms during its maintenance (until {until})",
                            e.at_ms
                        ),
                    );
                }
            }
            // Pauses and drain bookkeeping change no replica or state the invariants read.
            EventKind::DrainStarted { .. }
            | EventKind::DrainPlanned { .. }
            | EventKind::Membership { .. }
            | EventKind::SchedulerPaused { .. }
            | EventKind::SchedulerResumed { .. }
            | EventKind::DrainOverdue { .. } => {}
        }
    }

    /// The disruption budget (SPEC §1): each partition of `worker` that, with it in
    /// maintenance, would keep fewer than `min_available` serving replicas on other workers
    /// neither dead nor in maintenance.
    fn short_of_budget(&self, worker: &str) -> Vec<String> {
        let min = match usize::try_from(self.min_available).unwrap_or(usize::MAX) {
            0 => self.rf / 2 + 1,
            n => n.min(self.rf),
        };
        let available = |w: &str| {
            w != worker
                && self
                    .workers
                    .get(w)
                    .is_some_and(|x| !x.dead && x.maintenance_until.is_none())
        };
        self.partitions
            .iter()
            .filter(|(_, p)| p.replicas.contains_key(worker))
            .filter_map(|(id, p)| {
                let up = p
                    .replicas
                    .iter()
                    .filter(|(w, r)| **r == ReplicaRole::Serving && available(w))
                    .count();
                (up < min).then(|| {
                    format!("partition {id} left with {up} available serving replicas, below {min}")
                })
            })
            .collect()
    }

    fn held(&self, worker: &str) -> usize {
        self.partitions
            .values()
            .filter(|p| p.replicas.contains_key(worker))
            .count()
    }

    fn epoch(&mut self, seq: u64, v: u64, partition: u32, epoch: u64) {
        let p = self.partitions.entry(partition).or_default();
        let before = p.epoch;
        p.epoch = epoch;
        if epoch <= before {
            self.bad(
                seq,
                v,
                format!("partition {partition} epoch went from {before} to {epoch}"),
            );
        }
    }

    /// The state invariants at the end of version `v`.
    fn check(&mut self, v: u64) {
        self.versions_checked += 1;
        let mut found = Vec::new();
        let mut dead = Vec::new();
        for (pid, p) in &self.partitions {
            for (w, role) in &p.replicas {
                match self.workers.get(w) {
                    None => found.push(format!("partition {pid} replica on unknown {w}")),
                    Some(x) if x.state == Some(WorkerState::Disabled) => {
                        found.push(format!("disabled worker {w} holds partition {pid}"))
                    }
                    Some(x) if x.state == Some(WorkerState::Provisioning) => {
                        found.push(format!("provisioning worker {w} holds partition {pid}"))
                    }
                    Some(x) if x.state.is_none() => {
                        found.push(format!("removed worker {w} holds partition {pid}"))
                    }
                    Some(x) if x.dead => dead.push(format!(
                        "at version {v}: dead worker {w} (generation {}) holds partition {pid} ({role:?})",
                        x.generation
                    )),
                    Some(_) => {}
                }
            }
            if let Some(l) = &p.leader
                && p.replicas.get(l) != Some(&ReplicaRole::Serving)
            {
                found.push(format!(
                    "partition {pid} leader {l} is not a serving replica"
                ));
            }
        }
        for f in found {
            self.violations.push(format!("at version {v}: {f}"));
        }
        self.dead_replicas.extend(dead);
    }

    /// The replayed workers must be the snapshot's (when no events were lost).
    pub fn compare(&mut self, s: &ClusterState) {
        if self.gaps > 0 {
            return;
        }
        for (id, w) in &s.workers {
            let mine = self.workers.get(id.as_str());
            let same = mine.is_some_and(|m| {
                m.state == Some(w.state) && m.generation == w.generation && m.dead == w.dead
            });
            if !same {
                self.violations.push(format!(
                    "replayed events give {id} as {mine:?}, the state has {} gen {} dead {}",
                    w.state, w.generation, w.dead
                ));
            }
        }
        for p in &s.partitions {
            let mine = self.partitions.get(&p.id);
            let replicas: BTreeMap<String, ReplicaRole> = p
                .replicas
                .iter()
                .map(|r| (r.worker.to_string(), r.role))
                .collect();
            if mine.map(|m| (&m.replicas, m.epoch)) != Some((&replicas, p.epoch)) {
                self.violations.push(format!(
                    "replayed events give partition {} as {mine:?}, the state has {replicas:?} at epoch {}",
                    p.id, p.epoch
                ));
            }
        }
    }
}

/// Replicas a whole state has on dead workers.
pub fn dead_replicas(s: &ClusterState) -> Vec<String> {
    let mut out = Vec::new();
    for p in &s.partitions {
        for r in &p.replicas {
            if let Some(w) = s.workers.get(&r.worker)
                && w.dead
            {
                out.push(format!(
                    "state at version {}: dead worker {} (generation {}) holds partition {} ({:?})",
                    s.version, w.id, w.generation, p.id, r.role
                ));
            }
        }
    }
    out
}

/// Every SPEC §6 invariant `drover-types` can read off one whole state.
pub fn check_state(s: &ClusterState) -> Vec<String> {
    s.check_invariants()
        .into_iter()
        .map(|v| format!("snapshot at version {}: {}", s.version, v.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_types::WorkerId;

    fn ev(seq: u64, version: u64, kind: EventKind) -> Event {
        Event {
            seq,
            version,
            at_ms: 1_000 + seq,
            kind,
        }
    }

    /// The events of a worker that registers, turns Active and is given a replica, then dies
    /// at version 6; `removed` says whether the death's entry removed the replica too.
    fn stream(removed: bool) -> Vec<Event> {
        let w = || WorkerId::new("f-1");
        let mut events = vec![
            ev(
                1,
                2,
                EventKind::Registered {
                    worker: w(),
                    generation: 1,
                    state: WorkerState::Provisioning,
                },
            ),
            ev(
                2,
                3,
                EventKind::StateChanged {
                    worker: w(),
                    from: WorkerState::Provisioning,
                    to: WorkerState::Active,
                    forced: false,
                    reason: None,
                    actor: "admin".into(),
                },
            ),
            ev(
                3,
                4,
                EventKind::TableCreated {
                    count: 1,
                    replication_factor: 1,
                },
            ),
            ev(
                4,
                5,
                EventKind::ReplicaAdded {
                    partition: 0,
                    worker: w(),
                    epoch: 1,
                    replaces: None,
                },
            ),
        ];
        if removed {
            events.push(ev(
                5,
                6,
                EventKind::ReplicaRemoved {
                    partition: 0,
                    worker: w(),
                    epoch: 2,
                    acknowledged: false,
                },
            ));
        }
        let seq = events.len() as u64 + 1;
        events.push(ev(
            seq,
            6,
            EventKind::Dead {
                worker: w(),
                generation: 1,
                replicas_dropped: u32::from(removed),
            },
        ));
        events
    }

    /// The brake check can fail: `apply` refuses a death under a tripped brake, so it is shown
    /// failing on a synthetic stream with a death committed between the trip and the release,
    /// and passing when the death comes after the release.
    #[test]
    fn a_death_under_a_tripped_brake_is_reported() {
        let trip = |seq| {
            ev(
                seq,
                seq,
                EventKind::BrakeTripped {
                    workers: vec![WorkerId::new("f-1")],
                    reason: "two of three silent".into(),
                },
            )
        };
        let release = |seq| {
            ev(
                seq,
                seq,
                EventKind::BrakeReleased {
                    actor: "scheduler".into(),
                    reason: None,
                    until_ms: None,
                },
            )
        };
        let mut events = stream(true);
        let death = events.pop().unwrap();
        let n = events.len() as u64;
        let mut held = events.clone();
        held.extend([trip(n + 1), renumber(death.clone(), n + 2), release(n + 3)]);
        let mut sh = Shadow::default();
        sh.feed(&held);
        sh.finish();
        assert_eq!(sh.brake_trips, 1);
        assert!(
            sh.violations.iter().any(|v| v.contains("brake")),
            "{:?}",
            sh.violations
        );

        let mut after = events;
        after.extend([trip(n + 1), release(n + 2), renumber(death, n + 3)]);
        let mut sh = Shadow::default();
        sh.feed(&after);
        sh.finish();
        assert!(sh.violations.is_empty(), "{:?}", sh.violations);
    }

    /// Events numbered in order, one state version each.
    #[derive(Default)]
    struct Log(Vec<Event>);

    impl Log {
        fn push(&mut self, kind: EventKind) -> &mut Self {
            let seq = self.0.len() as u64 + 1;
            self.0.push(ev(seq, seq, kind));
            self
        }

        /// Workers `f-1`..`f-3` Active, and one partition of RF 3 serving on all three.
        fn three_serving() -> Log {
            let mut log = Log::default();
            for i in 1..=3 {
                let w = WorkerId::new(format!("f-{i}"));
                log.push(EventKind::Registered {
                    worker: w.clone(),
                    generation: 1,
                    state: WorkerState::Provisioning,
                })
                .push(EventKind::StateChanged {
                    worker: w,
                    from: WorkerState::Provisioning,
                    to: WorkerState::Active,
                    forced: false,
                    reason: None,
                    actor: "admin".into(),
                });
            }
            log.push(EventKind::TableCreated {
                count: 1,
                replication_factor: 3,
            });
            for i in 1..=3u64 {
                let w = WorkerId::new(format!("f-{i}"));
                log.push(EventKind::ReplicaAdded {
                    partition: 0,
                    worker: w.clone(),
                    epoch: 2 * i - 1,
                    replaces: None,
                })
                .push(EventKind::ReplicaRole {
                    partition: 0,
                    worker: w,
                    role: ReplicaRole::Serving,
                    epoch: 2 * i,
                });
            }
            log
        }

        fn maintenance(&mut self, worker: &str, until_ms: u64) -> &mut Self {
            self.push(EventKind::MaintenanceStarted {
                worker: WorkerId::new(worker),
                reason: "upgrade".into(),
                actor: "admin".into(),
                until_ms,
            })
        }

        fn ended(&mut self, worker: &str, cause: &str) -> &mut Self {
            self.push(EventKind::MaintenanceEnded {
                worker: WorkerId::new(worker),
                actor: "scheduler".into(),
                cause: cause.into(),
            })
        }

        fn violations(&self) -> Vec<String> {
            let mut sh = Shadow::default();
            sh.feed(&self.0);
            sh.finish();
            sh.violations
        }
    }

    /// The budget check can fail: `apply` refuses a maintenance that leaves a partition short,
    /// so it is shown failing on a synthetic stream that lets a second worker of the partition
    /// into maintenance while the first is still in it (one serving replica left of three, the
    /// budget a majority), and passing once the first has returned.
    #[test]
    fn a_maintenance_past_the_disruption_budget_is_reported() {
        let mut log = Log::three_serving();
        log.maintenance("f-1", 1_000_000);
        assert!(log.violations().is_empty(), "{:?}", log.violations());
        // A renewal is not a second maintenance.
        log.maintenance("f-1", 2_000_000);
        assert!(log.violations().is_empty(), "{:?}", log.violations());

        let mut bad = Log(log.0.clone());
        bad.maintenance("f-2", 1_000_000);
        let v = bad.violations();
        assert!(
            v.len() == 1 && v[0].contains("maintenance of f-2 allowed") && v[0].contains("with 1"),
            "{v:?}"
        );

        log.ended("f-1", "returned").maintenance("f-2", 1_000_000);
        assert!(log.violations().is_empty(), "{:?}", log.violations());
    }

    /// Nothing new lands on a worker in maintenance or cordoned, and a worker in maintenance
    /// dies only after its `until`: each shown failing on a synthetic stream, and passing once
    /// the cordon is lifted or the maintenance has run out.
    #[test]
    fn placements_on_held_workers_and_deaths_in_maintenance_are_reported() {
        let w4 = || WorkerId::new("f-4");
        let mut log = Log::three_serving();
        log.push(EventKind::Registered {
            worker: w4(),
            generation: 1,
            state: WorkerState::Provisioning,
        })
        .push(EventKind::StateChanged {
            worker: w4(),
            from: WorkerState::Provisioning,
            to: WorkerState::Active,
            forced: false,
            reason: None,
            actor: "admin".into(),
        })
        .push(EventKind::Cordoned {
            worker: w4(),
            holder: "ops".into(),
            reason: "disk alarm".into(),
            actor: "admin".into(),
            until_ms: None,
        });
        let add = |epoch| EventKind::ReplicaAdded {
            partition: 0,
            worker: w4(),
            epoch,
            replaces: None,
        };
        let mut bad = Log(log.0.clone());
        bad.push(add(7));
        let v = bad.violations();
        assert!(v.len() == 1 && v[0].contains("cordoned"), "{v:?}");
        log.push(EventKind::Uncordoned {
            worker: w4(),
            holder: "ops".into(),
            actor: "admin".into(),
            expired: false,
        });
        let mut fine = Log(log.0.clone());
        fine.push(add(7));
        assert!(fine.violations().is_empty(), "{:?}", fine.violations());

        // Event `seq` is stamped at 1 000 + seq ms.
        let mut early = Log(log.0.clone());
        early.maintenance("f-4", 5_000).push(add(7));
        let v = early.violations();
        assert!(v.len() == 1 && v[0].contains("in maintenance"), "{v:?}");
        let mut early = Log(log.0.clone());
        early.maintenance("f-4", 5_000).ended("f-4", "dead");
        let v = early.violations();
        assert!(
            v.len() == 1 && v[0].contains("during its maintenance"),
            "{v:?}"
        );
        let mut late = Log(log.0);
        late.maintenance("f-4", 1_010).ended("f-4", "dead");
        assert!(late.violations().is_empty(), "{:?}", late.violations());
    }

    /// `e` as event `seq` of state version `seq` (above every version of [`stream`]).
    fn renumber(mut e: Event, seq: u64) -> Event {
        e.seq = seq;
        e.version = seq;
        e
    }

    /// The dead-worker check can fail: no server bug planted behind a flag can keep a replica
    /// on a dead worker (`apply` drops them in the death's own entry), so it is shown failing on
    /// a synthetic events stream whose death leaves the replica in place — at that version and
    /// at every later one — and passing on the stream `apply` really writes.
    #[test]
    fn a_replica_left_on_a_dead_worker_is_reported_at_every_version() {
        let mut sh = Shadow::default();
        sh.feed(&stream(true));
        sh.finish();
        assert!(sh.dead_replicas.is_empty(), "{:?}", sh.dead_replicas);
        assert!(sh.violations.is_empty(), "{:?}", sh.violations);
        assert_eq!(sh.deaths.len(), 1);

        let mut sh = Shadow::default();
        let mut events = stream(false);
        events.push(ev(
            6,
            7,
            EventKind::LeaderChanged {
                partition: 0,
                leader: None,
            },
        ));
        sh.feed(&events);
        sh.finish();
        assert_eq!(sh.dead_replicas.len(), 2, "{:?}", sh.dead_replicas);
        assert!(
            sh.dead_replicas[0].contains("at version 6"),
            "{:?}",
            sh.dead_replicas
        );
        assert!(
            sh.dead_replicas[1].contains("at version 7"),
            "{:?}",
            sh.dead_replicas
        );
        assert!(sh.violations.is_empty(), "{:?}", sh.violations);
    }
}
