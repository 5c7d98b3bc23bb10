//! Planner speed at 1,000 workers in 3 zones, 10,000 partitions at RF 3 (30,000 replicas):
//! initial placement (one round placing every replica), the plan for draining one worker, and
//! the round after losing a whole zone; and the round a leader plans on a settled fleet of
//! 1,000 and of 10,000 workers (30,000 partitions), where nothing is to be done.
//!
//! Run: `cargo bench -p drover-scheduler --bench planner`

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_scheduler::sim::Sim;
use drover_scheduler::{Liveness, PlannerConfig, plan, plan_drain};
use drover_types::{Command, WorkerId};

fn cluster() -> Sim {
    fleet(1000, 10_000)
}

/// `workers` in 3 zones (capacity 1) and an unplaced table of `partitions` at RF 3.
fn fleet(workers: usize, partitions: u32) -> Sim {
    let mut sim = Sim::new();
    for i in 0..workers {
        sim.add_worker(&format!("w{i:05}"), Some(&format!("z{}", i % 3)), 1);
    }
    sim.run(Command::CreateTable {
        count: partitions,
        replication_factor: 3,
    })
    .expect("table");
    sim
}

fn unthrottled() -> PlannerConfig {
    PlannerConfig {
        max_moves_per_worker: u32::MAX,
        max_moves_total: u32::MAX,
        ..PlannerConfig::default()
    }
}

fn benches(c: &mut Criterion) {
    let live = Liveness::default();
    let cfg = unthrottled();
    let empty = cluster();
    let mut g = c.benchmark_group("planner_1000w_10000p_rf3");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.bench_function("initial_placement", |b| {
        b.iter(|| plan(&empty.state, &live, &cfg))
    });

    let mut placed = empty.clone();
    placed.settle(&live, &cfg, 50, |_, _| {});
    g.bench_function("settled_round", |b| {
        b.iter(|| plan(&placed.state, &live, &PlannerConfig::default()))
    });
    let drained = BTreeSet::from([WorkerId::from("w00001")]);
    g.bench_function("drain_one_worker", |b| {
        b.iter(|| plan_drain(&placed.state, &live, &drained))
    });

    let mut zone_lost = placed.clone();
    let zone0: Vec<WorkerId> = zone_lost
        .state
        .workers
        .values()
        .filter(|w| w.zone.as_deref() == Some("z0"))
        .map(|w| w.id.clone())
        .collect();
    for w in zone0 {
        let generation = zone_lost.state.workers[&w].generation;
        zone_lost
            .run(Command::MarkDead {
                worker: w,
                generation,
                term: zone_lost.term,
            })
            .expect("dead");
    }
    g.bench_function("lose_a_zone", |b| {
        b.iter(|| plan(&zone_lost.state, &live, &PlannerConfig::default()))
    });
    g.finish();

    // A settled fleet at the size the fleet benchmark aims for: the round every leader plans
    // when nothing changed but the time (SPEC §3's expiries, joins timing out).
    let mut g = c.benchmark_group("planner_10000w_30000p_rf3");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let mut big = fleet(10_000, 30_000);
    big.settle(&live, &cfg, 50, |_, _| {});
    g.bench_function("settled_round", |b| {
        b.iter(|| plan(&big.state, &live, &PlannerConfig::default()))
    });
    g.finish();

    // The target placement by min-cost flow (`target.rs`) plans rounds of clusters under its
    // budget: the round after a worker joins a settled one, at the sizes named.
    let mut g = c.benchmark_group("planner_exact_after_a_join");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (workers, partitions) in [(6, 32), (24, 128), (48, 256)] {
        let mut sim = Sim::new();
        for i in 0..workers {
            sim.add_worker(&format!("w{i:03}"), Some(&format!("z{}", i % 3)), 1);
        }
        sim.run(Command::CreateTable {
            count: partitions,
            replication_factor: 3,
        })
        .expect("table");
        sim.settle(&live, &cfg, 50, |_, _| {});
        sim.add_worker("new", Some("z0"), 1);
        g.bench_function(format!("{workers}w_{partitions}p_rf3"), |b| {
            b.iter(|| plan(&sim.state, &live, &PlannerConfig::default()))
        });
    }
    g.finish();
}

criterion_group!(planner, benches);
criterion_main!(planner);
