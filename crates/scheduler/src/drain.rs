//! Drain plans: where each replica of the drained workers goes, and what the drain costs the
//! partitions it touches (warnings). `StartDrain` commits exactly these moves, and a dry run
//! shows them, so the preview — warnings included — is what happens.

use std::collections::BTreeSet;

use drover_types::{ClusterState, Partition, PlannedMove, ReplicaRole, WorkerId, WorkerState};
use serde::{Deserialize, Serialize};

use crate::target::target;
use crate::topology::{Topology, after_departures, zone_key};
use crate::{BlockCode, Blocked, DrainWarning, Liveness, PlannerConfig, WarningCode};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainPlan {
    /// One move per replica the drained workers hold (leaving replicas excepted: they are
    /// already going), sorted by partition.
    pub moves: Vec<PlannedMove>,
    /// Moves without a target, and why.
    pub blocked: Vec<Blocked>,
    /// Whether every replica has a target.
    pub feasible: bool,
    /// Partitions that lose zone spread or their preferred leader, by partition then code.
    pub warnings: Vec<DrainWarning>,
}

/// Plans the drain of `workers` (one, or a rack or zone as one operation). Targets spread as
/// a restore would place them, treating the drained workers as gone; throttles do not apply
/// here (they pace execution, not the plan).
pub fn plan_drain(s: &ClusterState, live: &Liveness, workers: &BTreeSet<WorkerId>) -> DrainPlan {
    let unthrottled = PlannerConfig {
        max_moves_per_worker: u32::MAX,
        max_moves_total: u32::MAX,
        ..PlannerConfig::default()
    };
    let mut t = Topology::new(s, live, &unthrottled).exclude(workers);
    // The drained workers' replicas leave their zones; count them out of the balance now.
    for w in workers {
        if s.workers
            .get(w)
            .is_some_and(|w| w.state == WorkerState::Active || w.state == WorkerState::Draining)
        {
            let n = t.load_of(w);
            if let Some(z) = t.zone_of(w) {
                *t.zone_load.entry(z).or_insert(0) -= n;
            }
        }
    }
    // The fewest moves the rules allow, when the flow applies (see `crate::target`): the
    // drained replicas go where the target placement wants new replicas. A partition's other
    // changes in that placement (a rebalance the drain makes necessary) are the round's.
    let exact = target(&t, &BTreeSet::new());
    let mut moves = Vec::new();
    let mut blocked = Vec::new();
    let mut warnings = Vec::new();
    for p in &s.partitions {
        let first_move = moves.len();
        // A copy of the partition that also holds the targets chosen so far, so two drained
        // replicas of one partition never get the same target. Rule 2 is judged on the
        // replicas that stay: those on the drained workers (and on any other draining worker)
        // count as gone, as they will when the drain executes this plan.
        let mut planned = after_departures(p, |w| {
            workers.contains(w)
                || s.workers
                    .get(w)
                    .is_some_and(|w| w.state == WorkerState::Draining)
        });
        for r in &p.replicas {
            if !workers.contains(&r.worker) || r.role == ReplicaRole::Leaving {
                continue;
            }
            let from_zone = t.zone_of(&r.worker);
            let mut wanted: Vec<&WorkerId> = exact
                .as_ref()
                .and_then(|x| x.of(p.id))
                .into_iter()
                .flatten()
                .filter(|w| planned.replica(w).is_none() && t.is_candidate(w))
                .collect();
            wanted.sort_by_key(|w| t.zone_of(w) != from_zone);
            let choice = match wanted.first() {
                Some(w) => Ok((*w).clone()),
                None => t.choose_target(&planned, Some(&r.worker)),
            };
            let to = match choice {
                Ok(to) => {
                    t.note_add(&to, None);
                    planned.replicas.push(drover_types::Replica {
                        worker: to.clone(),
                        role: ReplicaRole::Joining,
                        since: p.epoch,
                        since_ms: 0,
                        acked_join: None,
                        replaces: Some(r.worker.clone()),
                    });
                    Some(to)
                }
                Err(code) => {
                    blocked.push(Blocked {
                        partition: p.id,
                        worker: Some(r.worker.clone()),
                        code,
                        detail: format!(
                            "no active worker outside the drain can take partition {} (RF {})",
                            p.id, p.replication_factor
                        ),
                    });
                    None
                }
            };
            moves.push(PlannedMove {
                partition: p.id,
                from: r.worker.clone(),
                to,
                epoch: p.epoch,
            });
        }
        warnings.extend(warn(s, p, workers, &moves[first_move..]));
    }
    let feasible = blocked
        .iter()
        .all(|b: &Blocked| b.code == BlockCode::Throttled);
    DrainPlan {
        moves,
        blocked,
        feasible,
        warnings,
    }
}

/// The warnings for partition `p` once `moves` (its moves in this drain) have landed. Judged
/// on the plan itself, so a dry run and the drain it previews warn alike.
fn warn(
    s: &ClusterState,
    p: &Partition,
    drained: &BTreeSet<WorkerId>,
    moves: &[PlannedMove],
) -> Vec<DrainWarning> {
    let mut out = Vec::new();
    if moves.is_empty() {
        return out;
    }
    let zone = |w: &WorkerId| s.workers.get(w).map(zone_key);
    // Leaving replicas are already going, with or without this drain.
    let staying = p.replicas.iter().filter(|r| r.role != ReplicaRole::Leaving);
    let before: BTreeSet<String> = staying.clone().filter_map(|r| zone(&r.worker)).collect();
    let after: BTreeSet<String> = staying
        .map(|r| &r.worker)
        .filter(|w| !moves.iter().any(|m| &m.from == *w && m.to.is_some()))
        .chain(moves.iter().filter_map(|m| m.to.as_ref()))
        .filter_map(zone)
        .collect();
    let (zb, za) = (count(before.len()), count(after.len()));
    if za < zb {
        let names = |z: &BTreeSet<String>| {
            z.iter()
                .map(|z| if z.is_empty() { "(none)" } else { z.as_str() })
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(DrainWarning {
            partition: p.id,
            code: WarningCode::LostZoneSpread,
            worker: None,
            zones_before: zb,
            zones_after: za,
            detail: format!(
                "replicas span {zb} zones now ({}) and {za} after the drain ({}): the zones \
                 left cannot take the drained replicas' share",
                names(&before),
                names(&after)
            ),
        });
    }
    if let Some(l) = p.leader.as_ref().filter(|l| drained.contains(*l)) {
        out.push(DrainWarning {
            partition: p.id,
            code: WarningCode::LeaderMoves,
            worker: Some(l.clone()),
            zones_before: zb,
            zones_after: za,
            detail: format!(
                "preferred leader {l} is drained: leadership moves to a replica that stays \
                 when the drain starts"
            ),
        });
    }
    out
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
