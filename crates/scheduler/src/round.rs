//! One scheduling round: at most one epoch-changing step per partition, in priority order
//! (withdraw stale joiners, restore, release excess, drain, zone spread, balance), then preferred
//! leaders and emptied draining workers.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use drover_types::{
    ClusterState, Partition, PartitionId, PlannedMove, Replica, ReplicaRole, WorkerId, WorkerState,
};

use crate::target::{Target, target};
use crate::topology::{Topology, ZoneKey, after_departures};
use crate::{BlockCode, Blocked, LeaderCause, Liveness, Plan, PlannerConfig, Reason, Step};

/// A worker's load and the floor and ceiling of its share, as the zone balance reads them.
struct Bounds {
    load: i64,
    floor: i64,
    ceil: i64,
}

/// Plans one round. Pure and deterministic: the same inputs give the same plan.
pub fn plan(s: &ClusterState, live: &Liveness, cfg: &PlannerConfig) -> Plan {
    let mut r = Round {
        t: Topology::new(s, live, cfg),
        plan: Plan {
            feasible: true,
            ..Plan::default()
        },
        busy: BTreeSet::new(),
        releasing: BTreeSet::new(),
        target: None,
        placed: 0,
    };
    r.in_flight();
    r.target = target(&r.t, &r.releasing);
    r.restore();
    r.release_excess();
    let unplanned = r.plan_new_drains();
    r.drain(&unplanned);
    if r.target.is_some() {
        r.follow_target();
    } else {
        r.zone_spread();
        r.balance();
    }
    r.leaders();
    r.disable_emptied();
    // Drain plans first: they were made at the epochs the round's other steps change.
    r.plan
        .steps
        .sort_by_key(|step| !matches!(step, Step::Plan { .. }));
    r.plan.feasible = r.plan.blocked.iter().all(|b| b.code.is_transient());
    if !live.unheard.is_empty() {
        // Liveness not known yet: moves wait for it; steps that finish moves go ahead.
        r.plan.steps.retain(|step| !step.adds_replica());
    }
    if let Some(pause) = &s.brakes.pause {
        r.hold_new_moves(&pause.reason);
    }
    if let Some(brake) = &s.brakes.mass_failure {
        r.hold_restores(&brake.reason);
    }
    r.plan
}

struct Round<'a> {
    t: Topology<'a>,
    plan: Plan,
    /// Partitions that already have an epoch-changing step this round, or a move in flight.
    busy: BTreeSet<PartitionId>,
    /// Replicas this round releases or withdraws: not eligible as preferred leaders.
    releasing: BTreeSet<(PartitionId, WorkerId)>,
    /// Where the rules want every replica with the fewest moves, when the flow applies
    /// (see [`crate::target`]); otherwise the greedy passes choose.
    target: Option<Target>,
    /// Partitions placed this round (initial placement), at most [`PLACEMENTS_PER_ROUND`].
    placed: usize,
}

/// Most new partitions one round places: a table of 30,000 is placed over a few rounds, whose
/// steps each commit in a few entries, so agents acknowledge the first partitions while the
/// next are planned, rather than after one round's commit of them all.
const PLACEMENTS_PER_ROUND: usize = 4096;

impl Round<'_> {
    /// SPEC §3 pause: no new move starts — the adds of drains and rebalances are held back and
    /// reported `paused`. Everything that finishes a move in flight goes ahead (releases after
    /// a completed join, withdrawals, disabling an emptied worker, committing drain targets),
    /// and so do restores of under-replicated partitions: deaths are still judged, and their
    /// replicas re-created, as SPEC §3 keeps for the pause (the mass-failure brake is the one
    /// that stops re-replication).
    fn hold_new_moves(&mut self, why: &str) {
        let mut held = Vec::new();
        self.plan.steps.retain(|step| match step {
            Step::Add {
                partition,
                replaces,
                reason: Reason::Drain | Reason::Rebalance,
                ..
            } => {
                held.push((*partition, replaces.clone()));
                false
            }
            _ => true,
        });
        for (p, from) in held {
            let detail = format!("the scheduler is paused: {why}");
            self.block(p, from.as_ref(), BlockCode::Paused, detail);
        }
    }

    /// SPEC §3 mass-failure brake: nothing is re-created while it holds — restores are held
    /// back and reported `mass_failure` (planned drains and rebalances go on; with so many
    /// workers gone they mostly wait anyway).
    fn hold_restores(&mut self, why: &str) {
        let mut held = Vec::new();
        self.plan.steps.retain(|step| match step {
            Step::Add {
                partition,
                reason: Reason::Restore,
                ..
            }
            | Step::Place { partition, .. } => {
                held.push(*partition);
                false
            }
            _ => true,
        });
        for p in held {
            let detail = format!("the mass-failure brake holds: {why}");
            self.block(p, None, BlockCode::MassFailure, detail);
        }
    }

    fn block(
        &mut self,
        p: PartitionId,
        worker: Option<&WorkerId>,
        code: BlockCode,
        detail: String,
    ) {
        self.plan.blocked.push(Blocked {
            partition: p,
            worker: worker.cloned(),
            code,
            detail,
        });
    }

    fn healthy(&self, p: &Partition) -> usize {
        self.t.healthy_serving(p)
    }

    fn is_draining(&self, w: &WorkerId) -> bool {
        self.t
            .worker(w)
            .is_some_and(|w| w.state == WorkerState::Draining)
    }

    /// The target's workers for `p` that do not hold it yet, those in `from`'s zone first (a
    /// move within a zone keeps the partition's zone spread while it is in flight).
    fn target_adds(&self, p: &Partition, from: Option<&WorkerId>) -> Vec<WorkerId> {
        let Some(want) = self.target.as_ref().and_then(|t| t.of(p.id)) else {
            return Vec::new();
        };
        let zone = from.and_then(|f| self.t.zone_of(f));
        // A committed drain move's target is that move's: a restore or a rebalance taking it
        // would make the drain replan the move its dry run showed.
        let arriving: BTreeSet<&WorkerId> = self
            .t
            .arriving
            .range((p.id, WorkerId::from(""))..)
            .take_while(|((pid, _), _)| *pid == p.id)
            .map(|(_, to)| to)
            .collect();
        let mut adds: Vec<WorkerId> = want
            .iter()
            .filter(|w| p.replica(w).is_none() && self.t.is_candidate(w) && !arriving.contains(w))
            .cloned()
            .collect();
        adds.sort_by_key(|w| zone.is_none() || self.t.zone_of(w) != zone);
        adds
    }

    /// The target's choice of a new replica for `p` (replacing `from`): the first of
    /// [`Self::target_adds`] with a free move slot; `Throttled` if all of them are busy; `None`
    /// when the target has no opinion (the greedy choice then decides).
    fn target_choice(
        &self,
        p: &Partition,
        from: Option<&WorkerId>,
    ) -> Option<Result<WorkerId, BlockCode>> {
        let adds = self.target_adds(p, from);
        if adds.is_empty() {
            return None;
        }
        Some(
            adds.into_iter()
                .find(|w| self.t.has_slot(w))
                .ok_or(BlockCode::Throttled),
        )
    }

    /// Plans an add for `p`, honouring the global throttle; returns whether it did.
    fn add(
        &mut self,
        p: &Partition,
        to: WorkerId,
        from: Option<&WorkerId>,
        reason: Reason,
    ) -> bool {
        if !self.t.has_total_slot() || from.is_some_and(|f| !self.t.has_slot(f)) {
            self.block(
                p.id,
                from,
                BlockCode::Throttled,
                format!("{reason:?} move waits for a throttle slot"),
            );
            return false;
        }
        self.t.note_add(&to, from);
        self.busy.insert(p.id);
        self.plan.steps.push(Step::Add {
            partition: p.id,
            worker: to,
            epoch: p.epoch,
            reason,
            replaces: from.cloned(),
        });
        true
    }

    /// Joining replicas: withdraw those whose worker became unusable or that timed out; the
    /// others wait for their acknowledgement. Leaving replicas wait for theirs.
    fn in_flight(&mut self) {
        let s = self.t.s;
        for p in &s.partitions {
            let mut withdrawn = false;
            for r in &p.replicas {
                match r.role {
                    ReplicaRole::Joining => {
                        let usable = self
                            .t
                            .worker(&r.worker)
                            .is_some_and(|w| w.state == WorkerState::Active && !w.dead);
                        let expired = self.t.live.now_ms.saturating_sub(r.since_ms)
                            > self.t.cfg.join_timeout_ms;
                        if (!usable || expired) && !withdrawn {
                            withdrawn = true;
                            self.plan.steps.push(Step::Withdraw {
                                partition: p.id,
                                worker: r.worker.clone(),
                                epoch: p.epoch,
                            });
                            self.t.note_release(p.id, &r.worker);
                            if let Some(src) = &r.replaces {
                                self.t.keep_departing(p.id, src);
                            }
                            self.releasing.insert((p.id, r.worker.clone()));
                        } else {
                            self.block(
                                p.id,
                                Some(&r.worker),
                                BlockCode::AwaitingAck,
                                "joining replica catching up".into(),
                            );
                        }
                        self.busy.insert(p.id);
                    }
                    ReplicaRole::Leaving => {
                        self.block(
                            p.id,
                            Some(&r.worker),
                            BlockCode::AwaitingAck,
                            "release not acknowledged yet".into(),
                        );
                    }
                    ReplicaRole::Serving => {}
                }
            }
        }
    }

    /// Rule 5's first priority: partitions with fewer than RF healthy serving replicas. A
    /// partition that never held a replica (a new table) is placed whole instead.
    fn restore(&mut self) {
        let s = self.t.s;
        for p in &s.partitions {
            if self.busy.contains(&p.id) || self.healthy(p) >= usize::from(p.replication_factor) {
                continue;
            }
            if p.epoch == 0 && p.replicas.is_empty() {
                if self.placed < PLACEMENTS_PER_ROUND {
                    self.place(p);
                }
                continue;
            }
            if !self.t.has_total_slot() {
                let detail = "restore waits for a throttle slot".to_owned();
                self.block(p.id, None, BlockCode::Throttled, detail);
                continue;
            }
            let choice = self
                .target_choice(p, None)
                .unwrap_or_else(|| self.t.choose_target(p, None));
            match choice {
                Ok(to) => {
                    self.add(p, to, None, Reason::Restore);
                }
                Err(code) => {
                    let detail = format!(
                        "partition has {} of {} healthy replicas and no worker can take another",
                        self.healthy(p),
                        p.replication_factor
                    );
                    self.block(p.id, None, code, detail);
                }
            }
        }
    }

    /// Initial placement (SPEC §3): RF replicas at once on the workers the greedy choice picks,
    /// one after another as if each were already there; no data moves, so no throttle applies.
    /// As many as can be placed are, when fewer than RF can; none is `no_candidate`.
    fn place(&mut self, p: &Partition) {
        self.placed += 1;
        let mut tentative = p.clone();
        let rf = usize::from(p.replication_factor);
        // The flow's target, when it covers the partition (a round then has no reason to move
        // the replicas again), and the greedy choice for the rest.
        let mut workers: Vec<WorkerId> = self.target_adds(p, None);
        workers.truncate(rf);
        for w in &workers {
            tentative
                .replicas
                .push(Replica::joining(w.clone(), 0, 0, None));
        }
        let mut refused = None;
        while workers.len() < rf {
            match self.t.choose_placement(&tentative) {
                Ok(w) => {
                    tentative
                        .replicas
                        .push(Replica::joining(w.clone(), 0, 0, None));
                    workers.push(w);
                }
                Err(code) => {
                    refused = Some(code);
                    break;
                }
            }
        }
        if let Some(code) = refused {
            let detail = format!(
                "a new partition can be placed on {} of the {} workers it needs",
                workers.len(),
                p.replication_factor
            );
            self.block(p.id, None, code, detail);
        }
        if workers.is_empty() {
            return;
        }
        for w in &workers {
            self.t.note_place(w);
        }
        self.busy.insert(p.id);
        self.plan.steps.push(Step::Place {
            partition: p.id,
            workers,
            epoch: p.epoch,
        });
    }

    /// Break step: a partition with more than RF healthy serving replicas releases the one whose
    /// departure helps most (on a draining worker, then a duplicated zone, then the most loaded).
    fn release_excess(&mut self) {
        let s = self.t.s;
        for p in &s.partitions {
            let rf = usize::from(p.replication_factor);
            if self.busy.contains(&p.id) || self.healthy(p) <= rf {
                continue;
            }
            let Some(victim) = self.release_choice(p) else {
                continue;
            };
            let reason = if self.is_draining(&victim) {
                Reason::Drain
            } else {
                Reason::Rebalance
            };
            self.t.note_release(p.id, &victim);
            self.busy.insert(p.id);
            self.releasing.insert((p.id, victim.clone()));
            self.plan.steps.push(Step::Release {
                partition: p.id,
                worker: victim,
                epoch: p.epoch,
                reason,
            });
        }
    }

    fn release_choice(&self, p: &Partition) -> Option<WorkerId> {
        // A completed make step names its source: release exactly that one, so the move that
        // was planned is the move that happens.
        let serving = |w: &WorkerId| p.replica(w).filter(|r| r.role == ReplicaRole::Serving);
        let pending = p
            .replicas
            .iter()
            .filter(|r| r.role == ReplicaRole::Serving)
            .find_map(|r| {
                let source = r.replaces.as_ref()?;
                serving(source)
                    .filter(|s| s.since < r.since && self.t.is_alive(source))
                    .map(|_| source.clone())
            });
        if pending.is_some() {
            return pending;
        }
        let strict = self.t.candidate_zone_count() >= usize::from(p.replication_factor);
        let used = self.t.zones_used(p, None);
        let avg_zone = {
            let zones = &self.t.zone_load;
            let n = zones.len().max(1) as f64;
            zones.values().sum::<i64>() as f64 / n
        };
        let score = |w: &WorkerId| -> f64 {
            let mut score = 0.0;
            if self.is_draining(w) {
                score -= 1000.0;
            }
            if self.t.live.is_suspect(w) {
                score += 500.0;
            }
            if let Some(z) = self.t.zone_of(w) {
                if strict && used.get(&z).copied().unwrap_or(0) > 1 {
                    score -= 100.0;
                }
                let zl = self.t.zone_load.get(&z).copied().unwrap_or(0) as f64;
                score += (zl - 1.0 - avg_zone).abs() - (zl - avg_zone).abs();
            }
            score -= self.t.excess(w).clamp(-50.0, 50.0);
            score
        };
        // The target's choice first: a replica it does not keep.
        let unwanted = |w: &WorkerId| {
            self.target
                .as_ref()
                .is_some_and(|t| t.of(p.id).is_some_and(|ws| !ws.contains(w)))
        };
        let candidates = || {
            p.replicas
                .iter()
                .filter(|r| r.role == ReplicaRole::Serving && self.t.is_alive(&r.worker))
                .filter(|r| !self.t.in_maintenance(&r.worker))
        };
        let any_unwanted = candidates().any(|r| unwanted(&r.worker));
        candidates()
            .filter(|r| !any_unwanted || unwanted(&r.worker))
            .map(|r| (score(&r.worker), &r.worker))
            .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(b.1)))
            .map(|(_, w)| w.clone())
    }

    /// Drain make steps: a replica on a draining worker gets its replacement, the committed
    /// plan's target when it is still usable, otherwise a newly chosen one.
    /// Drains begun by a bare state change have no committed plan: commit the one a dry run
    /// would show before any of their moves starts. Returns the workers those drains cover;
    /// their moves wait for the next round, which follows the committed plan.
    fn plan_new_drains(&mut self) -> BTreeSet<WorkerId> {
        let s = self.t.s;
        let mut waiting = BTreeSet::new();
        for d in s.drains.values().filter(|d| !d.planned) {
            let plan = crate::plan_drain(s, self.t.live, &d.workers);
            // The moves start next round; until then their replicas count where they go, so
            // this round's rebalance does not fill the zones the drain is about to fill.
            for to in plan.moves.iter().filter_map(|m| m.to.as_ref()) {
                self.t.expect_arrival(to);
            }
            self.plan.steps.push(Step::Plan {
                drain: d.id,
                moves: plan.moves,
            });
            waiting.extend(d.workers.iter().cloned());
        }
        waiting
    }

    fn drain(&mut self, unplanned: &BTreeSet<WorkerId>) {
        let s = self.t.s;
        // Replanned moves, by drain.
        let mut replans: BTreeMap<u64, Vec<PlannedMove>> = BTreeMap::new();
        let committed: BTreeMap<(PartitionId, &WorkerId), &Option<WorkerId>> = s
            .drains
            .values()
            .flat_map(|d| d.moves.iter().map(|m| ((m.partition, &m.from), &m.to)))
            .collect();
        for p in &s.partitions {
            if self.busy.contains(&p.id) {
                continue;
            }
            let Some(from) = p
                .replicas
                .iter()
                .find(|r| r.role == ReplicaRole::Serving && self.is_draining(&r.worker))
                .map(|r| r.worker.clone())
            else {
                continue;
            };
            if unplanned.contains(&from) {
                // Its move waits for the plan; no other pass may move the partition meanwhile.
                self.busy.insert(p.id);
                continue;
            }
            // The move is decided now: take back its count as an expected arrival. Starting it
            // counts the add; waiting for its target counts the arrival again.
            self.t.take_arrival(p.id, &from);
            let planned = committed.get(&(p.id, &from)).and_then(|t| t.as_ref());
            let holders: BTreeSet<&WorkerId> = p.replicas.iter().map(|r| &r.worker).collect();
            // Rule 2 as the drain plan judged it: every replica on a draining worker counts as
            // gone, not only the one moving now (see `after_departures`).
            let view = after_departures(p, |w| self.is_draining(w));
            // The committed target is kept while it is usable; a suspect or busy target is
            // waited for, not replaced (SPEC §3: replan only moves whose target became
            // unusable — Disabled, dead, no longer Active, or now holding the partition). Not
            // re-judged by rule 2 one move at a time: the plan was made for all of the drain's
            // moves together (by the target placement, or on `view` by the greedy choice), and
            // a round that judged one of them alone — say while a worker elsewhere is suspect
            // and the target placement does not apply — replanned a move the dry run showed.
            // A planned target cordoned since the plan is replanned: the operator wants
            // nothing new on it, however long the cordon lasts.
            let usable = |t: &WorkerId| {
                self.t
                    .balanced
                    .get(t)
                    .is_some_and(|w| w.takes_new_replicas())
                    && !self.t.excluded.contains(t)
                    && !holders.contains(t)
            };
            let target = match planned {
                Some(t) if usable(t) && (self.t.live.is_suspect(t) || !self.t.has_slot(t)) => {
                    let code = if self.t.live.is_suspect(t) {
                        BlockCode::AwaitingAck
                    } else {
                        BlockCode::Throttled
                    };
                    let detail = format!("planned target {t} is suspect or busy; waiting for it");
                    self.block(p.id, Some(&from), code, detail);
                    self.t.expect_arrival(t);
                    // Nothing else moves the partition meanwhile: a rebalance onto the planned
                    // target would make the drain pick another one.
                    self.busy.insert(p.id);
                    continue;
                }
                Some(t) if usable(t) => Ok(t.clone()),
                _ => self
                    .target_choice(p, Some(&from))
                    .unwrap_or_else(|| self.t.choose_target(&view, Some(&from))),
            };
            let to = match target {
                Ok(to) => {
                    if !self.add(p, to.clone(), Some(&from), Reason::Drain) {
                        // Throttled: it waits for a slot, and nothing else moves the partition.
                        self.busy.insert(p.id);
                        self.t.expect_arrival(&to);
                        continue;
                    }
                    Some(to)
                }
                Err(code) => {
                    let detail =
                        format!("no worker can take partition {} from draining {from}", p.id);
                    self.block(p.id, Some(&from), code, detail);
                    None
                }
            };
            if planned != to.as_ref()
                && let Some(d) = s.drain_of(&from)
            {
                replans.entry(d.id).or_default().push(PlannedMove {
                    partition: p.id,
                    from,
                    to,
                    epoch: p.epoch,
                });
            }
        }
        self.plan.steps.extend(
            replans
                .into_iter()
                .map(|(drain, moves)| Step::Plan { drain, moves }),
        );
    }

    /// Rules 2–4 by the target: a partition the target places elsewhere gets one of its new
    /// replicas, replacing one the target does not keep (in the same zone when it can). The
    /// surplus replica is released once the new one has joined.
    fn follow_target(&mut self) {
        let s = self.t.s;
        for p in &s.partitions {
            if self.busy.contains(&p.id) || self.healthy(p) < usize::from(p.replication_factor) {
                continue;
            }
            let Some(want) = self.target.as_ref().and_then(|t| t.of(p.id)) else {
                continue;
            };
            let drops: Vec<WorkerId> = p
                .replicas
                .iter()
                .filter(|r| {
                    r.role == ReplicaRole::Serving
                        && !want.contains(&r.worker)
                        && self.t.is_candidate(&r.worker)
                        && !self.t.departing.contains(&(p.id, r.worker.clone()))
                })
                .map(|r| r.worker.clone())
                .collect();
            let mut chosen = None;
            let mut throttled = false;
            'drops: for from in &drops {
                for to in self.target_adds(p, Some(from)) {
                    if self.t.has_slot(from) && self.t.has_slot(&to) {
                        chosen = Some((from.clone(), to));
                        break 'drops;
                    }
                    throttled = true;
                }
            }
            match chosen {
                Some((from, to)) if self.add(p, to.clone(), Some(&from), Reason::Rebalance) => {
                    self.t.count_out(&from);
                }
                Some(_) => {}
                None if throttled => {
                    let detail = "rebalance move waits for a throttle slot".to_owned();
                    self.block(p.id, drops.first(), BlockCode::Throttled, detail);
                }
                None => {}
            }
        }
    }

    /// Rule 2: a partition whose replicas share a zone while enough zones have candidates gets
    /// a replica in an unused zone; with fewer zones than RF, one whose zone counts differ by
    /// two or more gets one in its emptiest zone. The surplus replica is released next round.
    fn zone_spread(&mut self) {
        let s = self.t.s;
        let cand_zones = self.t.candidate_zones();
        for p in &s.partitions {
            if self.busy.contains(&p.id) || self.healthy(p) < usize::from(p.replication_factor) {
                continue;
            }
            let used = self.t.zones_used(p, None);
            let count = |z: &ZoneKey| used.get(z).copied().unwrap_or(0);
            let crowded = if cand_zones.len() >= usize::from(p.replication_factor) {
                used.iter().find(|(_, n)| **n > 1).map(|(z, _)| z.clone())
            } else {
                // Only zones that can still take a replica of p count as emptier.
                let open = self.t.open_zones(p);
                open.iter().map(count).min().and_then(|least| {
                    cand_zones
                        .iter()
                        .filter(|z| count(z) >= least + 2)
                        .max_by_key(|z| count(z))
                        .cloned()
                })
            };
            let Some(crowded) = crowded else { continue };
            let from = p
                .replicas
                .iter()
                .filter(|r| {
                    r.role == ReplicaRole::Serving
                        && self.t.zone_of(&r.worker).as_ref() == Some(&crowded)
                        && !self.t.in_maintenance(&r.worker)
                })
                .map(|r| &r.worker)
                .max_by(|a, b| self.t.excess(a).total_cmp(&self.t.excess(b)).then(b.cmp(a)))
                .cloned();
            match self.t.choose_target(p, from.as_ref()) {
                Ok(to) => {
                    // The release comes once `to` has joined; count it now, so the next
                    // partition's source is chosen on the loads this one leaves. Otherwise
                    // every crowded partition of a round took its source from the same worker,
                    // and the per-zone balance then had to move replicas back onto it.
                    if self.add(p, to, from.as_ref(), Reason::Rebalance)
                        && let Some(f) = &from
                    {
                        self.t.count_out(f);
                    }
                }
                Err(code) => {
                    let detail =
                        format!("replicas crowd zone {crowded:?} and no other zone can take one");
                    let code = if code == BlockCode::Throttled {
                        code
                    } else {
                        BlockCode::ZoneConstraint
                    };
                    self.block(p.id, from.as_ref(), code, detail);
                }
            }
        }
    }

    /// Rule 3: within each zone, move replicas from workers above the ceiling of their share to
    /// workers with room (or from above-floor workers to ones below their floor); then even out
    /// zone totals. A replica moves only when a bound is broken (rule 4).
    fn balance(&mut self) {
        let zones: Vec<ZoneKey> = self.t.zone_cap.keys().cloned().collect();
        for z in &zones {
            self.balance_zone(z);
        }
        self.balance_zones();
    }

    /// Whether partition `pid` can move its serving replica from `from` to `to` this round.
    fn can_move(&self, pid: PartitionId, from: &WorkerId, to: &WorkerId) -> bool {
        let Some(p) = self.t.s.partition(pid) else {
            return false;
        };
        !self.busy.contains(&pid)
            && p.replica(from)
                .is_some_and(|r| r.role == ReplicaRole::Serving)
            && p.replica(to).is_none()
            && self.healthy(p) >= usize::from(p.replication_factor)
    }

    /// A partition whose serving replica can move from `from` to `to`.
    fn movable_partitions(&self, from: &WorkerId, to: &WorkerId) -> Option<PartitionId> {
        let held = self.t.held.get(from)?;
        held.iter()
            .copied()
            .find(|&pid| self.can_move(pid, from, to))
    }

    fn balance_zone(&mut self, z: &ZoneKey) {
        let movable =
            |r: &Round<'_>, w: &WorkerId| r.t.is_candidate(w) && r.t.zone_of(w).as_ref() == Some(z);
        let members: Vec<WorkerId> = self
            .t
            .balance_set
            .keys()
            .filter(|w| movable(self, w))
            .map(|w| (*w).clone())
            .collect();
        // Pairs (a, b) of indices into `members` already found to give no move this round.
        let mut stuck: HashSet<(usize, usize)> = HashSet::new();
        loop {
            if !self.t.has_total_slot() {
                return;
            }
            // Each member's load and share bounds, read once per move planned: a settled zone
            // of thousands of workers is then judged in one pass, not pair by pair.
            let bounds: Vec<Bounds> = members
                .iter()
                .map(|w| {
                    let (floor, ceil) = self.t.share_bounds(w);
                    Bounds {
                        load: self.t.load_of(w),
                        floor,
                        ceil,
                    }
                })
                .collect();
            // A move is needed only from above a ceiling to below one, or from above a floor
            // to below one.
            let over: Vec<bool> = bounds.iter().map(|b| b.load > b.ceil).collect();
            let under: Vec<bool> = bounds.iter().map(|b| b.load < b.floor).collect();
            if !over.contains(&true) && !under.contains(&true) {
                return;
            }
            let excess: Vec<f64> = members.iter().map(|w| self.t.excess(w)).collect();
            let mut order: Vec<usize> = (0..members.len()).collect();
            order.sort_by(|&a, &b| {
                excess[b]
                    .total_cmp(&excess[a])
                    .then(members[a].cmp(&members[b]))
            });
            // The receivers an `a` within its ceiling may give to: those below their floor,
            // in the order the search visits them.
            let below_floor: Vec<usize> =
                order.iter().rev().copied().filter(|&b| under[b]).collect();
            let mut chosen = None;
            'pairs: for &ai in &order {
                let a_bounds = &bounds[ai];
                if a_bounds.load <= a_bounds.floor {
                    continue; // gives nothing: neither above its ceiling nor its floor
                }
                let receivers: Box<dyn Iterator<Item = usize>> = if over[ai] {
                    Box::new(
                        order
                            .iter()
                            .rev()
                            .copied()
                            .filter(|&b| bounds[b].load < bounds[b].ceil),
                    )
                } else {
                    Box::new(below_floor.iter().copied())
                };
                let a = &members[ai];
                for bi in receivers {
                    if ai == bi || stuck.contains(&(ai, bi)) {
                        continue;
                    }
                    let b = &members[bi];
                    if !self.t.has_slot(a) || !self.t.has_slot(b) {
                        stuck.insert((ai, bi));
                        continue;
                    }
                    if let Some(pid) = self.movable_partitions(a, b) {
                        chosen = Some(vec![(a.clone(), b.clone(), pid)]);
                        break 'pairs;
                    }
                    // b may already hold everything a could give: pass one replica through an
                    // intermediary c (a → c and c → b, two partitions), leaving c's load as is.
                    for &ci in &order {
                        let c = &members[ci];
                        if ci == ai || ci == bi || !self.t.has_slot(c) {
                            continue;
                        }
                        let Some(q) = self.movable_partitions(a, c) else {
                            continue;
                        };
                        let second = self.t.held.get(c).and_then(|held| {
                            held.iter()
                                .copied()
                                .find(|&pid| pid != q && self.can_move(pid, c, b))
                        });
                        if let Some(r) = second {
                            chosen =
                                Some(vec![(a.clone(), c.clone(), q), (c.clone(), b.clone(), r)]);
                            break 'pairs;
                        }
                    }
                    stuck.insert((ai, bi));
                }
            }
            let Some(moves) = chosen else { return };
            for (from, to, pid) in moves {
                let Some(p) = self.t.s.partition(pid) else {
                    return;
                };
                // The release comes once `to` has joined; count it now so later choices see it.
                if !self.add(p, to, Some(&from), Reason::Rebalance) {
                    return;
                }
                if let Some(z) = self.t.zone_of(&from) {
                    *self.t.zone_load.entry(z).or_insert(0) -= 1;
                }
                self.t.add_load(&from, -1);
            }
        }
    }

    /// Zones get replicas as evenly as rule 2 permits: while two zones' totals differ by two or
    /// more, move a replica of a partition from the fuller zone to the emptier one, if the
    /// partition's zone spread stays as good.
    fn balance_zones(&mut self) {
        let zones: Vec<ZoneKey> = self.t.candidate_zones().into_iter().collect();
        if zones.len() < 2 {
            return;
        }
        let mut tried: BTreeSet<(ZoneKey, ZoneKey)> = BTreeSet::new();
        loop {
            if !self.t.has_total_slot() {
                return;
            }
            let total = |z: &ZoneKey| self.t.zone_load.get(z).copied().unwrap_or(0);
            let mut sorted = zones.clone();
            sorted.sort_by(|a, b| total(b).cmp(&total(a)).then(a.cmp(b)));
            let pair = sorted
                .iter()
                .flat_map(|hi| sorted.iter().rev().map(move |lo| (hi, lo)))
                .find(|(hi, lo)| {
                    hi != lo
                        && total(hi) - total(lo) >= 2
                        && !tried.contains(&((*hi).clone(), (*lo).clone()))
                });
            let Some((hi, lo)) = pair.map(|(a, b)| (a.clone(), b.clone())) else {
                return;
            };
            let planned = self.zone_move(&hi, &lo);
            if !planned {
                tried.insert((hi, lo));
            }
        }
    }

    /// One move of a replica from zone `hi` to zone `lo` for the zone balance; returns whether
    /// it planned one. The source is the worker of `hi` furthest above its share, so the zone's
    /// workers stay balanced among themselves as the zone empties: taking the source in
    /// partition order instead (whichever worker held the partition) left one worker above
    /// its ceiling and another below its floor, and the per-zone balance then moved replicas
    /// between them — moves that only undid the choice of source. Another worker serves as the
    /// source only while it stays within its share (the first one may have no move slot).
    fn zone_move(&mut self, hi: &ZoneKey, lo: &ZoneKey) -> bool {
        let s = self.t.s;
        let mut sources: Vec<WorkerId> = self
            .t
            .balance_set
            .keys()
            .filter(|w| self.t.zone_of(w).as_ref() == Some(hi) && self.t.is_candidate(w))
            .map(|w| (*w).clone())
            .collect();
        sources.sort_by(|a, b| self.t.excess(b).total_cmp(&self.t.excess(a)).then(a.cmp(b)));
        let zone_total = self.t.zone_load.get(hi).copied().unwrap_or(0);
        let zone_cap =
            i64::try_from(self.t.zone_cap.get(hi).copied().unwrap_or(1).max(1)).unwrap_or(i64::MAX);
        for (i, from) in sources.iter().enumerate() {
            if !self.t.has_slot(from) {
                continue;
            }
            if i > 0 {
                let cap = i64::from(self.t.worker(from).map_or(1, |w| w.capacity.max(1)));
                let floor_after = (zone_total - 1) * cap / zone_cap;
                if self.t.load_of(from) - 1 < floor_after {
                    continue;
                }
            }
            let Some(held) = self.t.held.get(from) else {
                continue;
            };
            for &pid in held {
                let Some(p) = s.partition(pid) else { continue };
                if self.busy.contains(&pid)
                    || self.healthy(p) < usize::from(p.replication_factor)
                    || p.replica(from)
                        .is_none_or(|r| r.role != ReplicaRole::Serving)
                {
                    continue;
                }
                let used = self.t.zones_used(p, None);
                let n_hi = used.get(hi).copied().unwrap_or(0);
                let n_lo = used.get(lo).copied().unwrap_or(0);
                if n_hi == 0 || n_hi < n_lo + 1 {
                    continue;
                }
                // Into `lo` itself, when rule 2 allows it there. Letting the target's own zone
                // choice decide broke ties between equally loaded zones the other way: the
                // pair was then marked tried for the round, and a large imbalance drained at a
                // couple of moves per round (hundreds of rounds after a drain refilled a zone).
                let Ok(to) = self.t.choose_target_in(p, Some(from), Some(lo)) else {
                    continue;
                };
                if !self.add(p, to, Some(from), Reason::Rebalance) {
                    return false;
                }
                *self.t.zone_load.entry(hi.clone()).or_insert(0) -= 1;
                self.t.add_load(from, -1);
                return true;
            }
        }
        false
    }

    /// Preferred leaders: every partition with a healthy serving replica has one, on a worker
    /// that is not draining or suspect when possible, spread so no worker leads much more than
    /// its capacity share. Leader steps go first in the plan: they change no epoch, so the
    /// partition's other step (planned on the same epoch) still applies after them.
    fn leaders(&mut self) {
        let mut steps = Vec::new();
        let s = self.t.s;
        let mut led: BTreeMap<WorkerId, i64> = BTreeMap::new();
        for p in &s.partitions {
            if let Some(l) = &p.leader {
                *led.entry(l.clone()).or_insert(0) += 1;
            }
        }
        let cap = |w: &WorkerId| i64::from(self.t.worker(w).map_or(1, |w| w.capacity.max(1)));
        let total_cap: i64 = self
            .t
            .balance_set
            .values()
            .map(|w| i64::from(w.capacity.max(1)))
            .sum::<i64>()
            .max(1);
        let total_led = i64::try_from(s.partitions.len()).unwrap_or(i64::MAX);
        let ceil_share = |w: &WorkerId| (total_led * cap(w) + total_cap - 1) / total_cap;
        for p in &s.partitions {
            let good = |w: &WorkerId| {
                !self.releasing.contains(&(p.id, w.clone()))
                    && p.replica(w).is_some_and(|r| r.role == ReplicaRole::Serving)
                    && self.t.is_alive(w)
                    && !self.is_draining(w)
                    && !self.t.live.is_suspect(w)
                    && !self.t.in_maintenance(w)
            };
            let eligible: Vec<&WorkerId> = p
                .replicas
                .iter()
                .map(|r| &r.worker)
                .filter(|w| good(w))
                .collect();
            let fallback: Vec<&WorkerId> = p
                .replicas
                .iter()
                .filter(|r| r.role == ReplicaRole::Serving && self.t.is_alive(&r.worker))
                .filter(|r| !self.releasing.contains(&(p.id, r.worker.clone())))
                .map(|r| &r.worker)
                .collect();
            let pool = if eligible.is_empty() {
                &fallback
            } else {
                &eligible
            };
            let best = pool
                .iter()
                .min_by(|a, b| {
                    let la = (led.get(**a).copied().unwrap_or(0) + 1) * cap(b);
                    let lb = (led.get(**b).copied().unwrap_or(0) + 1) * cap(a);
                    la.cmp(&lb).then(a.cmp(b))
                })
                .map(|w| (*w).clone());
            let Some(best) = best else { continue };
            // A leader on a worker this control-plane leader has not heard from yet stays:
            // not hearing it is no news about it (a failover would otherwise re-pick the
            // leader of every partition led by a worker not heard in the first moments).
            let unheard_ok = |l: &WorkerId| {
                self.t.live.unheard.contains(l)
                    && !self.releasing.contains(&(p.id, l.clone()))
                    && p.replica(l).is_some_and(|r| r.role == ReplicaRole::Serving)
                    && self.t.is_alive(l)
                    && !self.is_draining(l)
                    && !self.t.in_maintenance(l)
            };
            let current_ok = p
                .leader
                .as_ref()
                .is_some_and(|l| pool.contains(&l) || unheard_ok(l));
            let overloaded = p.leader.as_ref().is_some_and(|l| {
                led.get(l).copied().unwrap_or(0) > ceil_share(l)
                    && led.get(&best).copied().unwrap_or(0) + 1 < led.get(l).copied().unwrap_or(0)
            });
            if current_ok && !overloaded {
                continue;
            }
            if p.leader.as_ref() == Some(&best) {
                continue;
            }
            if let Some(old) = &p.leader {
                *led.entry(old.clone()).or_insert(0) -= 1;
            }
            *led.entry(best.clone()).or_insert(0) += 1;
            let cause = match &p.leader {
                None => LeaderCause::None,
                Some(_) if !current_ok => LeaderCause::Unhealthy,
                Some(_) => LeaderCause::Balance,
            };
            steps.push(Step::SetLeader {
                partition: p.id,
                worker: best,
                epoch: p.epoch,
                cause,
            });
        }
        steps.append(&mut self.plan.steps);
        self.plan.steps = steps;
    }

    /// Draining → Disabled once a draining worker holds nothing.
    fn disable_emptied(&mut self) {
        for w in self.t.s.workers.values() {
            if w.state == WorkerState::Draining && !self.t.held.contains_key(&w.id) {
                self.plan.steps.push(Step::Disable {
                    worker: w.id.clone(),
                });
            }
        }
    }
}
