//! What-if (SPEC §3 "Safety brakes"): what stopping or draining a set of workers would do to
//! the partitions, answered from the state and the leader's liveness view without changing
//! anything. A stop is judged replica by replica (who would still serve); a drain by the same
//! [`plan_drain`] a drain started from this state commits, so the answer is what then happens.

use std::collections::BTreeSet;

use drover_types::{ClusterState, Partition, PartitionId, ReplicaRole, WorkerId};
use serde::{Deserialize, Serialize};

use crate::{DrainPlan, Liveness, plan_drain};

/// What the operator is about to do to the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WhatIfAction {
    /// The processes stop (a restart, a power-off, a lost zone): their replicas stop serving
    /// until they return, or for good once the cluster declares them dead.
    Stop,
    /// A drain of the set as one operation: replicas move off make-before-break.
    Drain,
}

/// A partition the action leaves short of serving replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shortfall {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub partition: PartitionId,
    pub replication_factor: u8,
    /// Serving replicas on healthy workers now (alive, not suspect; as everywhere, a joining or
    /// leaving replica does not count).
    pub serving_now: u32,
    /// Of those, the ones left once the action is taken.
    pub serving_after: u32,
}

/// The what-if answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhatIf {
    pub action: WhatIfAction,
    /// The workers the action is taken on (a zone named by its workers).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub workers: Vec<WorkerId>,
    /// Partitions left with fewer than their RF serving replicas. A planned drain moves
    /// make-before-break, so for `drain` this is always empty.
    pub below_rf: Vec<Shortfall>,
    /// Partitions left without a majority of their RF serving (a subset of `below_rf`): their
    /// own service loses its quorum.
    pub below_majority: Vec<Shortfall>,
    /// Partitions whose preferred leader is on one of the workers: leadership moves.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u32>))]
    pub leaders_lost: Vec<PartitionId>,
    /// For `drain`: the plan a drain started now would commit — whether it can finish, its
    /// moves, what blocks it and what it costs (the drain dry run's answer).
    pub drain: Option<DrainPlan>,
}

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
        drain: (action == WhatIfAction::Drain).then(|| plan_drain(s, live, workers)),
    }
}

#[cfg(test)]
mod tests {
    use drover_types::Command;

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
        assert_eq!(drain, plan_drain(&sim.state, &live, &workers));
        assert!(drain.feasible);
        assert_eq!(drain.moves.len(), 6);
        // And a round right after it: the state it was judged on is unchanged (nothing written).
        let again = plan(&sim.state, &live, &PlannerConfig::default());
        assert!(again.steps.is_empty());
    }
}
