//! Planner speed at 1,000 workers in 3 zones, 10,000 partitions at RF 3 (30,000 replicas):
//! initial placement (one round placing every replica), the plan for draining one worker, and
//! the round after losing a whole zone.
//!
//! Run: `cargo bench -p drover-scheduler --bench planner`

use std::collections::BTreeSet;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_scheduler::sim::Sim;
use drover_scheduler::{Liveness, PlannerConfig, plan, plan_drain};
use drover_types::{Command, WorkerId};

fn cluster() -> Sim {
    let mut sim = Sim::new();
    for i in 0..1000 {
        sim.add_worker(&format!("w{i:04}"), Some(&format!("z{}", i % 3)), 1);
    }
    sim.run(Command::CreateTable {
        count: 10_000,
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
    let drained = BTreeSet::from([WorkerId::from("w0001")]);
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
