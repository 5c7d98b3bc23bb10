//! The target placement: among the placements that satisfy rules 1–3, one that keeps the most
//! replicas where they are (rule 4), found by a min-cost flow. The round then moves toward it
//! one make-before-break step per partition, so the number of moves is the fewest the rules
//! allow — for a join, a drain, a capacity change, several at once — rather than whatever a
//! sequence of greedy choices happened to need (a choice of source that a later balance pass
//! must undo, a drain target that leaves a zone's workers uneven).
//!
//! The network, for one choice of which zones take the ⌈R/Z⌉ of the R = ΣRF replicas:
//! source → partition (its RF) → (partition, zone) (rule 2: ⌊RF/Z⌋..⌈RF/Z⌉) → worker (one
//! each; cost 0 where the worker keeps a replica it holds, 1 for a new one) → zone (rule 3: the
//! worker's floor..ceiling of its capacity share of the zone's total) → sink (the zone's total).
//! Lower bounds are units at cost 0, the rest of a range at a cost M larger than any number of
//! moves: every placement meeting the floors pays the same M-part, so the cheapest flow meets
//! them when any can, and among those makes the fewest moves. Each choice of zones is tried;
//! the cheapest wins (ties to the first, so rounds agree).
//!
//! Joining replicas, and the committed targets of drain moves not started yet, are pinned: the
//! placement keeps them. So a round never plans against a move already in flight, and the
//! remaining moves of an optimal target stay optimal from where the previous round left off.
//!
//! When the flow does not apply, the round keeps its greedy passes: a worker is suspect (its
//! replicas stay but may not grow, which the shares do not model), a zone has fewer candidates
//! than a partition needs in it, the rules cannot all be met, or the network is too large to
//! solve within a round's budget (see [`BUDGET`]).

use std::collections::{BTreeMap, BTreeSet};

use drover_types::{PartitionId, ReplicaRole, WorkerId};

use crate::flow::Network;
use crate::topology::{Topology, ZoneKey};

/// Largest (edges × units) a round solves by flow; beyond it the greedy passes plan alone.
/// About 200 partitions over 30 workers at RF 3; a solve at that size takes ~30 ms in a
/// release build (`cargo bench -p drover-scheduler --bench planner -- planner_exact`:
/// 1 ms at 32 partitions over 6 workers, 20 ms at 128 over 24, 122 ms at 256 over 48).
const BUDGET: u64 = 4_000_000;

/// Most choices of the zones holding ⌈R/Z⌉ tried; beyond it, only the fullest zones.
const MOST_ZONE_CHOICES: usize = 256;

/// The workers each partition should end on.
#[derive(Debug, Default)]
pub(crate) struct Target {
    by_partition: BTreeMap<PartitionId, BTreeSet<WorkerId>>,
}

impl Target {
    /// The workers partition `p` should be on, if the target covers it.
    pub fn of(&self, p: PartitionId) -> Option<&BTreeSet<WorkerId>> {
        self.by_partition.get(&p)
    }
}

/// One partition's view for the flow.
struct Part {
    id: PartitionId,
    rf: i64,
    /// Replicas the placement must keep (joining ones, committed drain targets).
    pinned: BTreeSet<usize>,
    /// Serving replicas it may keep at no cost.
    kept: BTreeSet<usize>,
}

/// The target placement for the round `t` plans, or `None` where the flow does not apply.
/// `withdrawn`: joining replicas this round withdraws (not pinned).
pub(crate) fn target(
    t: &Topology<'_>,
    withdrawn: &BTreeSet<(PartitionId, WorkerId)>,
) -> Option<Target> {
    if t.balance_set
        .keys()
        .any(|w| !t.is_candidate(w) && !t.excluded.contains(*w))
    {
        return None;
    }
    let zones: Vec<(&ZoneKey, &Vec<(WorkerId, u32)>)> = t.members().iter().collect();
    if zones.is_empty() {
        return None;
    }
    let mut index: BTreeMap<&WorkerId, usize> = BTreeMap::new();
    let mut workers: Vec<(usize, i64)> = Vec::new(); // (zone, capacity)
    let mut ids: Vec<&WorkerId> = Vec::new();
    for (z, (_, members)) in zones.iter().enumerate() {
        for (w, cap) in members.iter() {
            index.insert(w, workers.len());
            workers.push((z, i64::from((*cap).max(1))));
            ids.push(w);
        }
    }
    let nz = zones.len() as i64;
    let zone_index: BTreeMap<&ZoneKey, usize> = zones
        .iter()
        .enumerate()
        .map(|(z, (k, _))| (*k, z))
        .collect();
    // Replicas in each zone now, on any worker (for the fallback choice of zone totals).
    let mut located = vec![0i64; zones.len()];
    let mut parts = Vec::with_capacity(t.s.partitions.len());
    for p in &t.s.partitions {
        let mut part = Part {
            id: p.id,
            rf: i64::from(p.replication_factor),
            pinned: BTreeSet::new(),
            kept: BTreeSet::new(),
        };
        for r in &p.replicas {
            if r.role != ReplicaRole::Leaving
                && let Some(z) = t.zone_of(&r.worker).and_then(|k| zone_index.get(&k))
            {
                located[*z] += 1;
            }
            let Some(&i) = index.get(&r.worker) else {
                continue;
            };
            match r.role {
                ReplicaRole::Joining if !withdrawn.contains(&(p.id, r.worker.clone())) => {
                    part.pinned.insert(i);
                }
                ReplicaRole::Serving if !t.departing.contains(&(p.id, r.worker.clone())) => {
                    part.kept.insert(i);
                }
                _ => {}
            }
        }
        for ((pid, _), to) in t.arriving.range((p.id, WorkerId::from(""))..) {
            if *pid != p.id {
                break;
            }
            if let Some(&i) = index.get(to) {
                part.pinned.insert(i);
                part.kept.remove(&i);
            }
        }
        if part.pinned.len() as i64 > part.rf {
            return None;
        }
        // Rule 2 must be meetable: every zone can hold ⌈RF/Z⌉ of it.
        let hi = (part.rf + nz - 1) / nz;
        if zones.iter().any(|(_, m)| (m.len() as i64) < hi) {
            return None;
        }
        parts.push(part);
    }
    let units: i64 = parts.iter().map(|p| p.rf).sum();
    // Per partition: its source edge, two per zone, one per worker; two per worker to its zone.
    let edges = (parts.len() as u64) * (workers.len() as u64 + 2 * nz as u64 + 1)
        + 2 * workers.len() as u64;
    let choices = zone_choices(&located, units);
    if edges * (units.max(1) as u64) * (choices.len() as u64) > BUDGET {
        return None;
    }
    let mut best: Option<(i64, BTreeMap<PartitionId, BTreeSet<WorkerId>>)> = None;
    for totals in choices {
        let Some((moves, placed)) = solve(&parts, &workers, &totals, t.s.partitions.len()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| moves < *b) {
            let by_partition = placed
                .into_iter()
                .map(|(pid, ws)| (pid, ws.into_iter().map(|i| ids[i].clone()).collect()))
                .collect();
            best = Some((moves, by_partition));
        }
    }
    best.map(|(_, by_partition)| Target { by_partition })
}

/// The zone totals to try: each way of giving ⌈R/Z⌉ to R mod Z zones, or — when there are
/// more than [`MOST_ZONE_CHOICES`] ways — the one that gives it to the zones where the most
/// replicas are now (counting those about to leave them: a zone a drain empties still needs
/// what its drained workers held).
fn zone_choices(located: &[i64], units: i64) -> Vec<Vec<i64>> {
    let nz = located.len();
    let (lo, extra) = (units / nz as i64, (units % nz as i64) as usize);
    let mut choices = Vec::new();
    if nz <= 16 {
        for mask in 0u32..(1 << nz) {
            if mask.count_ones() as usize == extra {
                choices.push((0..nz).map(|z| lo + i64::from(mask >> z & 1)).collect());
            }
            if choices.len() > MOST_ZONE_CHOICES {
                break;
            }
        }
    }
    if choices.is_empty() || choices.len() > MOST_ZONE_CHOICES {
        let mut order: Vec<usize> = (0..nz).collect();
        order.sort_by_key(|&z| (std::cmp::Reverse(located[z]), z));
        let mut totals = vec![lo; nz];
        for &z in order.iter().take(extra) {
            totals[z] += 1;
        }
        choices = vec![totals];
    }
    choices
}

/// Solves the flow for one choice of zone totals: the number of moves and each partition's
/// workers (by index), or `None` if the rules cannot all be met with these totals.
fn solve(
    parts: &[Part],
    workers: &[(usize, i64)],
    totals: &[i64],
    partitions: usize,
) -> Option<(i64, BTreeMap<PartitionId, BTreeSet<usize>>)> {
    let nz = totals.len() as i64;
    let most = partitions as i64;
    let units: i64 = parts.iter().map(|p| p.rf).sum();
    let big = units + 1;
    // Pinned replicas are placed already: take them out of every bound they count in.
    let mut pinned_on = vec![0i64; workers.len()];
    let mut pinned_in = vec![0i64; totals.len()];
    for p in parts {
        for &i in &p.pinned {
            pinned_on[i] += 1;
            pinned_in[workers[i].0] += 1;
        }
    }
    let mut zone_cap = vec![0i64; totals.len()];
    for &(z, c) in workers {
        zone_cap[z] += c;
    }
    let mut n = Network::default();
    let (src, sink) = (n.node(), n.node());
    let zone_nodes: Vec<usize> = (0..totals.len()).map(|_| n.node()).collect();
    let worker_nodes: Vec<usize> = workers.iter().map(|_| n.node()).collect();
    // Lower bounds to check once the flow is found: (edge, units it must carry).
    let mut floors: Vec<(usize, i64)> = Vec::new();
    for (z, &zn) in zone_nodes.iter().enumerate() {
        let left = totals[z] - pinned_in[z];
        if left < 0 {
            return None;
        }
        n.edge(zn, sink, left, 0);
    }
    for (i, &(z, c)) in workers.iter().enumerate() {
        let share = totals[z] * c;
        let (lo, hi) = (
            (share / zone_cap[z]).min(most),
            ((share + zone_cap[z] - 1) / zone_cap[z]).min(most),
        );
        let (lo, hi) = (lo - pinned_on[i], hi - pinned_on[i]);
        if hi < 0 {
            return None;
        }
        let lo = lo.max(0);
        if let Some(e) = n.edge(worker_nodes[i], zone_nodes[z], lo, 0) {
            floors.push((e, lo));
        }
        n.edge(worker_nodes[i], zone_nodes[z], hi - lo, big);
    }
    let mut placements: Vec<(PartitionId, usize, usize)> = Vec::new(); // (partition, worker, edge)
    let mut want = 0;
    for p in parts {
        let pn = n.node();
        let rest = p.rf - p.pinned.len() as i64;
        want += rest;
        n.edge(src, pn, rest, 0);
        let (lo_pz, hi_pz) = (p.rf / nz, (p.rf + nz - 1) / nz);
        for (z, _) in totals.iter().enumerate() {
            let here = p.pinned.iter().filter(|&&i| workers[i].0 == z).count() as i64;
            let (lo, hi) = ((lo_pz - here).max(0), hi_pz - here);
            if hi < 0 {
                return None;
            }
            let pz = n.node();
            if let Some(e) = n.edge(pn, pz, lo, 0) {
                floors.push((e, lo));
            }
            n.edge(pn, pz, hi - lo, big);
            for (i, &(wz, _)) in workers.iter().enumerate() {
                if wz != z || p.pinned.contains(&i) {
                    continue;
                }
                let cost = i64::from(!p.kept.contains(&i));
                if let Some(e) = n.edge(pz, worker_nodes[i], 1, cost) {
                    placements.push((p.id, i, e));
                }
            }
        }
    }
    let (sent, _) = n.run(src, sink, want);
    if sent < want || floors.iter().any(|&(e, lo)| n.flow(e) < lo) {
        return None;
    }
    let mut placed: BTreeMap<PartitionId, BTreeSet<usize>> =
        parts.iter().map(|p| (p.id, p.pinned.clone())).collect();
    let mut moves = 0;
    for (pid, i, e) in placements {
        if n.flow(e) > 0 {
            placed.entry(pid).or_default().insert(i);
        }
    }
    for p in parts {
        let ws = &placed[&p.id];
        moves += ws
            .iter()
            .filter(|i| !p.kept.contains(i) && !p.pinned.contains(i))
            .count() as i64;
    }
    Some((moves, placed))
}
