//! The whole replicated state of a Drover cluster, and the SPEC §6 invariants over it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::brakes::Brakes;
use crate::drain::DrainIntent;
use crate::events::EventLog;
use crate::ids::{PartitionId, WorkerId};
use crate::kv::KvEntry;
use crate::partition::{Partition, ReplicaRole};
use crate::settings::Settings;
use crate::worker::{Worker, WorkerState};

/// The partition table's shape, created once (SPEC §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Table {
    pub count: u32,
    pub replication_factor: u8,
    pub version: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    /// State version: log index of the last applied entry that changed the state (SPEC §0).
    pub version: u64,
    pub settings: Settings,
    pub table: Option<Table>,
    /// `partitions[i].id == i`.
    pub partitions: Vec<Partition>,
    pub workers: BTreeMap<WorkerId, Worker>,
    /// Last generation of each removed worker, so a stale agent stays fenced.
    pub tombstones: BTreeMap<WorkerId, u64>,
    pub kv: BTreeMap<String, KvEntry>,
    pub drains: BTreeMap<u64, DrainIntent>,
    pub events: EventLog,
    /// The scheduler's brakes (SPEC §3): an operator's pause.
    pub brakes: Brakes,
    /// Which partitions each worker holds, derived from `partitions` at `version` and built on
    /// first use by [`ClusterState::holdings_of`]; never stored, never copied.
    #[serde(skip)]
    pub holdings: HoldingsCache,
}

/// The partitions each worker holds a replica of: kept across applied entries by
/// [`HoldingsCache::follow`], it serves every per-worker question asked of an applied state,
/// where [`ClusterState::replicas_on`] scans every partition per worker. With 10,000 agents
/// long-polling their assignments from a 30,000-partition table, that scan was half the
/// leader's CPU (`perf`: `agents::assignments`, its `memcmp` of worker ids), and rebuilding the
/// index at each new version was still 40%.
#[derive(Clone, Debug, Default)]
struct Holdings {
    by_worker: HashMap<WorkerId, BTreeSet<PartitionId>>,
    /// Who holds each partition as indexed, so a changed partition leaves its old holders.
    by_partition: Vec<Vec<WorkerId>>,
}

impl Holdings {
    fn of(partitions: &[Partition]) -> Holdings {
        let mut h = Holdings::default();
        for p in partitions {
            h.refresh(p.id, Some(p));
        }
        h
    }

    /// Re-reads partition `id` (`None`: it is gone).
    fn refresh(&mut self, id: PartitionId, now: Option<&Partition>) {
        let Ok(i) = usize::try_from(id) else { return };
        if i >= self.by_partition.len() {
            self.by_partition.resize_with(i + 1, Vec::new);
        }
        let Some(slot) = self.by_partition.get_mut(i) else {
            return;
        };
        let before = std::mem::take(slot);
        for w in before {
            if let Some(held) = self.by_worker.get_mut(&w) {
                held.remove(&id);
                if held.is_empty() {
                    self.by_worker.remove(&w);
                }
            }
        }
        let holders: Vec<WorkerId> = now
            .map(|p| p.replicas.iter().map(|r| r.worker.clone()).collect())
            .unwrap_or_default();
        for w in &holders {
            self.by_worker.entry(w.clone()).or_default().insert(id);
        }
        if let Some(slot) = self.by_partition.get_mut(i) {
            *slot = holders;
        }
    }
}

/// The [`Holdings`] of one state version. A copy starts empty and every copy compares equal,
/// so the cache never makes two states differ.
#[derive(Debug, Default)]
pub struct HoldingsCache(Mutex<Option<(u64, Arc<Holdings>)>>);

impl HoldingsCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(u64, Arc<Holdings>)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Carries the index across one applied change from version `before` to `after`: the
    /// partitions in `changed` are re-read, the rest kept. An index of another version is
    /// dropped (the next reader builds it afresh).
    pub(crate) fn follow(
        &self,
        partitions: &[Partition],
        before: u64,
        after: u64,
        changed: &BTreeSet<PartitionId>,
    ) {
        let mut cached = self.lock();
        match cached.as_mut() {
            Some((version, index)) if *version == before => {
                let h = Arc::make_mut(index);
                for id in changed {
                    h.refresh(
                        *id,
                        usize::try_from(*id).ok().and_then(|i| partitions.get(i)),
                    );
                }
                *version = after;
            }
            _ => *cached = None,
        }
    }
}

impl Clone for HoldingsCache {
    fn clone(&self) -> Self {
        HoldingsCache::default()
    }
}

impl PartialEq for HoldingsCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for HoldingsCache {}

/// A broken SPEC §6 invariant, for tests and the fault-injection checker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl ClusterState {
    /// A copy of what placement reads — everything but the KV store and the events log, which
    /// may be most of a state's size and which the planner never reads — for planning away
    /// from the state's lock.
    pub fn placement_view(&self) -> ClusterState {
        let ClusterState {
            version,
            settings,
            table,
            partitions,
            workers,
            tombstones,
            kv: _,
            drains,
            events: _,
            brakes,
            holdings: _,
        } = self;
        ClusterState {
            version: *version,
            settings: settings.clone(),
            table: table.clone(),
            partitions: partitions.clone(),
            workers: workers.clone(),
            tombstones: tombstones.clone(),
            kv: BTreeMap::new(),
            drains: drains.clone(),
            events: EventLog::default(),
            brakes: brakes.clone(),
            holdings: HoldingsCache::default(),
        }
    }

    pub fn partition(&self, id: PartitionId) -> Option<&Partition> {
        self.partitions.get(usize::try_from(id).ok()?)
    }

    /// Whether the worker exists, is not dead — the replicated half of "healthy".
    pub fn is_alive(&self, worker: &WorkerId) -> bool {
        self.workers.get(worker).is_some_and(|w| !w.dead)
    }

    /// Serving replicas of `p` on workers that are not dead.
    pub fn healthy_serving(&self, p: &Partition) -> usize {
        p.replicas
            .iter()
            .filter(|r| r.role == ReplicaRole::Serving && self.is_alive(&r.worker))
            .count()
    }

    /// The disruption budget of `p` (SPEC §1): the fewest serving replicas that must stay on
    /// workers alive and not in maintenance — `min_available`, or a majority of the partition's
    /// replication factor when it is 0, never more than the replication factor.
    pub fn min_available(&self, p: &Partition) -> usize {
        let rf = usize::from(p.replication_factor);
        match usize::try_from(self.settings.min_available).unwrap_or(usize::MAX) {
            0 => rf / 2 + 1,
            n => n.min(rf),
        }
    }

    /// The partitions of `worker` that would fall below their disruption budget if it went into
    /// maintenance: counting serving replicas on the other workers that are not dead, not in
    /// maintenance, and not `unavailable` (the leader adds the workers it does not hear).
    pub fn budget_shortfall(
        &self,
        worker: &WorkerId,
        unavailable: impl Fn(&WorkerId) -> bool,
    ) -> Vec<PartitionId> {
        let available = |w: &WorkerId| {
            w != worker
                && self
                    .workers
                    .get(w)
                    .is_some_and(|x| !x.dead && !x.in_maintenance())
                && !unavailable(w)
        };
        self.replicas_on(worker)
            .filter(|p| {
                let up = p
                    .replicas
                    .iter()
                    .filter(|r| r.role == ReplicaRole::Serving && available(&r.worker))
                    .count();
                up < self.min_available(p)
            })
            .map(|p| p.id)
            .collect()
    }

    /// The partitions holding a replica (any role) on `worker`, in partition order, as
    /// [`replicas_on`](Self::replicas_on) finds them, from an index built on first use and
    /// carried by apply from version to version. For readers of an applied state only: the
    /// index is keyed by `version`, so a state changed other than by apply without moving its
    /// version (a hand-made test state) must use `replicas_on`, and apply mid-command
    /// [`holdings_while_applying`](Self::holdings_while_applying). Debug builds
    /// check the two agree.
    pub fn holdings_of(&self, worker: &WorkerId) -> Vec<&Partition> {
        let held: Vec<&Partition> = self
            .holdings_index()
            .by_worker
            .get(worker)
            .map(|ids| ids.iter().filter_map(|id| self.partition(*id)).collect())
            .unwrap_or_default();
        debug_assert!(
            held.iter()
                .map(|p| p.id)
                .eq(self.replicas_on(worker).map(|p| p.id)),
            "the holdings index of version {} disagrees with the partitions for {worker}",
            self.version
        );
        held
    }

    /// The holdings index of this state's version, built if there is none.
    fn holdings_index(&self) -> Arc<Holdings> {
        let mut cached = self.holdings.lock();
        match &*cached {
            Some((version, index)) if *version == self.version => index.clone(),
            _ => {
                let index = Arc::new(Holdings::of(&self.partitions));
                *cached = Some((self.version, index.clone()));
                index
            }
        }
    }

    /// The partitions holding a replica on `worker` in the middle of applying a command that
    /// has changed the partitions in `changed` so far (and not yet moved the version): the
    /// version's index with those partitions read again, in partition order. What
    /// [`replicas_on`](Self::replicas_on) finds, without reading every partition — a death in a
    /// 30,000-partition table scanned them all. Debug builds check the two agree.
    pub(crate) fn holdings_while_applying(
        &self,
        worker: &WorkerId,
        changed: &BTreeSet<PartitionId>,
    ) -> Vec<PartitionId> {
        let mut held: BTreeSet<PartitionId> = self
            .holdings_index()
            .by_worker
            .get(worker)
            .map(|ids| ids.difference(changed).copied().collect())
            .unwrap_or_default();
        held.extend(changed.iter().filter(|id| {
            self.partition(**id)
                .is_some_and(|p| p.replica(worker).is_some())
        }));
        debug_assert!(
            held.iter()
                .copied()
                .eq(self.replicas_on(worker).map(|p| p.id)),
            "the holdings of {worker} while applying onto version {} disagree with the partitions",
            self.version
        );
        held.into_iter().collect()
    }

    /// Partitions holding a replica (any role) on `worker`, found by reading every partition.
    pub fn replicas_on<'a>(&'a self, worker: &'a WorkerId) -> impl Iterator<Item = &'a Partition> {
        self.partitions
            .iter()
            .filter(move |p| p.replicas.iter().any(|r| &r.worker == worker))
    }

    /// The drain intent a worker is draining under, if any.
    pub fn drain_of(&self, worker: &WorkerId) -> Option<&DrainIntent> {
        self.drains.values().find(|d| d.workers.contains(worker))
    }

    /// Every SPEC §6 invariant that can be read off one state: no replica on a Disabled or
    /// Provisioning or dead worker, none on an unknown worker, no two replicas of a partition on
    /// one worker, preferred leaders are serving replicas, record versions never exceed the
    /// state version, and drain intents name only Draining workers.
    pub fn check_invariants(&self) -> Vec<InvariantViolation> {
        let mut out = Vec::new();
        let mut bad = |s: String| out.push(InvariantViolation(s));
        for (i, p) in self.partitions.iter().enumerate() {
            if usize::try_from(p.id).ok() != Some(i) {
                bad(format!("partition at index {i} has id {}", p.id));
            }
            if p.version > self.version {
                bad(format!(
                    "partition {} version {} > state version",
                    p.id, p.version
                ));
            }
            let mut seen = BTreeSet::new();
            for r in &p.replicas {
                if !seen.insert(&r.worker) {
                    bad(format!(
                        "partition {} has two replicas on {}",
                        p.id, r.worker
                    ));
                }
                if r.since > p.epoch {
                    bad(format!(
                        "partition {} replica {} since > epoch",
                        p.id, r.worker
                    ));
                }
                match self.workers.get(&r.worker) {
                    None => bad(format!(
                        "partition {} replica on unknown {}",
                        p.id, r.worker
                    )),
                    Some(w) if w.state == WorkerState::Disabled => {
                        bad(format!("disabled worker {} holds partition {}", w.id, p.id))
                    }
                    Some(w) if w.state == WorkerState::Provisioning => bad(format!(
                        "provisioning worker {} holds partition {}",
                        w.id, p.id
                    )),
                    Some(w) if w.dead => {
                        bad(format!("dead worker {} holds partition {}", w.id, p.id))
                    }
                    Some(_) => {}
                }
            }
            if let Some(l) = &p.leader {
                let serving = p.replica(l).is_some_and(|r| r.role == ReplicaRole::Serving);
                if !serving {
                    bad(format!(
                        "partition {} leader {l} is not a serving replica",
                        p.id
                    ));
                }
            }
        }
        for (id, w) in &self.workers {
            if &w.id != id {
                bad(format!("worker keyed {id} has id {}", w.id));
            }
            if w.version > self.version {
                bad(format!("worker {id} version {} > state version", w.version));
            }
            if self.tombstones.contains_key(id) {
                bad(format!("worker {id} is both present and tombstoned"));
            }
        }
        for (k, e) in &self.kv {
            if e.version > self.version || e.create_version > e.version {
                bad(format!(
                    "kv {k:?} versions {}/{} out of order",
                    e.create_version, e.version
                ));
            }
        }
        for d in self.drains.values() {
            if d.workers.is_empty() {
                bad(format!("drain {} has no workers", d.id));
            }
            for w in &d.workers {
                if self.workers.get(w).map(|w| w.state) != Some(WorkerState::Draining) {
                    bad(format!("drain {} names {w}, which is not draining", d.id));
                }
            }
        }
        let draining = self
            .workers
            .values()
            .filter(|w| w.state == WorkerState::Draining);
        for w in draining {
            if self
                .drains
                .values()
                .filter(|d| d.workers.contains(&w.id))
                .count()
                != 1
            {
                bad(format!(
                    "draining worker {} is not in exactly one drain",
                    w.id
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use crate::testing::Harness;
    use crate::{Command, PartitionId, WorkerId};

    /// Mid-command, the version's index is read again for the partitions the command changed:
    /// one the worker just left and one it just joined both count as they are now.
    #[test]
    fn holdings_while_applying_read_the_changed_partitions_again() {
        let mut h = Harness::new();
        for (w, z) in [("w1", "a"), ("w2", "b")] {
            h.add_worker(w, Some(z), 100);
        }
        h.ok(Command::CreateTable {
            count: 3,
            replication_factor: 1,
        });
        for p in [0, 1] {
            h.add_replica(p, "w1", None);
        }
        let w1 = WorkerId::from("w1");
        let held = |h: &Harness, changed: &BTreeSet<PartitionId>| {
            h.state.holdings_while_applying(&w1, changed)
        };
        assert_eq!(held(&h, &BTreeSet::new()), vec![0, 1]);
        // As a command would mid-way, without moving the version: w1 leaves 0 and joins 2.
        let joined = h.state.partitions[0].replicas.remove(0);
        h.state.partitions[2].replicas.push(joined);
        assert_eq!(held(&h, &BTreeSet::from([0, 2])), vec![1, 2]);
    }
}
