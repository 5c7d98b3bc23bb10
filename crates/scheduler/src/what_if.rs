//! What-if (SPEC §3 "Safety brakes"): what stopping or draining a set of workers would do to
//! the partitions, answered from the state and the leader's liveness view without changing
//! anything. A stop is judged replica by replica (who would still serve); a drain by the same
//! [`plan_drain`] a drain started from this state commits, so the answer is what then happens.

use std::collections::BTreeSet;

use drover_api::{DrainPreview, Shortfall, WhatIf, WhatIfAction};
use drover_types::{ClusterState, Partition, ReplicaRole, WorkerId};

use crate::{Liveness, plan_drain};

/// A majority of `rf` replicas.
pub fn majority(rf: u8) -> u32 {
    u32::from(rf) / 2 + 1
}

/// Answers what `action` on `workers` would do, from `s` and the leader's view `live`.
/// `workers` must be workers of `s` (the caller checks, to name the unknown one).
pub fn what_if(
    s: &ClusterState,
    live: &Liveness,
    workers: &BTreeSet<WorkerId>,
    action: WhatIfAction,
) -> WhatIf {
    let healthy = |w: &WorkerId| s.is_alive(w) && !live.is_suspect(w);
    let serving = |p: &Partition, keep: &dyn Fn(&WorkerId) -> bool| {
        let n = p
            .replicas
            .iter()
            .filter(|r| r.role == ReplicaRole::Serving && healthy(&r.worker) && keep(&r.worker))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let mut below_rf = Vec::new();
    let mut leaders_lost = Vec::new();
    for p in &s.partitions {
        if p.leader.as_ref().is_some_and(|l| workers.contains(l)) {
            leaders_lost.push(p.id);
        }
        if action == WhatIfAction::Drain || !p.replicas.iter().any(|r| workers.contains(&r.worker))
        {
            continue;
        }
        let after = serving(p, &|w| !workers.contains(w));
        if after < u32::from(p.replication_factor) {
            below_rf.push(Shortfall {
                partition: p.id,
                replication_factor: p.replication_factor,
                serving_now: serving(p, &|_| true),
                serving_after: after,
            });
        }
    }
    let below_majority = below_rf
        .iter()
        .filter(|f| f.serving_after < majority(f.replication_factor))
        .cloned()
        .collect();
    WhatIf {
        action,
        workers: workers.iter().cloned().collect(),
        below_rf,
        below_majority,
        leaders_lost,
        drain: (action == WhatIfAction::Drain).then(|| {
            let plan = plan_drain(s, live, workers);
            DrainPreview {
                dry_run: true,
                feasible: plan.feasible,
                moves: plan.moves,
                blocked: plan.blocked,
                warnings: plan.warnings,
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use drover_types::{Command, PartitionId};

    use super::*;
    use crate::sim::Sim;
    use crate::{PlannerConfig, plan};

    /// Three zones of two workers, 12 partitions at RF 3, settled.
    fn settled() -> Sim {
        let mut sim = Sim::new();
        for (i, z) in ["a", "a", "b", "b", "c", "c"].iter().enumerate() {
            sim.add_worker(&format!("w{}", i + 1), Some(z), 1);
        }
        sim.run(Command::CreateTable {
            count: 12,
            replication_factor: 3,
        })
        .unwrap();
        let (p, _) = sim.settle(
            &Liveness::default(),
            &PlannerConfig::default(),
            50,
            |_, _| {},
        );
        assert!(p.steps.is_empty());
        sim
    }

    fn set(ids: &[&str]) -> BTreeSet<WorkerId> {
        ids.iter().map(|&w| WorkerId::from(w)).collect()
    }

    #[test]
    fn stopping_a_zone_costs_every_partition_one_replica_and_no_majority() {
        let sim = settled();
        let live = Liveness::default();
        let a = what_if(&sim.state, &live, &set(&["w1", "w2"]), WhatIfAction::Stop);
        // Zone spread: every partition has one replica in zone a.
        assert_eq!(a.below_rf.len(), 12);
        assert!(
            a.below_rf
                .iter()
                .all(|f| f.serving_now == 3 && f.serving_after == 2)
        );
        assert!(a.below_majority.is_empty());
        // Two zones: every partition keeps only one replica.
        let ab = what_if(
            &sim.state,
            &live,
            &set(&["w1", "w2", "w3", "w4"]),
            WhatIfAction::Stop,
        );
        assert_eq!(ab.below_majority.len(), 12);
        let led: Vec<PartitionId> = sim
            .state
            .partitions
            .iter()
            .filter(|p| {
                p.leader
                    .as_ref()
                    .is_some_and(|l| set(&["w1", "w2"]).contains(l))
            })
            .map(|p| p.id)
            .collect();
        assert!(!led.is_empty());
        assert_eq!(a.leaders_lost, led);
    }

    #[test]
    fn a_suspect_worker_is_already_not_serving() {
        let sim = settled();
        let live = Liveness {
            suspect: set(&["w3"]),
            ..Liveness::default()
        };
        // Stopping zone a with w3 (zone b) suspect: partitions on both lose their majority.
        let a = what_if(&sim.state, &live, &set(&["w1", "w2"]), WhatIfAction::Stop);
        let on_w3 = |p: &PartitionId| {
            sim.state.partitions[*p as usize]
                .replica(&WorkerId::from("w3"))
                .is_some()
        };
        let lost: Vec<PartitionId> = a.below_majority.iter().map(|f| f.partition).collect();
        assert!(!lost.is_empty());
        assert!(lost.iter().all(on_w3), "{lost:?}");
        assert!(
            a.below_rf
                .iter()
                .all(|f| f.serving_now == if on_w3(&f.partition) { 2 } else { 3 })
        );
    }

    #[test]
    fn a_drain_answers_the_plan_a_drain_commits_and_loses_nothing() {
        let sim = settled();
        let live = Liveness::default();
        let workers = set(&["w1"]);
        let d = what_if(&sim.state, &live, &workers, WhatIfAction::Drain);
        assert!(d.below_rf.is_empty() && d.below_majority.is_empty());
        let drain = d.drain.unwrap();
        let planned = plan_drain(&sim.state, &live, &workers);
        assert_eq!(drain.moves, planned.moves);
        assert_eq!(drain.warnings, planned.warnings);
        assert!(drain.feasible);
        assert_eq!(drain.moves.len(), 6);
        // And a round right after it: the state it was judged on is unchanged (nothing written).
        let again = plan(&sim.state, &live, &PlannerConfig::default());
        assert!(again.steps.is_empty());
    }
}
