//! The planner under an operator's cordons (SPEC §1) and pause (SPEC §3): nothing new is
//! placed on a cordoned worker, which keeps what it holds; a paused round starts no move while
//! the moves in flight finish.

use std::collections::BTreeSet;

use drover_scheduler::sim::Sim;
use drover_scheduler::{BlockCode, Liveness, PlannerConfig, Reason, Step, plan, plan_drain};
use drover_types::{Command, ReplicaRole, WorkerId, WorkerState};

/// Six workers in zones a, b, c and a 12-partition RF 3 table, settled.
fn settled() -> Sim {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 1..=2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 12,
        replication_factor: 3,
    })
    .unwrap();
    settle(&mut sim, &PlannerConfig::default());
    sim
}

fn settle(sim: &mut Sim, cfg: &PlannerConfig) -> drover_scheduler::Plan {
    let (last, rounds) = sim.settle(&Liveness::default(), cfg, 200, |_, _| {});
    assert!(rounds < 200, "did not settle");
    last
}

fn cordon(sim: &mut Sim, worker: &str, holder: &str) {
    sim.run(Command::Cordon {
        worker: worker.into(),
        holder: holder.into(),
        reason: "test".into(),
        until_ms: None,
    })
    .unwrap();
}

/// Partitions holding a replica on `w`, with their roles.
fn held(sim: &Sim, w: &str) -> BTreeSet<(u32, ReplicaRole)> {
    let w = WorkerId::from(w);
    sim.state
        .replicas_on(&w)
        .map(|p| (p.id, p.replica(&w).unwrap().role))
        .collect()
}

fn start_drain(sim: &mut Sim, w: &str) {
    let set = BTreeSet::from([WorkerId::from(w)]);
    let dp = plan_drain(&sim.state, &Liveness::default(), &set);
    sim.run(Command::StartDrain {
        workers: set.into_iter().collect(),
        moves: dp.moves,
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    })
    .unwrap();
}

/// A worker cordoned before the table exists gets nothing from the initial placement.
#[test]
fn initial_placement_skips_a_cordoned_worker() {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 1..=2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    cordon(&mut sim, "a1", "ops");
    sim.run(Command::CreateTable {
        count: 12,
        replication_factor: 3,
    })
    .unwrap();
    settle(&mut sim, &PlannerConfig::default());
    assert!(held(&sim, "a1").is_empty(), "{:?}", held(&sim, "a1"));
    assert!(sim.state.partitions.iter().all(|p| p.replicas.len() == 3));
}

/// Drain a1 while a2, its zone's other worker and the drain's natural target, is cordoned —
/// once before the drain is planned and once after its plan named a2: a2 receives nothing and
/// keeps every replica it held; a1's replicas go to other zones.
#[test]
fn nothing_is_placed_on_a_cordoned_worker_and_it_keeps_what_it_holds() {
    for cordon_first in [true, false] {
        let mut sim = settled();
        let before = held(&sim, "a2");
        assert!(!before.is_empty());
        if cordon_first {
            cordon(&mut sim, "a2", "ops");
            start_drain(&mut sim, "a1");
        } else {
            start_drain(&mut sim, "a1");
            let targets: Vec<_> = sim.state.drains.values().flat_map(|d| &d.moves).collect();
            assert!(
                targets
                    .iter()
                    .any(|m| m.to.as_ref().map(|w| w.as_str()) == Some("a2")),
                "the plan sends something to a2 before the cordon: {targets:?}"
            );
            cordon(&mut sim, "a2", "ops");
        }
        let mut placed_on_a2 = 0;
        let (_, rounds) = sim.settle(
            &Liveness::default(),
            &PlannerConfig::default(),
            200,
            |_, p| {
                placed_on_a2 += Sim::count(
                    p,
                    |s| matches!(s, Step::Add { worker, .. } if worker.as_str() == "a2"),
                );
            },
        );
        assert!(rounds < 200);
        assert_eq!(placed_on_a2, 0, "cordon_first={cordon_first}");
        assert_eq!(held(&sim, "a2"), before, "a2 keeps exactly what it held");
        assert!(held(&sim, "a1").is_empty());
        assert_eq!(
            sim.state.workers[&WorkerId::from("a1")].state,
            WorkerState::Disabled
        );
    }
}

/// Pause with a drain's first moves in flight: those finish (acknowledged, released), no other
/// move starts, and the held-back moves are reported `paused`; after resume the drain finishes.
#[test]
fn a_paused_round_starts_no_move_but_in_flight_moves_complete() {
    let mut sim = settled();
    let cfg = PlannerConfig {
        max_moves_per_worker: 2,
        ..PlannerConfig::default()
    };
    let total = held(&sim, "a1").len();
    start_drain(&mut sim, "a1");
    let first = plan(&sim.state, &Liveness::default(), &cfg);
    let started = first.adds(Reason::Drain);
    assert!(started > 0 && started < total, "{started} of {total}");
    sim.commit(&first);
    sim.run(Command::PauseScheduler {
        reason: "incident".into(),
        until_ms: None,
    })
    .unwrap();

    let mut adds = 0;
    let mut paused_reported = false;
    let live = Liveness::default();
    let (_, rounds) = sim.settle(&live, &cfg, 50, |_, p| {
        adds += Sim::count(p, |s| matches!(s, Step::Add { .. }));
        paused_reported |= p.blocked.iter().any(|b| b.code == BlockCode::Paused);
    });
    assert!(rounds < 50);
    assert_eq!(adds, 0, "no move starts while paused");
    assert!(paused_reported, "the held-back moves are reported paused");
    assert_eq!(
        held(&sim, "a1").len(),
        total - started,
        "exactly the moves in flight finished"
    );
    assert!(
        sim.state
            .partitions
            .iter()
            .all(|p| p.replicas.iter().all(|r| r.role == ReplicaRole::Serving)),
        "nothing left in flight"
    );

    sim.run(Command::ResumeScheduler).unwrap();
    settle(&mut sim, &cfg);
    assert!(held(&sim, "a1").is_empty());
    assert_eq!(
        sim.state.workers[&WorkerId::from("a1")].state,
        WorkerState::Disabled
    );
}
