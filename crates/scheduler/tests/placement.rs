//! Initial placement (SPEC §3): a new table moves no data, so it is placed whole — every
//! replica of every partition in the first rounds, whatever the move throttles — and its
//! joiners do not hold up the cluster's real moves meanwhile.

use drover_scheduler::sim::Sim;
use drover_scheduler::{Liveness, PlannerConfig, Reason, Step, plan};
use drover_types::{Command, ReplicaRole, WorkerId};

fn cluster(per_zone: usize) -> Sim {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 0..per_zone {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim
}

/// A throttle of one move per worker and four in all: the old path placed a table of 600
/// replicas four at a time. Now the first round places all 200 partitions, RF replicas each,
/// one per zone, spread evenly; none of it counts as a move in flight.
#[test]
fn a_new_table_is_placed_in_one_round_whatever_the_throttles() {
    let mut sim = cluster(5);
    sim.run(Command::CreateTable {
        count: 200,
        replication_factor: 3,
    })
    .unwrap();
    let cfg = PlannerConfig {
        max_moves_per_worker: 1,
        max_moves_total: 4,
        ..PlannerConfig::default()
    };
    let live = Liveness::default();
    let round = plan(&sim.state, &live, &cfg);
    let places = round
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Place { .. }))
        .count();
    assert_eq!(places, 200, "{:?}", round.blocked.first());
    assert_eq!(sim.commit(&round), round.steps.len(), "every step applies");
    for p in &sim.state.partitions {
        assert_eq!(p.replicas.len(), 3, "partition {}", p.id);
        let mut zones: Vec<&str> = p
            .replicas
            .iter()
            .map(|r| &sim.state.workers[&r.worker].zone.as_deref().unwrap()[..1])
            .collect();
        zones.sort();
        assert_eq!(zones, ["a", "b", "c"], "partition {}", p.id);
    }
    for w in sim.state.workers.keys() {
        let held = sim.state.replicas_on(w).count();
        assert_eq!(held, 40, "{w}");
    }
    // The next round has nothing in flight to wait for but the acknowledgements.
    let next = plan(&sim.state, &live, &cfg);
    assert!(
        next.steps.iter().all(|s| !s.adds_replica()),
        "{:?}",
        next.steps
    );
    sim.ack_all();
    let (_, rounds) = sim.settle(&live, &cfg, 20, |_, _| {});
    assert!(rounds < 20);
    assert!(
        sim.state.partitions.iter().all(|p| p
            .replicas
            .iter()
            .all(|r| r.role == ReplicaRole::Serving)
            && p.leader.is_some())
    );
}

/// While a new table's joiners wait for their acknowledgements, a drain of a worker of the
/// old table still gets its move slot: placement joiners are not moves.
#[test]
fn placement_joiners_do_not_take_the_move_slots_of_a_drain() {
    let mut sim = cluster(3);
    sim.run(Command::CreateTable {
        count: 30,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = PlannerConfig {
        max_moves_per_worker: 1,
        max_moves_total: 2,
        ..PlannerConfig::default()
    };
    let round = plan(&sim.state, &live, &cfg);
    sim.commit(&round);
    // Half the partitions are acknowledged and serve; the other half still join, on every
    // worker a drain of a0 could move to.
    sim.ack_where(|p, _| p < 15);
    let a0 = WorkerId::from("a0");
    sim.run(Command::SetState {
        worker: a0.clone(),
        to: drover_types::WorkerState::Draining,
        by: drover_types::Actor::Operator,
        generation: None,
        expected_version: None,
        force: false,
        reason: None,
    })
    .unwrap();
    let mut drain_adds = 0;
    for _ in 0..5 {
        let round = plan(&sim.state, &live, &cfg);
        drain_adds += round.adds(Reason::Drain);
        sim.commit(&round);
        if drain_adds > 0 {
            break;
        }
    }
    assert!(
        drain_adds > 0,
        "the drain waited behind the placement's joiners"
    );
}
