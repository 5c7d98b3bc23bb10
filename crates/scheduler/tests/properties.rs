//! Property tests of the planner over random clusters: 1–200 workers in 1–6 zones with mixed
//! capacities, up to 5,000 partitions at RF 1–5, random prior placements, worker states and
//! suspicions. Plans are committed through the real `apply` and acknowledged, round after round,
//! until settled. Checked on every round: every committed step is accepted; new replicas go
//! only to Active, live, unsuspected workers (rule 1); no step takes a partition below its
//! healthy serving RF. Once settled: the plan is empty; rule 2 whenever enough zones have
//! candidates; each worker within floor/ceil of its capacity share of its zone (and, with equal
//! capacities and equal zones, counts within 1 of each other); the feasibility verdict matches
//! whether every partition could reach RF. A drain moves exactly the replicas the drained
//! workers held; its rebalance moves are counted apart.
//!
//! Cases: 256 by default; `PROPTEST_CASES` bounds them (CI sets it low).

use std::collections::{BTreeMap, BTreeSet};

use drover_scheduler::sim::Sim;
use drover_scheduler::{Liveness, PlannerConfig, Reason, Step, WarningCode, plan_drain, zone_key};
use drover_types::{ClusterState, Command, ReplicaRole, WorkerId, WorkerState};
use proptest::prelude::*;

#[derive(Clone, Debug)]
struct Setup {
    workers: Vec<(u32, u32)>, // (zone index, capacity)
    partitions: u32,
    rf: u8,
    /// (partition, worker index) replicas placed before planning.
    prior: Vec<(u32, usize)>,
    /// Worker index -> what happens to it after prior placement: 0 stays, 1 drains, 2 dies,
    /// 3 never activates, 4 suspect.
    fate: Vec<u8>,
    throttled: bool,
    drain: Vec<usize>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (1u32..=6, 1usize..=200, prop::bool::weighted(0.5), 1u8..=5, prop_oneof![8 => 1u32..300, 1 => 300u32..=5000])
        .prop_flat_map(|(zones, n, equal, rf, partitions)| {
            let worker = (0..zones, if equal { Just(1u32).boxed() } else { (1u32..=4).boxed() });
            (
                prop::collection::vec(worker, n),
                Just(zones),
                Just(partitions),
                Just(rf),
                prop::collection::vec((0..partitions, 0..n), 0..(partitions as usize).min(400)),
                prop::collection::vec(prop_oneof![12 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8), 1 => Just(4u8)], n),
                prop::bool::weighted(0.2),
                prop::collection::vec(0..n, 0..4),
            )
        })
        .prop_map(|(workers, _zones, partitions, rf, prior, fate, throttled, drain)| Setup {
            workers,
            partitions,
            rf,
            prior,
            fate,
            throttled: throttled && partitions <= 100,
            drain,
        })
}

fn wid(i: usize) -> WorkerId {
    WorkerId::from(format!("w{i:03}").as_str())
}

/// Builds the cluster: workers, table, prior placements (as acknowledged moves), then fates.
fn build(s: &Setup) -> (Sim, Liveness) {
    let mut sim = Sim::new();
    for (i, (zone, cap)) in s.workers.iter().enumerate() {
        if s.fate[i] == 3 {
            let _ = sim.run(Command::Register(drover_types::Registration {
                worker: wid(i),
                incarnation: 1,
                address: "10.0.0.1:80".into(),
                zone: Some(format!("z{zone}")),
                capacity: *cap,
                labels: BTreeMap::new(),
            }));
        } else {
            sim.add_worker(&format!("w{i:03}"), Some(&format!("z{zone}")), *cap);
        }
    }
    sim.run(Command::CreateTable {
        count: s.partitions,
        replication_factor: s.rf,
    })
    .unwrap();
    for &(p, w) in &s.prior {
        let epoch = sim.state.partitions[p as usize].epoch;
        if sim
            .run(Command::AddReplica {
                partition: p,
                worker: wid(w),
                expected_epoch: epoch,
                replaces: None,
            })
            .is_ok()
        {
            let since = sim.state.partitions[p as usize].epoch;
            let generation = sim.state.workers[&wid(w)].generation;
            sim.run(Command::Acknowledge {
                partition: p,
                worker: wid(w),
                generation,
                epoch: since,
            })
            .unwrap();
        }
    }
    let mut live = Liveness::default();
    for (i, fate) in s.fate.iter().enumerate() {
        match fate {
            1 => {
                let _ = sim.run(Command::SetState {
                    worker: wid(i),
                    to: WorkerState::Draining,
                    by: drover_types::Actor::Operator,
                    generation: None,
                    expected_version: None,
                    force: false,
                    reason: None,
                });
            }
            2 => {
                let _ = sim.run(Command::MarkDead {
                    worker: wid(i),
                    generation: 1,
                    term: sim.term,
                });
            }
            4 => {
                live.suspect.insert(wid(i));
            }
            _ => {}
        }
    }
    (sim, live)
}

fn candidates(st: &ClusterState, live: &Liveness) -> BTreeSet<WorkerId> {
    st.workers
        .values()
        .filter(|w| w.state == WorkerState::Active && !w.dead && !live.is_suspect(&w.id))
        .map(|w| w.id.clone())
        .collect()
}

fn healthy(st: &ClusterState) -> Vec<usize> {
    st.partitions
        .iter()
        .map(|p| st.healthy_serving(p))
        .collect()
}

/// Runs rounds to a settled state, checking the per-round properties.
fn settle(
    sim: &mut Sim,
    live: &Liveness,
    cfg: &PlannerConfig,
) -> (drover_scheduler::Plan, Vec<Step>) {
    let mut all_steps = Vec::new();
    for _ in 0..400 {
        let l = Liveness {
            now_ms: sim.now_ms,
            ..live.clone()
        };
        let plan = drover_scheduler::plan(&sim.state, &l, cfg);
        let cands = candidates(&sim.state, live);
        let mut epoch_steps = BTreeSet::new();
        for step in &plan.steps {
            if let Step::Add {
                worker, partition, ..
            } = step
            {
                assert!(
                    cands.contains(worker),
                    "rule 1: add to {worker} (not a candidate)"
                );
                let p = &sim.state.partitions[*partition as usize];
                assert!(p.replica(worker).is_none(), "add to a holder");
            }
            if let Step::Add { partition, .. }
            | Step::Release { partition, .. }
            | Step::Withdraw { partition, .. } = step
            {
                assert!(
                    epoch_steps.insert(*partition),
                    "two epoch steps on partition {partition}"
                );
            }
        }
        let busy = sim
            .state
            .partitions
            .iter()
            .any(|p| p.replicas.iter().any(|r| r.role != ReplicaRole::Serving));
        if plan.steps.is_empty() && !busy {
            return (plan, all_steps);
        }
        let before = healthy(&sim.state);
        for step in &plan.steps {
            let r = sim.run(step.command());
            assert!(r.is_ok(), "step {step:?} rejected: {r:?}");
        }
        for (i, (b, a)) in before.iter().zip(healthy(&sim.state)).enumerate() {
            let rf = usize::from(sim.state.partitions[i].replication_factor);
            assert!(
                a >= (*b).min(rf),
                "partition {i} fell from {b} to {a} healthy replicas"
            );
        }
        all_steps.extend(plan.steps.iter().cloned());
        sim.ack_all();
    }
    let l = Liveness {
        now_ms: sim.now_ms,
        ..live.clone()
    };
    let plan = drover_scheduler::plan(&sim.state, &l, cfg);
    panic!(
        "did not settle in 400 rounds; still planning {:?}",
        &plan.steps[..plan.steps.len().min(6)]
    );
}

fn check_settled(st: &ClusterState, live: &Liveness, plan: &drover_scheduler::Plan) {
    let cands = candidates(st, live);
    let zone_of = |w: &WorkerId| st.workers.get(w).map(zone_key);
    let cand_zones: BTreeSet<String> = cands.iter().filter_map(zone_of).collect();
    let mut could_fail = false;
    for p in &st.partitions {
        let rf = usize::from(p.replication_factor);
        let h = st.healthy_serving(p);
        if h < rf {
            could_fail = true;
        }
        if !live.suspect.is_empty() {
            continue;
        }
        // Rule 2.
        let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
        for r in &p.replicas {
            *per_zone.entry(zone_of(&r.worker).unwrap()).or_insert(0) += 1;
        }
        if cand_zones.len() >= rf && h >= rf {
            assert!(
                per_zone.values().all(|n| *n == 1),
                "partition {} shares a zone: {per_zone:?}",
                p.id
            );
        } else if h >= rf {
            // As even as possible: a zone may trail another by two or more only if every
            // candidate in it already holds the partition.
            for a in &cand_zones {
                for b in &cand_zones {
                    let na = per_zone.get(a).copied().unwrap_or(0);
                    let nb = per_zone.get(b).copied().unwrap_or(0);
                    let room_in_b = cands
                        .iter()
                        .any(|w| zone_of(w).as_ref() == Some(b) && p.replica(w).is_none());
                    assert!(
                        na < nb + 2 || !room_in_b,
                        "partition {} spread unevenly: {per_zone:?}",
                        p.id
                    );
                }
            }
        }
    }
    assert_eq!(
        plan.feasible, !could_fail,
        "feasible verdict: {:?}",
        plan.blocked
    );
    if !live.suspect.is_empty() || could_fail {
        return;
    }
    // Rule 3 within each zone.
    let mut load: BTreeMap<WorkerId, i64> = cands.iter().map(|w| (w.clone(), 0)).collect();
    for p in &st.partitions {
        for r in &p.replicas {
            if let Some(l) = load.get_mut(&r.worker) {
                *l += 1;
            }
        }
    }
    let parts = st.partitions.len() as i64;
    let mut zones: BTreeMap<String, Vec<(&WorkerId, i64, i64)>> = BTreeMap::new();
    for w in &cands {
        let worker = &st.workers[w];
        zones
            .entry(zone_key(worker))
            .or_default()
            .push((w, load[w], i64::from(worker.capacity)));
    }
    for (z, ws) in &zones {
        let total: i64 = ws.iter().map(|x| x.1).sum();
        let cap: i64 = ws.iter().map(|x| x.2).sum();
        if ws.iter().any(|x| (total * x.2 + cap - 1) / cap > parts) {
            continue; // a share above one replica per partition cannot be met; skip the zone
        }
        for (w, l, c) in ws {
            let (lo, hi) = (total * c / cap, (total * c + cap - 1) / cap);
            assert!(
                *l >= lo && *l <= hi,
                "zone {z}: {w} holds {l}, share bounds {lo}..={hi}"
            );
        }
    }
}

/// For the small-cluster properties, which discard the clusters their reference does not cover
/// (about one case in four): room for that many rejects at any case count.
fn small_config() -> ProptestConfig {
    ProptestConfig {
        max_global_rejects: cases().saturating_mul(2).max(1024),
        ..ProptestConfig::with_cases(cases())
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// See the module doc.
    #[test]
    fn plans_settle_and_keep_the_rules(s in setup()) {
        let (mut sim, live) = build(&s);
        let cfg = if s.throttled {
            PlannerConfig::default()
        } else {
            PlannerConfig { max_moves_per_worker: u32::MAX, max_moves_total: u32::MAX, ..PlannerConfig::default() }
        };
        let (settled, _) = settle(&mut sim, &live, &cfg);
        check_settled(&sim.state, &live, &settled);
        let equal_caps = s.workers.iter().all(|w| w.1 == 1);
        if equal_caps && live.suspect.is_empty() && settled.feasible {
            // Equal capacities and equal zone sizes: counts within 1 of each other.
            let cands = candidates(&sim.state, &live);
            let mut size: BTreeMap<String, usize> = BTreeMap::new();
            for w in &cands {
                *size.entry(zone_key(&sim.state.workers[w])).or_insert(0) += 1;
            }
            let equal_zones = size.values().collect::<BTreeSet<_>>().len() == 1;
            if equal_zones {
                let counts: Vec<usize> = cands.iter().map(|w| sim.state.replicas_on(w).count()).collect();
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                prop_assert!(hi - lo <= 1, "equal workers hold {lo}..{hi} replicas");
            }
        }

        // A drain of some Active workers moves exactly what they hold.
        let drained: BTreeSet<WorkerId> = s
            .drain
            .iter()
            .map(|&i| wid(i))
            .filter(|w| sim.state.workers.get(w).is_some_and(|w| w.state == WorkerState::Active))
            .collect();
        if drained.is_empty() || !settled.feasible {
            return Ok(());
        }
        // An odd-sized pick drains its first worker by a bare state change (the scheduler then
        // commits the plan); otherwise the set drains as one operation with its plan.
        let bare = s.drain.len() % 2 == 1;
        let drained: BTreeSet<WorkerId> = if bare {
            drained.into_iter().take(1).collect()
        } else {
            drained
        };
        let dp = plan_drain(&sim.state, &live, &drained);
        let held: usize = drained.iter().map(|w| sim.state.replicas_on(w).count()).sum();
        prop_assert_eq!(dp.moves.len(), held);
        if !dp.feasible {
            prop_assert!(!dp.blocked.is_empty());
            return Ok(());
        }
        // What the drain will cost, as its dry run warned: zones spanned before, per partition,
        // and the preferred leaders on drained workers.
        let zones_of = |st: &ClusterState, p: usize| -> usize {
            st.partitions[p].replicas.iter().map(|r| zone_key(&st.workers[&r.worker])).collect::<BTreeSet<_>>().len()
        };
        let zones_before: Vec<usize> = (0..sim.state.partitions.len()).map(|p| zones_of(&sim.state, p)).collect();
        let leaders_before: Vec<Option<WorkerId>> = sim.state.partitions.iter().map(|p| p.leader.clone()).collect();
        let warned = |code: WarningCode| -> BTreeSet<u32> {
            dp.warnings.iter().filter(|w| w.code == code).map(|w| w.partition).collect()
        };
        for w in &dp.warnings {
            let p = w.partition as usize;
            prop_assert_eq!(w.zones_before as usize, zones_before[p]);
            if w.code == WarningCode::LeaderMoves {
                prop_assert_eq!(&w.worker, &leaders_before[p]);
            }
        }
        let workers: Vec<WorkerId> = drained.iter().cloned().collect();
        if bare {
            sim.run(Command::SetState {
                worker: workers[0].clone(),
                to: WorkerState::Draining,
                by: drover_types::Actor::Operator,
                generation: None,
                expected_version: None,
                force: false,
                reason: None,
            })
            .unwrap();
        } else {
            sim.run(Command::StartDrain { workers, moves: dp.moves.clone(), reason: None, deadline_ms: None, on_deadline: Default::default() }).unwrap();
        }
        let (after, steps) = settle(&mut sim, &live, &cfg);
        // The dry run is the drain: exactly its moves complete, each once.
        let done: Vec<(u32, WorkerId, WorkerId)> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Add { partition, worker, reason: Reason::Drain, replaces: Some(from), .. } => {
                    Some((*partition, from.clone(), worker.clone()))
                }
                _ => None,
            })
            .collect();
        let previewed: Vec<(u32, WorkerId, WorkerId)> = dp
            .moves
            .iter()
            .filter_map(|m| Some((m.partition, m.from.clone(), m.to.clone()?)))
            .collect();
        let done_set: BTreeSet<_> = done.iter().cloned().collect();
        prop_assert_eq!(done.len(), held, "drain moves differ from what the drained workers held");
        prop_assert_eq!(done_set, previewed.into_iter().collect::<BTreeSet<_>>(), "the drain made other moves than its dry run showed");
        let restore_adds = steps.iter().filter(|s| matches!(s, Step::Add { reason: Reason::Restore, .. })).count();
        prop_assert_eq!(restore_adds, 0);
        // The warnings were the truth: exactly the partitions that span fewer zones once the
        // drain settled were warned of it, and exactly those whose preferred leader sat on a
        // drained worker were warned that it moves (and it did).
        let lost: BTreeSet<u32> = (0..sim.state.partitions.len())
            .filter(|&p| zones_of(&sim.state, p) < zones_before[p])
            .map(|p| p as u32)
            .collect();
        prop_assert_eq!(warned(WarningCode::LostZoneSpread), lost, "lost_zone_spread warnings differ from the zones lost");
        let led: BTreeSet<u32> = leaders_before
            .iter()
            .enumerate()
            .filter(|(_, l)| l.as_ref().is_some_and(|l| drained.contains(l)))
            .map(|(p, _)| p as u32)
            .collect();
        prop_assert_eq!(warned(WarningCode::LeaderMoves), led.clone());
        for p in led {
            let now = &sim.state.partitions[p as usize].leader;
            prop_assert!(now.as_ref().is_none_or(|l| !drained.contains(l)), "partition {} still led by a drained worker", p);
        }
        for w in &drained {
            prop_assert_eq!(sim.state.workers[w].state, WorkerState::Disabled);
        }
        check_settled(&sim.state, &live, &after);
    }
}

/// The SPEC's example of a drain that cannot finish: RF 3 and only two other Active workers.
#[test]
fn impossible_drain_is_refused_up_front() {
    let mut sim = Sim::new();
    for (i, z) in ["a", "b", "c"].iter().enumerate() {
        sim.add_worker(&format!("w{i}"), Some(z), 1);
    }
    sim.run(Command::CreateTable {
        count: 4,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = PlannerConfig::default();
    sim.settle(&live, &cfg, 50, |_, _| {});
    let dp = plan_drain(&sim.state, &live, &BTreeSet::from([WorkerId::from("w0")]));
    assert!(!dp.feasible);
    assert_eq!(dp.blocked.len(), 4);
    assert!(
        dp.blocked
            .iter()
            .all(|b| b.code == drover_scheduler::BlockCode::NoCandidate)
    );
    assert!(dp.moves.iter().all(|m| m.to.is_none()));
}

/// The example: three zones with one replica of every partition in each, and all of
/// zone b drained. The drain can finish (two zones keep two workers each), and it used to say
/// only "feasible": now every partition is warned that it loses its zone spread (3 zones to
/// 2), and every partition led from zone b that its leadership moves, naming the leader now.
/// The real drain answers from the same plan, so it warns alike.
#[test]
fn draining_a_whole_zone_warns_of_lost_spread_and_moving_leaders() {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 0..2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 12,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = PlannerConfig::default();
    let (_, rounds) = sim.settle(&live, &cfg, 50, |_, _| {});
    assert!(rounds < 50);
    let zone_b = BTreeSet::from([WorkerId::from("b0"), WorkerId::from("b1")]);
    let dp = plan_drain(&sim.state, &live, &zone_b);
    assert!(dp.feasible, "{:?}", dp.blocked);
    let lost: Vec<_> = dp
        .warnings
        .iter()
        .filter(|w| w.code == WarningCode::LostZoneSpread)
        .collect();
    assert_eq!(lost.len(), 12, "{:#?}", dp.warnings);
    assert!(
        lost.iter()
            .all(|w| w.zones_before == 3 && w.zones_after == 2 && w.worker.is_none()),
        "{lost:#?}"
    );
    assert!(lost[0].detail.contains("(a, b, c)") && lost[0].detail.contains("(a, c)"));
    let led_from_b: BTreeMap<u32, WorkerId> = sim
        .state
        .partitions
        .iter()
        .filter_map(|p| Some((p.id, p.leader.clone().filter(|l| zone_b.contains(l))?)))
        .collect();
    assert!(!led_from_b.is_empty());
    let moving: BTreeMap<u32, WorkerId> = dp
        .warnings
        .iter()
        .filter(|w| w.code == WarningCode::LeaderMoves)
        .map(|w| (w.partition, w.worker.clone().unwrap()))
        .collect();
    assert_eq!(moving, led_from_b);

    // Draining one worker of zone b keeps every partition's spread: zone b keeps b1.
    let one = BTreeSet::from([WorkerId::from("b0")]);
    let dp = plan_drain(&sim.state, &live, &one);
    assert!(
        dp.warnings
            .iter()
            .all(|w| w.code == WarningCode::LeaderMoves),
        "{:#?}",
        dp.warnings
    );
}

/// Same input, same plan.
#[test]
fn planning_is_deterministic() {
    let mut sim = Sim::new();
    for i in 0..30 {
        sim.add_worker(&format!("w{i:02}"), Some(&format!("z{}", i % 3)), 1 + i % 2);
    }
    sim.run(Command::CreateTable {
        count: 200,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = PlannerConfig::default();
    let a = drover_scheduler::plan(&sim.state, &live, &cfg);
    let b = drover_scheduler::plan(&sim.state.clone(), &live, &cfg);
    assert_eq!(a, b);
    assert!(!a.steps.is_empty());
}

/// A set drain taking two replicas of one partition makes exactly the moves its dry run showed.
/// With fewer zones than RF, the dry run used to place the second drained replica while still
/// counting the first one's zone, so it picked a zone that would end up crowded; the drain then
/// rejected that target under rule 2 once the first replica had left, and moved elsewhere.
#[test]
fn drain_of_two_replicas_of_one_partition_keeps_its_dry_run() {
    let mut sim = Sim::new();
    for w in ["x0", "x1", "x2", "x3", "y0", "y1", "w0", "w1", "w2"] {
        sim.add_worker(w, Some(&w[..1]), 1);
    }
    sim.run(Command::CreateTable {
        count: 2,
        replication_factor: 5,
    })
    .unwrap();
    // Partition 0 spreads 2/2/1 over zones x/y/w; partition 1 loads zone x, so that placement
    // prefers zone w whenever rule 2 allows it.
    let layout = [
        (0, ["x0", "x1", "y0", "y1", "w0"]),
        (1, ["x1", "x2", "x3", "y1", "w2"]),
    ];
    for (p, workers) in layout {
        for w in workers {
            let worker = WorkerId::from(w);
            let epoch = sim.state.partitions[p].epoch;
            sim.run(Command::AddReplica {
                partition: p as u32,
                worker: worker.clone(),
                expected_epoch: epoch,
                replaces: None,
            })
            .unwrap();
            let since = sim.state.partitions[p].epoch;
            let generation = sim.state.workers[&worker].generation;
            sim.run(Command::Acknowledge {
                partition: p as u32,
                worker,
                generation,
                epoch: since,
            })
            .unwrap();
        }
    }
    let live = Liveness::default();
    let drained = BTreeSet::from([WorkerId::from("x0"), WorkerId::from("y0")]);
    let dp = plan_drain(&sim.state, &live, &drained);
    assert!(dp.feasible, "{:?}", dp.blocked);
    let previewed: BTreeSet<(u32, WorkerId, WorkerId)> = dp
        .moves
        .iter()
        .map(|m| (m.partition, m.from.clone(), m.to.clone().unwrap()))
        .collect();
    // Once both drained replicas are gone, zones x/y/w hold 2/1/2 of partition 0.
    let zones = |to: &WorkerId| zone_key(&sim.state.workers[to]);
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, to) in &previewed {
        *per_zone.entry(zones(to)).or_insert(0) += 1;
    }
    assert_eq!(per_zone, BTreeMap::from([("w".into(), 1), ("x".into(), 1)]));

    sim.run(Command::StartDrain {
        workers: drained.iter().cloned().collect(),
        moves: dp.moves.clone(),
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    })
    .unwrap();
    let mut done = BTreeSet::new();
    let cfg = PlannerConfig::default();
    let (_, rounds) = sim.settle(&live, &cfg, 50, |_, plan| {
        for step in &plan.steps {
            if let Step::Add {
                partition,
                worker,
                reason: Reason::Drain,
                replaces: Some(from),
                ..
            } = step
            {
                done.insert((*partition, from.clone(), worker.clone()));
            }
        }
    });
    assert!(rounds < 50, "the drain did not settle");
    assert_eq!(
        done, previewed,
        "the drain made other moves than its dry run showed"
    );
}

/// A drain begun by a bare state change moves only the drained worker's replicas. In the round
/// that commits its plan, the drained worker's zone used to look short of replicas (a draining
/// worker is outside the balance), so the rebalance moved replicas into it; the drain then
/// refilled the zone and the rebalance moved them out again, a couple per round.
#[test]
fn rebalance_does_not_fill_a_zone_a_drain_is_about_to_fill() {
    let mut sim = Sim::new();
    for z in ["a", "b", "c", "d"] {
        for i in 0..2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 120,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = unthrottled();
    let (_, rounds) = sim.settle(&live, &cfg, 50, |_, _| {});
    assert!(rounds < 50);
    let drained = WorkerId::from("a0");
    let held = sim.state.replicas_on(&drained).count();
    assert!(held > 0);
    sim.run(Command::SetState {
        worker: drained.clone(),
        to: WorkerState::Draining,
        by: drover_types::Actor::Operator,
        generation: None,
        expected_version: None,
        force: false,
        reason: None,
    })
    .unwrap();
    let mut adds: BTreeMap<Reason, usize> = BTreeMap::new();
    let (after, rounds) = sim.settle(&live, &cfg, 50, |_, plan| {
        for step in &plan.steps {
            if let Some(reason) = step.reason().filter(|_| matches!(step, Step::Add { .. })) {
                *adds.entry(reason).or_insert(0) += 1;
            }
        }
    });
    assert!(rounds < 50, "the drain did not settle");
    assert_eq!(sim.state.workers[&drained].state, WorkerState::Disabled);
    assert_eq!(adds, BTreeMap::from([(Reason::Drain, held)]));
    check_settled(&sim.state, &live, &after);
}

/// Zones that join empty get their share of replicas within a few rounds. The zone balance
/// used to pick the emptiest zone one way and the move's target zone another when two zones
/// tied, give up on that pair for the round, and so move a replica or two per round: hundreds
/// of rounds for a large table.
#[test]
fn empty_zones_fill_in_a_few_rounds() {
    let mut sim = Sim::new();
    sim.add_worker("a0", Some("a"), 1);
    sim.add_worker("a1", Some("a"), 1);
    sim.run(Command::CreateTable {
        count: 300,
        replication_factor: 1,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = unthrottled();
    sim.settle(&live, &cfg, 50, |_, _| {});
    for z in ["b", "c"] {
        for i in 0..2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    let (after, rounds) = sim.settle(&live, &cfg, 400, |_, _| {});
    assert!(rounds <= 10, "took {rounds} rounds");
    check_settled(&sim.state, &live, &after);
    for w in ["a0", "a1", "b0", "b1", "c0", "c1"] {
        assert_eq!(sim.state.replicas_on(&WorkerId::from(w)).count(), 50, "{w}");
    }
}

/// A planner with no move limits, so a test sees how many rounds the rules themselves take.
fn unthrottled() -> PlannerConfig {
    PlannerConfig {
        max_moves_per_worker: u32::MAX,
        max_moves_total: u32::MAX,
        ..PlannerConfig::default()
    }
}

/// Agents that answer at their own pace: each pending acknowledgement arrives before the next
/// round with probability 1/`one_in`, drawn from `seed` (a small LCG, so runs repeat).
fn piecemeal_acks(seed: u64, one_in: u64) -> impl FnMut(&mut Sim) {
    let mut rng = seed;
    move |sim: &mut Sim| {
        sim.ack_where(|_, _| {
            rng = rng
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (rng >> 33).is_multiple_of(one_in)
        });
    }
}

/// Settles, counting the adds (every move starts with one), with `ack` playing the agents.
fn count_adds(
    sim: &mut Sim,
    live: &Liveness,
    cfg: &PlannerConfig,
    ack: impl FnMut(&mut Sim),
) -> (usize, usize) {
    let mut adds = 0;
    let each = |_: &Sim, plan: &drover_scheduler::Plan| {
        adds += plan
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Add { .. }))
            .count();
    };
    let (_, rounds) = sim.settle_acking(live, cfg, 400, each, ack);
    (adds, rounds)
}

/// The scenario: zones a (one worker), b (two), c (two), 32 partitions at RF 3, settled;
/// one worker joins in a new zone d. Zone d gets its even share, 24 replicas, and that is all
/// that moves. The planner used to take its zone-balance sources in partition order, whichever
/// worker of the zone held the partition, and counted a replica a move in flight was taking
/// away as still there; so a zone's workers fell out of balance with each other and the
/// per-zone balance moved replicas between them, only to move them back: 37–38 moves when the
/// agents' acknowledgements arrive piecemeal, as they do.
#[test]
fn a_worker_joining_in_a_new_zone_moves_only_its_share() {
    for seed in 0..8 {
        for one_in in [1, 2, 3, 5] {
            let moves = join_new_zone(piecemeal_acks(seed, one_in));
            assert_eq!(
                moves, 24,
                "seed {seed}, acks 1 in {one_in}: the join made {moves} moves, not 24"
            );
        }
    }
}

fn join_new_zone(ack: impl FnMut(&mut Sim)) -> usize {
    let mut sim = Sim::new();
    for (w, z) in [
        ("a0", "a"),
        ("b0", "b"),
        ("b1", "b"),
        ("c0", "c"),
        ("c1", "c"),
    ] {
        sim.add_worker(w, Some(z), 1);
    }
    sim.run(Command::CreateTable {
        count: 32,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let cfg = PlannerConfig::default();
    let (_, rounds) = sim.settle(&live, &cfg, 200, |_, _| {});
    assert!(rounds < 200);
    sim.add_worker("d0", Some("d"), 1);
    let (moves, rounds) = count_adds(&mut sim, &live, &cfg, ack);
    assert!(rounds < 400, "the join did not settle");
    assert_eq!(sim.state.replicas_on(&WorkerId::from("d0")).count(), 24);
    moves
}

/// An independent reference for minimal movement (SPEC §3 rule 4), written from the rules and
/// not from the planner: the fewest replica placements that take a placement to one that
/// satisfies rules 1–3, found by a min-cost flow over small clusters.
///
/// The rules, as the reference reads them, for candidates (Active, alive, unsuspected, not
/// draining) in Z zones and a table of P partitions at RF:
/// - rule 2: each partition has between ⌊RF/Z⌋ and ⌈RF/Z⌉ replicas in each zone (with Z ≥ RF,
///   at most one: distinct zones);
/// - rule 3: zone totals as even as rule 2 permits — each within ⌊R/Z⌋..⌈R/Z⌉ of the R = P·RF
///   replicas — and each worker within ⌊t·c/C⌋..⌈t·c/C⌉ of its zone's total t, for its
///   capacity c of the zone's C.
///
/// For each way of choosing which zones get ⌈R/Z⌉, the flow runs source → partition (RF units)
/// → (partition, zone) → worker → zone → sink (the zone's total). A unit into a worker that
/// already holds the partition costs 0, any other costs 1 (a move, or a restore); the lower
/// bounds (⌊RF/Z⌋ per partition and zone, a worker's floor) are units with a large negative cost
/// that any feasible flow takes. The minimum over the choices is the minimum number of moves.
mod reference {
    use std::collections::{BTreeMap, BTreeSet};

    use drover_types::WorkerId;

    /// Candidates: (id, zone, capacity). `old[p]`: the workers holding partition p now.
    pub struct Problem<'a> {
        pub candidates: &'a [(WorkerId, String, u32)],
        pub old: &'a [BTreeSet<WorkerId>],
        pub rf: usize,
    }

    const BIG: i64 = 1_000_000;

    struct Edge {
        to: usize,
        cap: i64,
        cost: i64,
    }

    #[derive(Default)]
    struct Flow {
        edges: Vec<Edge>,
        adj: Vec<Vec<usize>>,
    }

    impl Flow {
        fn node(&mut self) -> usize {
            self.adj.push(Vec::new());
            self.adj.len() - 1
        }

        fn edge(&mut self, from: usize, to: usize, cap: i64, cost: i64) {
            if cap <= 0 {
                return;
            }
            self.adj[from].push(self.edges.len());
            self.edges.push(Edge { to, cap, cost });
            self.adj[to].push(self.edges.len());
            self.edges.push(Edge {
                to: from,
                cap: 0,
                cost: -cost,
            });
        }

        /// Min-cost max-flow by successive shortest paths (Bellman–Ford: costs are negative).
        fn run(&mut self, s: usize, t: usize) -> (i64, i64) {
            let (mut flow, mut cost) = (0, 0);
            loop {
                let n = self.adj.len();
                let mut dist = vec![i64::MAX; n];
                let mut via = vec![usize::MAX; n];
                dist[s] = 0;
                let mut changed = true;
                while changed {
                    changed = false;
                    for u in 0..n {
                        if dist[u] == i64::MAX {
                            continue;
                        }
                        for &e in &self.adj[u] {
                            let Edge { to, cap, cost } = self.edges[e];
                            if cap > 0 && dist[u] + cost < dist[to] {
                                dist[to] = dist[u] + cost;
                                via[to] = e;
                                changed = true;
                            }
                        }
                    }
                }
                if dist[t] == i64::MAX {
                    return (flow, cost);
                }
                let mut push = i64::MAX;
                let mut v = t;
                while v != s {
                    let e = via[v];
                    push = push.min(self.edges[e].cap);
                    v = self.edges[e ^ 1].to;
                }
                let mut v = t;
                while v != s {
                    let e = via[v];
                    self.edges[e].cap -= push;
                    self.edges[e ^ 1].cap += push;
                    v = self.edges[e ^ 1].to;
                }
                flow += push;
                cost += push * dist[t];
            }
        }
    }

    fn div_floor(a: i64, b: i64) -> i64 {
        a / b
    }

    fn div_ceil(a: i64, b: i64) -> i64 {
        (a + b - 1) / b
    }

    impl Problem<'_> {
        fn zones(&self) -> BTreeMap<&str, Vec<usize>> {
            let mut zones: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
            for (i, (_, z, _)) in self.candidates.iter().enumerate() {
                zones.entry(z.as_str()).or_default().push(i);
            }
            zones
        }

        /// Rule 2's bounds on one partition's replicas in one zone.
        fn per_zone(&self, z: usize) -> (i64, i64) {
            let rf = self.rf as i64;
            let z = z as i64;
            (div_floor(rf, z), div_ceil(rf, z))
        }

        /// Whether the reference covers this cluster: every partition can reach RF with the
        /// per-zone bounds (each zone has at least ⌈RF/Z⌉ candidates).
        pub fn covered(&self) -> bool {
            let zones = self.zones();
            let (_, hi) = self.per_zone(zones.len().max(1));
            if zones.is_empty() || self.candidates.len() < self.rf {
                return false;
            }
            // A worker's share above one replica per partition cannot be met, and the rules
            // do not say where the rest goes: such clusters are outside the reference.
            let p = self.old.len() as i64;
            let r = p * self.rf as i64;
            let nz = zones.len() as i64;
            zones.values().all(|ws| {
                let cap_zone: i64 = ws.iter().map(|&i| i64::from(self.candidates[i].2)).sum();
                ws.len() as i64 >= hi
                    && [r / nz, div_ceil(r, nz)].iter().all(|t| {
                        ws.iter()
                            .all(|&i| div_ceil(t * i64::from(self.candidates[i].2), cap_zone) <= p)
                    })
            })
        }

        fn bounds(&self, cap_zone: i64, total: i64, cap: i64) -> (i64, i64) {
            let p = self.old.len() as i64;
            (
                div_floor(total * cap, cap_zone).min(p),
                div_ceil(total * cap, cap_zone).min(p),
            )
        }

        /// The fewest placements on a worker that does not hold the partition yet, over every
        /// placement the rules accept; `None` if none does.
        pub fn min_moves(&self) -> Option<i64> {
            let zones: Vec<(&str, Vec<usize>)> = self.zones().into_iter().collect();
            let nz = zones.len();
            let r = (self.old.len() * self.rf) as i64;
            let (lo_t, extra) = (r / nz as i64, (r % nz as i64) as u32);
            let (lo_pz, hi_pz) = self.per_zone(nz);
            let mut best: Option<i64> = None;
            for mask in 0u32..(1 << nz) {
                if mask.count_ones() != extra {
                    continue;
                }
                let totals: Vec<i64> = (0..nz).map(|z| lo_t + i64::from(mask >> z & 1)).collect();
                let mut f = Flow::default();
                let (src, sink) = (f.node(), f.node());
                let mut forced = 0;
                let workers: Vec<usize> = (0..self.candidates.len()).map(|_| f.node()).collect();
                for (z, (_, members)) in zones.iter().enumerate() {
                    let zn = f.node();
                    f.edge(zn, sink, totals[z], 0);
                    let cap_zone: i64 = members
                        .iter()
                        .map(|&i| i64::from(self.candidates[i].2))
                        .sum();
                    for &i in members {
                        let (lo, hi) =
                            self.bounds(cap_zone, totals[z], i64::from(self.candidates[i].2));
                        f.edge(workers[i], zn, lo, -BIG);
                        f.edge(workers[i], zn, hi - lo, 0);
                        forced += lo;
                    }
                }
                for held in self.old {
                    let pn = f.node();
                    f.edge(src, pn, self.rf as i64, 0);
                    for (_, members) in &zones {
                        let pz = f.node();
                        f.edge(pn, pz, lo_pz, -BIG);
                        f.edge(pn, pz, hi_pz - lo_pz, 0);
                        forced += lo_pz;
                        for &i in members {
                            let cost = i64::from(!held.contains(&self.candidates[i].0));
                            f.edge(pz, workers[i], 1, cost);
                        }
                    }
                }
                let (flow, cost) = f.run(src, sink);
                let moves = cost + BIG * forced;
                if flow == r && (0..=r).contains(&moves) {
                    best = Some(best.map_or(moves, |b| b.min(moves)));
                }
            }
            best
        }

        /// Whether `placement` (the workers holding each partition) satisfies the rules as this
        /// reference reads them; the reason when it does not.
        pub fn check(&self, placement: &[BTreeSet<WorkerId>]) -> Result<(), String> {
            let zones = self.zones();
            let nz = zones.len() as i64;
            let (lo_pz, hi_pz) = self.per_zone(zones.len());
            let zone_of: BTreeMap<&WorkerId, &str> = self
                .candidates
                .iter()
                .map(|(w, z, _)| (w, z.as_str()))
                .collect();
            let mut load: BTreeMap<&WorkerId, i64> = BTreeMap::new();
            for (p, held) in placement.iter().enumerate() {
                if held.len() != self.rf {
                    return Err(format!("partition {p} has {} replicas", held.len()));
                }
                let mut per: BTreeMap<&str, i64> = BTreeMap::new();
                for w in held {
                    let z = zone_of
                        .get(w)
                        .ok_or(format!("partition {p} on non-candidate {w}"))?;
                    *per.entry(z).or_insert(0) += 1;
                    *load.entry(w).or_insert(0) += 1;
                }
                for z in zones.keys() {
                    let n = per.get(z).copied().unwrap_or(0);
                    if n < lo_pz || n > hi_pz {
                        return Err(format!("partition {p} has {n} replicas in zone {z}"));
                    }
                }
            }
            let r = (placement.len() * self.rf) as i64;
            for (z, members) in &zones {
                let total: i64 = members
                    .iter()
                    .map(|&i| load.get(&self.candidates[i].0).copied().unwrap_or(0))
                    .sum();
                if total < r / nz || total > div_ceil(r, nz) {
                    return Err(format!(
                        "zone {z} holds {total} of {r} replicas over {nz} zones"
                    ));
                }
                let cap_zone: i64 = members
                    .iter()
                    .map(|&i| i64::from(self.candidates[i].2))
                    .sum();
                for &i in members {
                    let (w, _, c) = &self.candidates[i];
                    let (lo, hi) = self.bounds(cap_zone, total, i64::from(*c));
                    let l = load.get(w).copied().unwrap_or(0);
                    if l < lo || l > hi {
                        return Err(format!("{w} in zone {z} holds {l}, share {lo}..={hi}"));
                    }
                }
            }
            Ok(())
        }
    }
}

/// One change to a settled cluster.
#[derive(Clone, Debug)]
enum Change {
    /// A worker joins: in zone `zone`, an existing one or (past the last) a new one.
    Join {
        zone: usize,
        capacity: u32,
        new_zone: bool,
    },
    /// One worker drains.
    DrainWorker(usize),
    /// Every worker of a zone drains, as one operation.
    DrainZone(usize),
    /// A worker restarts with another capacity.
    Capacity { worker: usize, capacity: u32 },
    /// Nothing changes; time passes.
    Nothing,
}

#[derive(Clone, Debug)]
struct Small {
    /// Capacities of each zone's workers.
    zones: Vec<Vec<u32>>,
    partitions: u32,
    rf: u8,
    change: Change,
    throttled: bool,
    ack_seed: u64,
    ack_one_in: u64,
}

/// Small clusters for the reference: 1–4 zones of 1–3 workers of capacity 1 (or 1–3 when
/// `mixed`), 1–12 partitions at RF 1–3, and one change from `changes`.
fn small_with(changes: BoxedStrategy<Change>, mixed: bool) -> impl Strategy<Value = Small> {
    let caps = if mixed { 1u32..=3 } else { 1u32..=1 };
    let zones = prop::collection::vec(prop::collection::vec(caps, 1..=3), 1..=4);
    (
        zones,
        1u32..=12,
        1u8..=3,
        changes,
        prop::bool::ANY,
        0u64..1000,
        1u64..=3,
    )
        .prop_map(
            |(zones, partitions, rf, change, throttled, ack_seed, ack_one_in)| Small {
                zones,
                partitions,
                rf,
                change,
                throttled,
                ack_seed,
                ack_one_in,
            },
        )
}

/// The changes the planner is held to the reference on: a worker joins an existing zone, or
/// nothing changes.
fn small() -> impl Strategy<Value = Small> {
    let change = prop_oneof![
        3 => (0usize..5, 1u32..=1).prop_map(|(zone, capacity)| Change::Join { zone, capacity, new_zone: false }),
        1 => Just(Change::Nothing),
    ];
    small_with(change.boxed(), false)
}

/// Every kind of change, over mixed capacities and joins into new zones too.
fn small_any() -> impl Strategy<Value = Small> {
    let change = prop_oneof![
        3 => (0usize..5, 1u32..=3).prop_map(|(zone, capacity)| Change::Join { zone, capacity, new_zone: true }),
        2 => (0usize..12).prop_map(Change::DrainWorker),
        1 => (0usize..4).prop_map(Change::DrainZone),
        2 => (0usize..12, 1u32..=3).prop_map(|(worker, capacity)| Change::Capacity { worker, capacity }),
        1 => Just(Change::Nothing),
    ];
    small_with(change.boxed(), true)
}

fn small_worker(z: usize, i: usize) -> String {
    format!("z{z}w{i}")
}

/// The reference's view of the cluster: candidates, and who holds each partition.
/// Candidates as (id, zone, capacity).
type Candidates = Vec<(WorkerId, String, u32)>;

fn problem_of(st: &ClusterState) -> (Candidates, Vec<BTreeSet<WorkerId>>) {
    let candidates = st
        .workers
        .values()
        .filter(|w| w.state == WorkerState::Active && !w.dead)
        .map(|w| (w.id.clone(), zone_key(w), w.capacity.max(1)))
        .collect();
    let old = st
        .partitions
        .iter()
        .map(|p| p.replicas.iter().map(|r| r.worker.clone()).collect())
        .collect();
    (candidates, old)
}

proptest! {
    #![proptest_config(small_config())]

    /// Minimal movement as a property: from a settled placement of a small cluster, one change
    /// (a join, a worker's or a zone's drain, a capacity change, or nothing) makes exactly as
    /// many moves as the reference's minimum, whatever the throttles and however the agents'
    /// acknowledgements interleave, and ends in a placement the reference accepts. With no
    /// change, the placement stays settled however many rounds run.
    #[test]
    fn one_change_makes_the_fewest_moves(c in small()) {
        check_one_change(&c)?;
    }

    /// [`one_change_makes_the_fewest_moves`] over every kind of change — joins into new
    /// zones, a worker's drain, a zone's drain, a capacity change — with mixed capacities. The
    /// greedy planner failed it: a drain's targets chosen partition by partition left a zone's
    /// workers uneven for the rebalance to fix (a capacity-3 worker drained: 7 moves where 6
    /// do), and the zone spread's choice of sources was greedy (a join into a third zone: 10
    /// where 9 do; a capacity change: 2 where 1 does). The round now moves toward the target
    /// placement (`target.rs`).
    #[test]
    fn any_change_makes_the_fewest_moves(c in small_any()) {
        check_one_change(&c)?;
    }
}

/// The body of the minimal-movement properties.
fn check_one_change(c: &Small) -> Result<(), TestCaseError> {
    {
        let mut sim = Sim::new();
        for (z, caps) in c.zones.iter().enumerate() {
            for (i, cap) in caps.iter().enumerate() {
                sim.add_worker(&small_worker(z, i), Some(&format!("z{z}")), *cap);
            }
        }
        sim.run(Command::CreateTable {
            count: c.partitions,
            replication_factor: c.rf,
        })
        .unwrap();
        let live = Liveness::default();
        let (settled, rounds) = sim.settle(&live, &unthrottled(), 200, |_, _| {});
        prop_assert!(rounds < 200, "the table's placement did not settle");
        let (cands, old) = problem_of(&sim.state);
        let rf = usize::from(c.rf);
        let before = reference::Problem {
            candidates: &cands,
            old: &old,
            rf,
        };
        prop_assume!(before.covered() && settled.feasible);
        prop_assert_eq!(
            before.check(&old),
            Ok(()),
            "the settled placement breaks the rules"
        );

        let workers: Vec<WorkerId> = sim.state.workers.keys().cloned().collect();
        let drain = |sim: &mut Sim, drained: BTreeSet<WorkerId>| -> bool {
            let dp = plan_drain(&sim.state, &live, &drained);
            dp.feasible
                && sim
                    .run(Command::StartDrain {
                        workers: drained.into_iter().collect(),
                        moves: dp.moves,
                        reason: None,
                        deadline_ms: None,
                        on_deadline: Default::default(),
                    })
                    .is_ok()
        };
        match &c.change {
            Change::Join {
                zone,
                capacity,
                new_zone,
            } => {
                let zone = if *new_zone {
                    (*zone).min(c.zones.len())
                } else {
                    zone % c.zones.len()
                };
                let i = c.zones.get(zone).map_or(0, Vec::len);
                sim.add_worker(&small_worker(zone, i), Some(&format!("z{zone}")), *capacity);
            }
            Change::DrainWorker(i) => {
                let w = workers[i % workers.len()].clone();
                prop_assume!(drain(&mut sim, BTreeSet::from([w])));
            }
            Change::DrainZone(z) => {
                let z = z % c.zones.len();
                let set = (0..c.zones[z].len())
                    .map(|i| WorkerId::from(small_worker(z, i).as_str()))
                    .collect();
                prop_assume!(drain(&mut sim, set));
            }
            Change::Capacity { worker, capacity } => {
                let w = &sim.state.workers[&workers[worker % workers.len()]];
                let reg = drover_types::Registration {
                    worker: w.id.clone(),
                    incarnation: w.incarnation + 1,
                    address: w.address.clone(),
                    zone: w.zone.clone(),
                    capacity: *capacity,
                    labels: w.labels.clone(),
                };
                sim.run(Command::Register(reg)).unwrap();
            }
            Change::Nothing => {
                sim.now_ms += 3_600_000;
            }
        }
        // After the change: the drained workers are no candidates, the new one is.
        let after_state = {
            let mut st = sim.state.clone();
            for w in st.workers.values_mut() {
                if w.state == WorkerState::Draining {
                    w.state = WorkerState::Disabled;
                }
            }
            st
        };
        let (cands, old) = problem_of(&after_state);
        let after = reference::Problem {
            candidates: &cands,
            old: &old,
            rf,
        };
        prop_assume!(after.covered());
        let Some(fewest) = after.min_moves() else {
            return Err(TestCaseError::reject("no placement meets the rules"));
        };
        let cfg = if c.throttled {
            PlannerConfig::default()
        } else {
            unthrottled()
        };
        let (moves, rounds) = count_adds(
            &mut sim,
            &live,
            &cfg,
            piecemeal_acks(c.ack_seed, c.ack_one_in),
        );
        prop_assert!(rounds < 400, "did not settle after {:?}", c.change);
        let (_, placed) = problem_of(&sim.state);
        prop_assert_eq!(after.check(&placed), Ok(()), "after {:?}", c.change);
        prop_assert_eq!(
            moves as i64,
            fewest,
            "{:?} made {} moves; the rules allow {}",
            c.change,
            moves,
            fewest
        );
        if matches!(c.change, Change::Nothing) {
            // However many rounds run, and however much time passes, nothing moves.
            for _ in 0..20 {
                sim.now_ms += 600_000;
                let l = Liveness {
                    now_ms: sim.now_ms,
                    ..live.clone()
                };
                let p = drover_scheduler::plan(&sim.state, &l, &cfg);
                prop_assert!(
                    p.steps.is_empty(),
                    "a settled placement planned {:?}",
                    p.steps
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// A control-plane failover with a settled fleet changes nothing: while the new leader has
    /// not heard from some workers yet (they are suspect only because unheard), and as it hears
    /// them one by one in any order, no round re-picks a preferred leader or starts a move.
    /// The planner used to take unheard workers for suspect ones and move the preferred
    /// leadership of their partitions to whoever had heartbeat first.
    #[test]
    fn failover_with_a_settled_fleet_changes_nothing(
        c in small(),
        unheard in prop::collection::vec(prop::bool::weighted(0.5), 12),
        order in prop::collection::vec(0usize..12, 12),
    ) {
        let mut sim = Sim::new();
        for (z, caps) in c.zones.iter().enumerate() {
            for (i, cap) in caps.iter().enumerate() {
                sim.add_worker(&small_worker(z, i), Some(&format!("z{z}")), *cap);
            }
        }
        sim.run(Command::CreateTable { count: c.partitions, replication_factor: c.rf }).unwrap();
        let heard = Liveness::default();
        let (settled, rounds) = sim.settle(&heard, &PlannerConfig::default(), 200, |_, _| {});
        prop_assert!(rounds < 200);
        prop_assume!(settled.steps.is_empty());
        let workers: Vec<WorkerId> = sim.state.workers.keys().cloned().collect();
        let mut pending: Vec<WorkerId> = workers
            .iter()
            .zip(&unheard)
            .filter(|(_, u)| **u)
            .map(|(w, _)| w.clone())
            .collect();
        loop {
            let set: BTreeSet<WorkerId> = pending.iter().cloned().collect();
            let live = Liveness { suspect: set.clone(), unheard: set, now_ms: sim.now_ms };
            let p = drover_scheduler::plan(&sim.state, &live, &PlannerConfig::default());
            prop_assert!(
                p.steps.is_empty(),
                "with {:?} not heard yet the round planned {:?}",
                pending,
                p.steps
            );
            if pending.is_empty() {
                break;
            }
            let next = order[pending.len() - 1] % pending.len();
            pending.remove(next);
        }
    }
}

/// The fewest moves found by trying every placement: each partition on every RF-subset of the
/// candidates, kept when the reference's rules accept it.
fn brute_force_min_moves(pr: &reference::Problem<'_>) -> Option<i64> {
    let n = pr.candidates.len();
    let subsets: Vec<BTreeSet<WorkerId>> = (0u32..1 << n)
        .filter(|m| m.count_ones() as usize == pr.rf)
        .map(|m| {
            (0..n)
                .filter(|i| m >> i & 1 == 1)
                .map(|i| pr.candidates[i].0.clone())
                .collect()
        })
        .collect();
    if subsets.is_empty() {
        return None;
    }
    let mut best: Option<i64> = None;
    let mut choice = vec![0usize; pr.old.len()];
    loop {
        let placement: Vec<BTreeSet<WorkerId>> =
            choice.iter().map(|&c| subsets[c].clone()).collect();
        if pr.check(&placement).is_ok() {
            let moves: i64 = placement
                .iter()
                .zip(pr.old)
                .map(|(new, old)| new.difference(old).count() as i64)
                .sum();
            best = Some(best.map_or(moves, |b| b.min(moves)));
        }
        let mut i = 0;
        loop {
            if i == choice.len() {
                return best;
            }
            choice[i] += 1;
            if choice[i] < subsets.len() {
                break;
            }
            choice[i] = 0;
            i += 1;
        }
    }
}

proptest! {
    #![proptest_config(small_config())]

    /// The min-cost-flow reference finds the same minimum as trying every placement, on
    /// clusters small enough to try them all (2–5 workers in 1–3 zones, capacities 1–2, 1–4
    /// partitions at RF 1–3, any prior placement, workers that left included).
    #[test]
    fn the_reference_agrees_with_brute_force(
        workers in prop::collection::vec((0usize..3, 1u32..=2), 2..=5),
        rf in 1usize..=3,
        prior in prop::collection::vec(prop::collection::btree_set(0usize..6, 0..=3), 1..=4),
    ) {
        let candidates: Vec<(WorkerId, String, u32)> = workers
            .iter()
            .enumerate()
            .map(|(i, (z, c))| (WorkerId::from(format!("w{i}").as_str()), format!("z{z}"), *c))
            .collect();
        prop_assume!(rf <= candidates.len());
        // Index 5 is a worker that left: its replicas count as held by no candidate.
        let old: Vec<BTreeSet<WorkerId>> = prior
            .iter()
            .map(|held| {
                held.iter()
                    .map(|&i| WorkerId::from(format!("w{i}").as_str()))
                    .collect()
            })
            .collect();
        let pr = reference::Problem { candidates: &candidates, old: &old, rf };
        prop_assume!(pr.covered());
        prop_assert_eq!(pr.min_moves(), brute_force_min_moves(&pr));
    }
}

/// Places partition `p` on `workers`, each acknowledged (a settled, hand-made placement).
fn place_by_hand(sim: &mut Sim, p: u32, workers: &[&str]) {
    for w in workers {
        let worker = WorkerId::from(*w);
        let epoch = sim.state.partitions[p as usize].epoch;
        sim.run(Command::AddReplica {
            partition: p,
            worker: worker.clone(),
            expected_epoch: epoch,
            replaces: None,
        })
        .unwrap();
        let epoch = sim.state.partitions[p as usize].epoch;
        let generation = sim.state.workers[&worker].generation;
        sim.run(Command::Acknowledge {
            partition: p,
            worker,
            generation,
            epoch,
        })
        .unwrap();
    }
}

fn start_drain(sim: &mut Sim, workers: &[&str]) -> Vec<drover_types::PlannedMove> {
    let set: BTreeSet<WorkerId> = workers.iter().map(|w| WorkerId::from(*w)).collect();
    let dp = plan_drain(&sim.state, &Liveness::default(), &set);
    sim.run(Command::StartDrain {
        workers: set.into_iter().collect(),
        moves: dp.moves.clone(),
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    })
    .unwrap();
    dp.moves
}

/// A drain's committed move is kept while its target is usable, whatever else happens: a
/// worker elsewhere turning suspect (so the round plans greedily) used to get the move judged
/// by rule 2 alone and replanned — the drain then did something its dry run had not shown.
#[test]
fn a_suspect_worker_elsewhere_does_not_replan_a_committed_drain() {
    let mut sim = Sim::new();
    for z in ["a", "b"] {
        for i in 1..=4 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 1,
        replication_factor: 3,
    })
    .unwrap();
    place_by_hand(&mut sim, 0, &["a1", "a2", "b1"]);
    start_drain(&mut sim, &["a1", "b1"]);
    let live = Liveness {
        suspect: BTreeSet::from([WorkerId::from("b4")]),
        now_ms: sim.now_ms,
        ..Liveness::default()
    };
    let round = drover_scheduler::plan(&sim.state, &live, &PlannerConfig::default());
    let replans: Vec<&Step> = round
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Plan { .. }))
        .collect();
    assert!(replans.is_empty(), "replanned: {replans:?}");
}

/// A restore does not take the worker a committed drain move is going to: it used to (the
/// target's first new worker by id), and the drain then replanned its move elsewhere.
#[test]
fn a_restore_does_not_take_a_drains_committed_target() {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 1..=3 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 1,
        replication_factor: 3,
    })
    .unwrap();
    place_by_hand(&mut sim, 0, &["a1", "b1", "c1"]);
    let planned = start_drain(&mut sim, &["a1"]);
    let c1 = WorkerId::from("c1");
    let generation = sim.state.workers[&c1].generation;
    sim.run(Command::MarkDead {
        worker: c1,
        generation,
        term: sim.term,
    })
    .unwrap();
    let mut replans = Vec::new();
    let (_, rounds) = sim.settle(
        &Liveness::default(),
        &PlannerConfig::default(),
        30,
        |_, p| {
            replans.extend(
                p.steps
                    .iter()
                    .filter(|s| matches!(s, Step::Plan { .. }))
                    .cloned(),
            );
        },
    );
    assert!(rounds < 30);
    assert!(
        replans.is_empty(),
        "planned {planned:?}, replanned {replans:?}"
    );
    let to = planned[0].to.clone().unwrap();
    assert!(sim.state.partitions[0].replica(&to).is_some());
}

/// With more ways to choose the zones that take ⌈R/Z⌉ than the flow used to try (7 zones, 35
/// ways), a drain's replica went where a later round then moved it again (3 moves where 2 do):
/// no move is undone, and the drain makes exactly its dry run's moves.
#[test]
fn a_drain_across_seven_zones_moves_nothing_twice() {
    let mut sim = Sim::new();
    for z in ["a", "b", "c", "d", "e", "f", "g"] {
        for i in 1..=2 {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 6,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let (_, rounds) = sim.settle(&live, &unthrottled(), 300, |_, _| {});
    assert!(rounds < 300);
    let planned = start_drain(&mut sim, &["a1"]);
    let one_at_a_time = PlannerConfig {
        max_moves_per_worker: 1,
        max_moves_total: 1,
        ..PlannerConfig::default()
    };
    let mut adds = 0;
    let mut added: BTreeSet<(u32, WorkerId)> = BTreeSet::new();
    let mut undone = Vec::new();
    let (_, rounds) = sim.settle(&live, &one_at_a_time, 300, |_, p| {
        for s in &p.steps {
            match s {
                Step::Add {
                    partition, worker, ..
                } => {
                    adds += 1;
                    added.insert((*partition, worker.clone()));
                }
                Step::Release {
                    partition, worker, ..
                } if added.contains(&(*partition, worker.clone())) => {
                    undone.push((*partition, worker.clone()));
                }
                _ => {}
            }
        }
    });
    assert!(rounds < 300);
    assert!(undone.is_empty(), "moves undone: {undone:?}");
    assert_eq!(adds, planned.len(), "planned {planned:?}");
}
