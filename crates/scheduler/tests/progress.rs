//! Drain progress as `workers show` reports it: waiting moves aggregated per thing they wait
//! for, and the move rate with its ETA from the replicated events and a clock passed in.

use std::collections::BTreeSet;

use drover_scheduler::sim::Sim;
use drover_scheduler::{
    BlockCode, Blocked, Liveness, PlannerConfig, WaitOn, drain_rate, plan, plan_drain, waits,
};
use drover_types::{Command, WorkerId};

/// Three zones of `per_zone` workers, 30 partitions at RF 3, settled; then a0 drains. Rule 2
/// sends its replicas to the other workers of zone a.
fn draining_a0(per_zone: usize) -> (Sim, WorkerId, Vec<drover_types::PlannedMove>) {
    let mut sim = Sim::new();
    for z in ["a", "b", "c"] {
        for i in 0..per_zone {
            sim.add_worker(&format!("{z}{i}"), Some(z), 1);
        }
    }
    sim.run(Command::CreateTable {
        count: 30,
        replication_factor: 3,
    })
    .unwrap();
    let live = Liveness::default();
    let (_, rounds) = sim.settle(&live, &PlannerConfig::default(), 50, |_, _| {});
    assert!(rounds < 50);
    let a0 = WorkerId::from("a0");
    let dp = plan_drain(&sim.state, &live, &BTreeSet::from([a0.clone()]));
    assert!(dp.feasible);
    assert!(
        dp.moves
            .iter()
            .all(|m| m.to.as_ref().is_some_and(|t| t.as_str().starts_with('a')))
    );
    sim.run(Command::StartDrain {
        workers: vec![a0.clone()],
        moves: dp.moves.clone(),
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    })
    .unwrap();
    (sim, a0, dp.moves)
}

/// What drain progress lists for `w`: the round's blocked entries of its replicas' partitions.
fn blocked_of(sim: &Sim, plan: &drover_scheduler::Plan, w: &WorkerId) -> Vec<Blocked> {
    let mine: BTreeSet<u32> = sim.state.replicas_on(w).map(|p| p.id).collect();
    plan.blocked
        .iter()
        .filter(|b| b.worker.as_ref() == Some(w) || mine.contains(&b.partition))
        .cloned()
        .collect()
}

/// The regression: `workers show` of a drain at its move limit printed one `throttled:
/// planned target a1 is suspect or busy` line per partition. The waits are one per thing
/// waited for: 11 moves for a slot on a1 with its 4 of 4 in flight, the 4 joining replicas on
/// a1 apart (awaiting its acknowledgements).
#[test]
fn throttled_moves_are_reported_once_per_slot_they_wait_for() {
    let (mut sim, a0, moves) = draining_a0(2);
    let held = moves.len();
    assert_eq!(held, 15);
    let a1 = WorkerId::from("a1");
    let cfg = PlannerConfig::default();
    let live = Liveness {
        now_ms: sim.now_ms,
        ..Liveness::default()
    };
    // The round that starts the drain: 4 moves, the other 11 throttled on a1.
    let round = plan(&sim.state, &live, &cfg);
    let blocked = blocked_of(&sim, &round, &a0);
    assert_eq!(blocked.len(), held - 4, "{blocked:#?}");
    let w = waits(&sim.state, &live, &cfg, &round, &blocked);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0].code, BlockCode::Throttled);
    assert_eq!(w[0].on, WaitOn::WorkerSlot);
    assert_eq!(w[0].worker.as_ref(), Some(&a1));
    assert_eq!(
        (w[0].moves, w[0].in_flight, w[0].limit),
        (11, Some(4), Some(4))
    );
    assert_eq!(w[0].partitions.len(), 11);
    assert_eq!(
        w[0].detail,
        "11 moves wait for a slot on a1 (4 of max_moves_per_worker 4 in flight)"
    );

    // Committed, not acknowledged: the next round waits on a1's slot and its acks.
    sim.commit(&round);
    let live = Liveness {
        now_ms: sim.now_ms,
        ..Liveness::default()
    };
    let round = plan(&sim.state, &live, &cfg);
    let blocked = blocked_of(&sim, &round, &a0);
    let w = waits(&sim.state, &live, &cfg, &round, &blocked);
    let summary: Vec<_> = w
        .iter()
        .map(|w| (w.code, w.on, w.worker.clone(), w.moves, w.in_flight))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                BlockCode::Throttled,
                WaitOn::WorkerSlot,
                Some(a1.clone()),
                11,
                Some(4)
            ),
            (
                BlockCode::AwaitingAck,
                WaitOn::JoinAck,
                Some(a1.clone()),
                4,
                None
            ),
        ],
        "{w:#?}"
    );
}

/// A suspect planned target is waited for, not replaced: the moves planned onto it are
/// reported apart from those waiting for a slot, as waiting for it.
#[test]
fn moves_onto_a_suspect_target_are_told_from_throttled_ones() {
    let (sim, a0, moves) = draining_a0(3);
    let a1 = WorkerId::from("a1");
    let onto_a1: Vec<u32> = moves
        .iter()
        .filter(|m| m.to.as_ref() == Some(&a1))
        .map(|m| m.partition)
        .collect();
    assert!(!onto_a1.is_empty());
    let cfg = PlannerConfig::default();
    let live = Liveness {
        suspect: BTreeSet::from([a1.clone()]),
        now_ms: sim.now_ms,
        ..Liveness::default()
    };
    let round = plan(&sim.state, &live, &cfg);
    let blocked = blocked_of(&sim, &round, &a0);
    let w = waits(&sim.state, &live, &cfg, &round, &blocked);
    let suspect: Vec<_> = w.iter().filter(|w| w.on == WaitOn::SuspectTarget).collect();
    assert_eq!(suspect.len(), 1, "{w:#?}");
    assert_eq!(suspect[0].code, BlockCode::AwaitingAck);
    assert_eq!(suspect[0].worker.as_ref(), Some(&a1));
    assert_eq!(suspect[0].partitions, onto_a1);
    assert!(
        suspect[0]
            .detail
            .contains("planned target a1, which is suspect"),
        "{}",
        suspect[0].detail
    );
    assert!(
        w.iter()
            .filter(|w| w.code == BlockCode::Throttled)
            .all(|w| w.worker.as_ref() != Some(&a1)),
        "{w:#?}"
    );
}

/// The rate is the drain's completed moves (its worker's replicas released) per minute over
/// the window, by the clock passed in; the ETA is what is left at that rate, and unknown
/// before the first move completes.
#[test]
fn move_rate_and_eta_come_from_the_drains_completed_moves() {
    let (mut sim, a0, moves) = draining_a0(2);
    let held = moves.len();
    let started = sim.now_ms;
    let window = 10 * 60_000;
    let r = drain_rate(&sim.state, &a0, started + 1_000, window).unwrap();
    assert_eq!((r.moves_completed, r.eta_ms), (0, None), "{r:?}");
    assert_eq!(r.remaining as usize, held);
    assert_eq!(
        drain_rate(&sim.state, &WorkerId::from("b0"), started, window),
        None
    );

    // Rounds 10 s apart, every agent acknowledging at once.
    let cfg = PlannerConfig::default();
    let mut last_round = (0, 0); // (start of the round, replicas a0 released in it)
    while sim.state.replicas_on(&a0).count() > held / 2 {
        sim.now_ms += 10_000;
        let before = sim.state.replicas_on(&a0).count();
        let at = sim.now_ms;
        let live = Liveness {
            now_ms: at,
            ..Liveness::default()
        };
        let round = plan(&sim.state, &live, &cfg);
        sim.commit(&round);
        sim.ack_all();
        last_round = (at, before - sim.state.replicas_on(&a0).count());
    }
    let remaining = sim.state.replicas_on(&a0).count() as u64;
    let done = held as u64 - remaining;
    assert!(done > 0);

    // Over the whole drain.
    let now = sim.now_ms + 5_000;
    let r = drain_rate(&sim.state, &a0, now, window).unwrap();
    let span = now - (started);
    assert_eq!(r.window_ms, span);
    assert_eq!(r.moves_completed as u64, done);
    assert_eq!(r.remaining as u64, remaining);
    assert!((r.moves_per_minute - done as f64 * 60_000.0 / span as f64).abs() < 1e-9);
    assert_eq!(r.eta_ms, Some(remaining * span / done));

    // Over a window that holds only the last round.
    let (at, released) = last_round;
    let window = now - (at - 1_000);
    let r = drain_rate(&sim.state, &a0, now, window).unwrap();
    assert_eq!(r.moves_completed as usize, released, "{r:?}");
    assert_eq!(r.window_ms, window);
    assert_eq!(r.eta_ms, Some(remaining * window / released as u64));
}
