//! Who can hold what: candidates (rule 1), zones (rule 2), loads and capacity shares (rule 3),
//! moves in flight (rule 6), and the choice of a target for a new replica. Built once per round
//! and updated as the round plans steps, so later choices see earlier ones.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use drover_types::{
    ClusterState, Partition, PartitionId, ReplicaRole, Worker, WorkerId, WorkerState,
};

use crate::{BlockCode, Liveness, PlannerConfig};

/// A failure domain. Workers without a zone share the unnamed one.
pub type ZoneKey = String;

pub fn zone_key(w: &Worker) -> ZoneKey {
    w.zone.clone().unwrap_or_default()
}

/// `p` as rule 2 will see it once the replicas on `departing` workers have gone: those
/// replicas marked `leaving`, so zone counts leave them out. A drain judges its targets on this
/// view, in its plan and while executing it alike: all of a partition's drained replicas are
/// going, whichever moves first, and counting one that is still there would let the plan pick
/// a target that its own execution then rejects once that replica has left.
pub(crate) fn after_departures(p: &Partition, departing: impl Fn(&WorkerId) -> bool) -> Partition {
    let mut view = p.clone();
    for r in &mut view.replicas {
        if departing(&r.worker) {
            r.role = ReplicaRole::Leaving;
        }
    }
    view
}

/// The serving replicas of `p` that a move in flight replaces: the named source of a joining
/// replica, or of a serving one that joined after it (its break step is next).
/// Whether `r` is a joiner of `p`'s initial placement (SPEC §3), which moves no data and which
/// no throttle counts: from no move (`replaces` none), joining at an epoch up to RF (where
/// `PlaceReplicas` puts a never-placed partition's joiners: epochs 1 to RF), and added before
/// any replica of `p` started serving (an acknowledgement moves the epoch, so a serving
/// replica from before `r` has a lower `since`). A partition that lost all its replicas is
/// re-created at higher epochs, and those restores count, as does a join that has a serving
/// replica to copy from.
pub(crate) fn placing(p: &Partition, r: &drover_types::Replica) -> bool {
    r.role == ReplicaRole::Joining
        && r.replaces.is_none()
        && r.since <= u64::from(p.replication_factor)
        && !p
            .replicas
            .iter()
            .any(|s| s.role == ReplicaRole::Serving && s.since < r.since)
}

pub(crate) fn moving_away(p: &Partition) -> impl Iterator<Item = &WorkerId> {
    p.replicas.iter().filter_map(move |r| {
        let src = r.replaces.as_ref()?;
        let s = p.replica(src).filter(|s| s.role == ReplicaRole::Serving)?;
        let in_flight =
            r.role == ReplicaRole::Joining || (r.role == ReplicaRole::Serving && s.since < r.since);
        in_flight.then_some(src)
    })
}

#[derive(Debug)]
pub(crate) struct Topology<'a> {
    pub s: &'a ClusterState,
    pub live: &'a Liveness,
    pub cfg: &'a PlannerConfig,
    /// Active, not dead: their replicas count toward balance. Iterated in id order; looked
    /// up through `balanced`.
    pub balance_set: BTreeMap<&'a WorkerId, &'a Worker>,
    /// `balance_set` for lookups, and every worker by id: a round looks workers up for every
    /// replica of every partition, and with 10,000 workers the B-tree's string comparisons
    /// were most of a round. Only looked up, never iterated, so no order leaks out of them.
    pub balanced: HashMap<&'a WorkerId, &'a Worker>,
    by_id: HashMap<&'a WorkerId, &'a Worker>,
    /// Replicas (joining or serving) per worker, updated with planned steps. A `HashMap`
    /// because it sits on the hot path of every placement and is only ever looked up, never
    /// iterated, so its order cannot leak into a decision.
    /// Changed only through [`Self::add_load`], which keeps `ranked` in step.
    load: HashMap<WorkerId, i64>,
    /// Replicas per zone over the balance set, updated with planned steps.
    pub zone_load: BTreeMap<ZoneKey, i64>,
    /// Total capacity per zone over the balance set.
    pub zone_cap: BTreeMap<ZoneKey, u64>,
    /// Moves in flight touching each worker (joining or leaving replicas on it), plus planned.
    pub inflight: HashMap<WorkerId, u32>,
    pub inflight_total: u32,
    /// Workers no new replica may go to this round, beyond rule 1 (the workers being drained).
    pub excluded: BTreeSet<WorkerId>,
    /// Partitions each worker holds a replica of (any role).
    /// Only looked up, never iterated.
    pub held: HashMap<&'a WorkerId, Vec<PartitionId>>,
    /// Committed drain moves not started yet, by (partition, source), with their target.
    /// Their replicas are already counted in the target's `load` and `zone_load`: the
    /// draining source is outside the balance set, so without them its zone would look
    /// emptier than the drain is about to make it, and the rebalance would fill it first
    /// only to empty it again once the drain lands (a ping-pong of many rounds).
    pub arriving: BTreeMap<(PartitionId, WorkerId), WorkerId>,
    /// Serving replicas a move in flight is replacing (the source of a joining replica, or of
    /// one that has joined and waits for its break step). They are not counted in `load` or
    /// `zone_load`: the move will take them away, and counting them would make their worker
    /// and zone look fuller than they are about to be, so the balance would move a second
    /// replica off them (and then back again once the first move lands: a ping-pong inside
    /// a zone for as long as moves are in flight).
    pub departing: BTreeSet<(PartitionId, WorkerId)>,
    /// Candidates by zone, with their capacities (rule 1), cached for the round: candidacy
    /// does not change while a round is planned.
    members: BTreeMap<ZoneKey, Vec<(WorkerId, u32)>>,
    /// `members` by zone in the order a new replica prefers them — lowest (load + 1) /
    /// capacity, then id — kept in step with `load`: a choice takes the first one free,
    /// where scanning a zone of 3,333 workers for each of a new table's 90,000 replicas made
    /// its placement rounds take seconds each.
    ranked: BTreeMap<ZoneKey, BTreeSet<Rank>>,
    /// Each member's zone and capacity, to find its `ranked` entry.
    member_of: HashMap<WorkerId, (ZoneKey, u32)>,
}

/// A candidate's place in its zone's preference order (see `Topology::ranked`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rank {
    /// Its load plus one: the load it would have with the new replica.
    load: i64,
    capacity: u32,
    id: WorkerId,
}

impl Ord for Rank {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // load / capacity compared without division: both capacities are at least 1.
        (self.load * i64::from(other.capacity))
            .cmp(&(other.load * i64::from(self.capacity)))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for Rank {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> Topology<'a> {
    pub fn new(s: &'a ClusterState, live: &'a Liveness, cfg: &'a PlannerConfig) -> Self {
        let balance_set: BTreeMap<&WorkerId, &Worker> = s
            .workers
            .iter()
            .filter(|(_, w)| w.state == WorkerState::Active && !w.dead)
            .collect();
        let mut load = HashMap::new();
        let mut zone_load: BTreeMap<ZoneKey, i64> = BTreeMap::new();
        let mut zone_cap: BTreeMap<ZoneKey, u64> = BTreeMap::new();
        for w in balance_set.values() {
            load.insert(w.id.clone(), 0);
            zone_load.entry(zone_key(w)).or_insert(0);
            *zone_cap.entry(zone_key(w)).or_insert(0) += u64::from(w.capacity.max(1));
        }
        let mut inflight: HashMap<WorkerId, u32> = HashMap::new();
        let mut inflight_total = 0;
        let balanced: HashMap<&WorkerId, &Worker> =
            balance_set.iter().map(|(id, w)| (*id, *w)).collect();
        let by_id: HashMap<&WorkerId, &Worker> = s.workers.iter().collect();
        let mut held: HashMap<&WorkerId, Vec<PartitionId>> = HashMap::new();
        let mut departing = BTreeSet::new();
        for p in &s.partitions {
            let away: Vec<&WorkerId> = moving_away(p).collect();
            for src in &away {
                departing.insert((p.id, (*src).clone()));
            }
            for r in &p.replicas {
                held.entry(&r.worker).or_default().push(p.id);
                if r.role != ReplicaRole::Leaving
                    && !away.contains(&&r.worker)
                    && let Some(w) = balanced.get(&r.worker)
                {
                    *load.entry(r.worker.clone()).or_insert(0) += 1;
                    *zone_load.entry(zone_key(w)).or_insert(0) += 1;
                }
                if r.role != ReplicaRole::Serving && !placing(p, r) {
                    *inflight.entry(r.worker.clone()).or_insert(0) += 1;
                    if r.role == ReplicaRole::Joining {
                        inflight_total += 1;
                    }
                }
            }
        }
        let mut t = Topology {
            s,
            live,
            cfg,
            balance_set,
            balanced,
            by_id,
            load,
            zone_load,
            zone_cap,
            inflight,
            inflight_total,
            excluded: BTreeSet::new(),
            held,
            arriving: BTreeMap::new(),
            departing,
            members: BTreeMap::new(),
            ranked: BTreeMap::new(),
            member_of: HashMap::new(),
        };
        for m in s.drains.values().flat_map(|d| &d.moves) {
            let Some(to) = &m.to else { continue };
            let Some(p) = s.partition(m.partition) else {
                continue;
            };
            let pending = p
                .replica(&m.from)
                .is_some_and(|r| r.role == ReplicaRole::Serving)
                && s.workers
                    .get(&m.from)
                    .is_some_and(|w| w.state == WorkerState::Draining)
                && p.replica(to).is_none();
            if pending && t.expect_arrival(to) {
                t.arriving.insert((m.partition, m.from.clone()), to.clone());
            }
        }
        t.with_members()
    }

    /// Counts a replica that a drain move will bring to `to` before the move starts; returns
    /// whether it counted (only workers in the balance set carry load).
    pub fn expect_arrival(&mut self, to: &WorkerId) -> bool {
        let Some(z) = self.balanced.get(to).map(|w| zone_key(w)) else {
            return false;
        };
        *self.zone_load.entry(z).or_insert(0) += 1;
        self.add_load(to, 1);
        true
    }

    /// Takes back the count of [`Self::expect_arrival`] for the drain move of `partition`
    /// from `from`, if there was one: the move is being started (and counted as an add), or
    /// replanned.
    pub fn take_arrival(&mut self, partition: PartitionId, from: &WorkerId) {
        let Some(to) = self.arriving.remove(&(partition, from.clone())) else {
            return;
        };
        if let Some(z) = self.zone_of(&to) {
            *self.zone_load.entry(z).or_insert(0) -= 1;
        }
        self.add_load(&to, -1);
    }

    /// Excludes `workers` from receiving replicas (the workers being drained).
    pub fn exclude(mut self, workers: &BTreeSet<WorkerId>) -> Self {
        self.excluded = workers.clone();
        self.with_members()
    }

    fn with_members(mut self) -> Self {
        let mut members: BTreeMap<ZoneKey, Vec<(WorkerId, u32)>> = BTreeMap::new();
        for (id, w) in &self.balance_set {
            if !self.live.is_suspect(id) && w.takes_new_replicas() && !self.excluded.contains(*id) {
                members
                    .entry(zone_key(w))
                    .or_default()
                    .push(((*id).clone(), w.capacity.max(1)));
            }
        }
        self.member_of = members
            .iter()
            .flat_map(|(z, ws)| ws.iter().map(|(w, cap)| (w.clone(), (z.clone(), *cap))))
            .collect();
        self.ranked = members
            .iter()
            .map(|(z, ws)| {
                let ranks = ws.iter().map(|(w, cap)| self.rank(w, *cap)).collect();
                (z.clone(), ranks)
            })
            .collect();
        self.members = members;
        self
    }

    fn rank(&self, id: &WorkerId, capacity: u32) -> Rank {
        Rank {
            load: self.load_of(id) + 1,
            capacity,
            id: id.clone(),
        }
    }

    /// Adds `delta` to `id`'s load, moving it in its zone's preference order if it is a
    /// candidate.
    pub fn add_load(&mut self, id: &WorkerId, delta: i64) {
        let Some((zone, capacity)) = self.member_of.get(id).cloned() else {
            *self.load.entry(id.clone()).or_insert(0) += delta;
            return;
        };
        let before = self.rank(id, capacity);
        *self.load.entry(id.clone()).or_insert(0) += delta;
        let after = self.rank(id, capacity);
        if let Some(ranks) = self.ranked.get_mut(&zone) {
            ranks.remove(&before);
            ranks.insert(after);
        }
    }

    pub fn worker(&self, id: &WorkerId) -> Option<&'a Worker> {
        self.by_id.get(id).copied()
    }

    /// A worker that is not dead (`ClusterState::is_alive`, through the round's index).
    pub fn is_alive(&self, id: &WorkerId) -> bool {
        self.worker(id).is_some_and(|w| !w.dead)
    }

    /// Serving replicas of `p` on workers that are not dead (`ClusterState::healthy_serving`,
    /// through the round's index).
    pub fn healthy_serving(&self, p: &Partition) -> usize {
        p.replicas
            .iter()
            .filter(|r| r.role == ReplicaRole::Serving && self.is_alive(&r.worker))
            .count()
    }

    /// Rule 1: may receive a new replica. A cordoned worker or one in maintenance (SPEC §1)
    /// may not, but stays in the balance set: it keeps what it holds and its replicas count
    /// where they are, as a suspect worker's do.
    pub fn is_candidate(&self, id: &WorkerId) -> bool {
        self.balanced
            .get(id)
            .is_some_and(|w| w.takes_new_replicas())
            && !self.live.is_suspect(id)
            && !self.excluded.contains(id)
    }

    /// A worker in maintenance (SPEC §1) restarts without data movement: no replica of it is
    /// chosen as a move's source or released for balance, and it is no preferred leader.
    pub fn in_maintenance(&self, id: &WorkerId) -> bool {
        self.worker(id).is_some_and(Worker::in_maintenance)
    }

    pub fn zone_of(&self, id: &WorkerId) -> Option<ZoneKey> {
        self.worker(id).map(zone_key)
    }

    /// Candidates by zone, with their capacities.
    pub fn members(&self) -> &BTreeMap<ZoneKey, Vec<(WorkerId, u32)>> {
        &self.members
    }

    /// Zones that have at least one candidate.
    pub fn candidate_zones(&self) -> BTreeSet<ZoneKey> {
        self.members.keys().cloned().collect()
    }

    /// How many zones have a candidate.
    pub fn candidate_zone_count(&self) -> usize {
        self.members.len()
    }

    /// Worker `id`'s share of its zone's replicas, as (numerator, denominator): share =
    /// zone_load × capacity / zone_capacity.
    pub fn share(&self, id: &WorkerId) -> (i64, i64) {
        let Some(w) = self.balanced.get(id) else {
            return (0, 1);
        };
        let z = zone_key(w);
        let total = self.zone_load.get(&z).copied().unwrap_or(0);
        let cap =
            i64::try_from(self.zone_cap.get(&z).copied().unwrap_or(1).max(1)).unwrap_or(i64::MAX);
        (total * i64::from(w.capacity.max(1)), cap)
    }

    /// Floor and ceiling of the worker's share, capped at the number of partitions (a worker
    /// holds at most one replica of each).
    pub fn share_bounds(&self, id: &WorkerId) -> (i64, i64) {
        let (num, den) = self.share(id);
        let partitions = i64::try_from(self.s.partitions.len()).unwrap_or(i64::MAX);
        let floor = num / den;
        let ceil = (num + den - 1) / den;
        (floor.min(partitions), ceil.min(partitions))
    }

    /// How far above its share a worker is, scaled by its zone's capacity (comparable within a
    /// zone; across zones only roughly).
    pub fn excess(&self, id: &WorkerId) -> f64 {
        let (num, den) = self.share(id);
        let load = self.load.get(id).copied().unwrap_or(0);
        (load as f64) - (num as f64) / (den as f64)
    }

    pub fn load_of(&self, id: &WorkerId) -> i64 {
        self.load.get(id).copied().unwrap_or(0)
    }

    /// Whether a new move may touch `id` (rule 6).
    pub fn has_slot(&self, id: &WorkerId) -> bool {
        self.inflight.get(id).copied().unwrap_or(0) < self.cfg.max_moves_per_worker
    }

    pub fn has_total_slot(&self) -> bool {
        self.inflight_total < self.cfg.max_moves_total
    }

    /// Records a planned initial placement of a replica on `to`: its load, and no move slot.
    pub fn note_place(&mut self, to: &WorkerId) {
        if let Some(z) = self.zone_of(to) {
            *self.zone_load.entry(z).or_insert(0) += 1;
        }
        self.add_load(to, 1);
    }

    /// Records a planned add of a replica on `to`, moving away from `from` (if any).
    pub fn note_add(&mut self, to: &WorkerId, from: Option<&WorkerId>) {
        if let Some(z) = self.zone_of(to) {
            *self.zone_load.entry(z).or_insert(0) += 1;
        }
        self.add_load(to, 1);
        *self.inflight.entry(to.clone()).or_insert(0) += 1;
        self.inflight_total += 1;
        if let Some(f) = from {
            *self.inflight.entry(f.clone()).or_insert(0) += 1;
        }
    }

    /// A joining replica that replaced `src`'s replica of `partition` is withdrawn: `src`
    /// stays, and counts again.
    pub fn keep_departing(&mut self, partition: PartitionId, src: &WorkerId) {
        if !self.departing.remove(&(partition, src.clone())) {
            return;
        }
        if let Some(z) = self.balanced.get(src).map(|w| zone_key(w)) {
            *self.zone_load.entry(z).or_insert(0) += 1;
            self.add_load(src, 1);
        }
    }

    /// Counts one replica out of `from`'s load and its zone's: a move planned this round will
    /// take it away.
    pub fn count_out(&mut self, from: &WorkerId) {
        if let Some(z) = self.balanced.get(from).map(|w| zone_key(w)) {
            *self.zone_load.entry(z).or_insert(0) -= 1;
            self.add_load(from, -1);
        }
    }

    /// Records a planned release of `from`'s replica of `partition` (not counted again when it
    /// was already counted out as departing).
    pub fn note_release(&mut self, partition: PartitionId, from: &WorkerId) {
        if self.balanced.contains_key(from) && !self.departing.contains(&(partition, from.clone()))
        {
            if let Some(z) = self.zone_of(from) {
                *self.zone_load.entry(z).or_insert(0) -= 1;
            }
            self.add_load(from, -1);
        }
        *self.inflight.entry(from.clone()).or_insert(0) += 1;
    }

    /// Replicas of `p` that stay (joining or serving, not `leaving`), counted per zone.
    pub fn zones_used(
        &self,
        p: &Partition,
        leaving: Option<&WorkerId>,
    ) -> BTreeMap<ZoneKey, usize> {
        let mut used = BTreeMap::new();
        for r in &p.replicas {
            if r.role == ReplicaRole::Leaving || Some(&r.worker) == leaving {
                continue;
            }
            if let Some(z) = self.zone_of(&r.worker) {
                *used.entry(z).or_insert(0) += 1;
            }
        }
        used
    }

    /// Zones with a candidate that does not hold `p` yet.
    pub fn open_zones(&self, p: &Partition) -> BTreeSet<ZoneKey> {
        // A zone is open when it has more candidates than it has candidates holding `p`:
        // counted from p's few replicas rather than by scanning every worker.
        let mut holding: BTreeMap<ZoneKey, usize> = BTreeMap::new();
        for r in &p.replicas {
            if self.is_candidate(&r.worker)
                && let Some(z) = self.zone_of(&r.worker)
            {
                *holding.entry(z).or_insert(0) += 1;
            }
        }
        self.members
            .iter()
            .filter(|(z, ws)| ws.len() > holding.get(*z).copied().unwrap_or(0))
            .map(|(z, _)| z.clone())
            .collect()
    }

    /// Zones a new replica of `p` may go to under rule 2 (replacing `leaving`, if any): with at
    /// least RF candidate zones, one `p` does not use; otherwise, among zones that can still
    /// take a replica of `p`, the ones it uses least.
    pub fn allowed_zones(&self, p: &Partition, leaving: Option<&WorkerId>) -> BTreeSet<ZoneKey> {
        let used = self.zones_used(p, leaving);
        let count = |z: &ZoneKey| used.get(z).copied().unwrap_or(0);
        let open = self.open_zones(p);
        if self.candidate_zone_count() >= usize::from(p.replication_factor) {
            open.into_iter().filter(|z| count(z) == 0).collect()
        } else {
            let least = open.iter().map(count).min().unwrap_or(0);
            open.into_iter().filter(|z| count(z) == least).collect()
        }
    }

    /// The best worker for a new replica of `p` (replacing `leaving`, if any): a candidate not
    /// holding `p`, in a zone rule 2 allows, in the least loaded such zone, then the worker with
    /// the lowest load per capacity, then by id. Workers without a free move slot are skipped.
    pub fn choose_target(
        &self,
        p: &Partition,
        leaving: Option<&WorkerId>,
    ) -> Result<WorkerId, BlockCode> {
        self.choose_target_in(p, leaving, None)
    }

    /// [`Self::choose_target`] for an initial placement, which takes no move slot.
    pub fn choose_placement(&self, p: &Partition) -> Result<WorkerId, BlockCode> {
        self.choose(p, None, None, false)
    }

    /// [`Self::choose_target`], restricted to zone `only` when given (the zone balance moves a
    /// replica into one chosen zone, and must not settle for another).
    pub fn choose_target_in(
        &self,
        p: &Partition,
        leaving: Option<&WorkerId>,
        only: Option<&ZoneKey>,
    ) -> Result<WorkerId, BlockCode> {
        self.choose(p, leaving, only, true)
    }

    /// The choice behind [`Self::choose_target_in`]; `slots`: skip workers without a free
    /// move slot.
    fn choose(
        &self,
        p: &Partition,
        leaving: Option<&WorkerId>,
        only: Option<&ZoneKey>,
        slots: bool,
    ) -> Result<WorkerId, BlockCode> {
        let free = |w: &WorkerId| p.replica(w).is_none();
        if self.open_zones(p).is_empty() {
            return Err(BlockCode::NoCandidate);
        }
        let mut allowed = self.allowed_zones(p, leaving);
        if let Some(z) = only {
            allowed.retain(|a| a == z);
        }
        if allowed.is_empty() {
            return Err(BlockCode::ZoneConstraint);
        }
        // The least loaded allowed zone with a free worker that has a move slot, then the worker
        // with the lowest (load + 1) / capacity there, then by id.
        let mut zones: Vec<&ZoneKey> = allowed.iter().collect();
        zones.sort_by_key(|z| (self.zone_load.get(*z).copied().unwrap_or(0), *z));
        let mut throttled = false;
        for z in zones {
            let Some(ranks) = self.ranked.get(z) else {
                continue;
            };
            // In preference order: the first free one with a slot is the best.
            for r in ranks {
                if !free(&r.id) {
                    continue;
                }
                if slots && !self.has_slot(&r.id) {
                    throttled = true;
                    continue;
                }
                debug_assert_eq!(
                    Some(&r.id),
                    self.best_by_scan(z, free, slots).as_ref(),
                    "the preference order of zone {z:?} disagrees with its loads"
                );
                return Ok(r.id.clone());
            }
        }
        Err(if throttled {
            BlockCode::Throttled
        } else {
            BlockCode::ZoneConstraint
        })
    }

    /// What `choose` takes in zone `z`, found by reading every member's load (debug builds
    /// check the preference order against it).
    fn best_by_scan(
        &self,
        z: &ZoneKey,
        free: impl Fn(&WorkerId) -> bool,
        slots: bool,
    ) -> Option<WorkerId> {
        self.members
            .get(z)?
            .iter()
            .filter(|(w, _)| free(w) && (!slots || self.has_slot(w)))
            .map(|(w, cap)| self.rank(w, *cap))
            .min()
            .map(|best| best.id)
    }
}
