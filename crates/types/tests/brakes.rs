//! SPEC §1 maintenance and §3's mass-failure brake, as `apply` enforces them: the disruption
//! budget refuses a maintenance naming the partitions it would leave short, the scheduler ends
//! a maintenance only once it expired or the worker came back, a tripped brake holds every
//! death, and bad input is refused with the right code and changes nothing.

use drover_types::testing::Harness;
use drover_types::{
    Actor, Command, EventKind, MAX_MAINTENANCE_MS, RejectCode, SettingsPatch, WorkerId, codec,
};

/// Three active workers in zones a, b, c, and `partitions` partitions of RF 3, every replica
/// serving on all three.
fn three_serving(partitions: u32) -> Harness {
    let mut h = Harness::new();
    for (w, z) in [("w1", "a"), ("w2", "b"), ("w3", "c")] {
        h.add_worker(w, Some(z), 100);
    }
    h.ok(Command::CreateTable {
        count: partitions,
        replication_factor: 3,
    });
    for p in 0..partitions {
        for w in ["w1", "w2", "w3"] {
            h.add_replica(p, w, None);
            let epoch = h.state.partitions[p as usize].epoch;
            let generation = h.worker(w).generation;
            h.ok(Command::Acknowledge {
                partition: p,
                worker: w.into(),
                generation,
                epoch,
            });
        }
    }
    h
}

fn maintenance(h: &Harness, worker: &str, reason: &str, for_ms: u64) -> Command {
    Command::EnterMaintenance {
        worker: worker.into(),
        reason: reason.into(),
        until_ms: h.now_ms + for_ms,
        by: Actor::Operator,
        generation: None,
    }
}

/// A rejection of `command` with `code` that leaves the state byte for byte as it was.
fn refused(h: &mut Harness, command: Command, code: RejectCode) -> drover_types::Rejection {
    let before = codec::encode(&h.state).unwrap();
    let c = format!("{command:?}");
    let err = h.run(command).expect_err(&c);
    assert_eq!(err.code, code, "{c}: {err}");
    assert_eq!(
        codec::encode(&h.state).unwrap(),
        before,
        "{c} changed state"
    );
    err
}

/// With RF 3 and the default budget (a majority, 2), one worker may go into maintenance; a
/// second is refused `budget_exceeded`, naming every partition it would leave with one
/// serving replica. With `min_available = 1` the second may go too.
#[test]
fn the_disruption_budget_refuses_a_maintenance_naming_the_partitions() {
    let mut h = three_serving(2);
    h.ok(maintenance(&h, "w1", "kernel upgrade", 600_000));
    assert!(h.worker("w1").in_maintenance());
    assert!(!h.worker("w1").takes_new_replicas());
    let second = maintenance(&h, "w2", "kernel upgrade", 600_000);
    let err = refused(&mut h, second, RejectCode::BudgetExceeded);
    assert_eq!(err.partitions, vec![0, 1], "{err}");
    assert!(err.message.contains("majority"), "{err}");

    h.ok(Command::UpdateSettings {
        patch: SettingsPatch {
            min_available: Some(1),
            ..Default::default()
        },
        expected_version: None,
    });
    h.ok(maintenance(&h, "w2", "kernel upgrade", 600_000));
    // The last one would leave nothing serving anywhere.
    let last = maintenance(&h, "w3", "kernel upgrade", 600_000);
    let err = refused(&mut h, last, RejectCode::BudgetExceeded);
    assert_eq!(err.partitions, vec![0, 1]);
}

/// Bad maintenance requests change nothing: no reason, an `until` in the past or past 24 h, an
/// unknown worker, an agent without (or with an old) generation, the scheduler starting one.
#[test]
fn bad_maintenance_requests_are_refused_and_change_nothing() {
    let mut h = three_serving(1);
    let at = h.now_ms;
    let bad = |worker: &str, reason: &str, until_ms: u64, by: Actor, generation| {
        Command::EnterMaintenance {
            worker: worker.into(),
            reason: reason.into(),
            until_ms,
            by,
            generation,
        }
    };
    use RejectCode::*;
    for (command, code) in [
        (bad("w1", "", at + 60_000, Actor::Operator, None), Invalid),
        (bad("w1", "r", at - 1, Actor::Operator, None), Invalid),
        (
            bad(
                "w1",
                "r",
                at + MAX_MAINTENANCE_MS + 60_000,
                Actor::Operator,
                None,
            ),
            Invalid,
        ),
        (
            bad("nope", "r", at + 60_000, Actor::Operator, None),
            NotFound,
        ),
        (bad("w1", "r", at + 60_000, Actor::Agent, None), Invalid),
        (
            bad("w1", "r", at + 60_000, Actor::Agent, Some(0)),
            StaleGeneration,
        ),
        (bad("w1", "r", at + 60_000, Actor::Scheduler, None), Invalid),
    ] {
        refused(&mut h, command, code);
    }
    // The agent with its generation may.
    let g = h.worker("w1").generation;
    h.ok(bad(
        "w1",
        "restart",
        h.now_ms + 60_000,
        Actor::Agent,
        Some(g),
    ));
    assert_eq!(
        h.worker("w1").maintenance.as_ref().unwrap().actor,
        "worker:w1"
    );
}

/// The scheduler ends a maintenance at the version it saw, only once `until` passed
/// (`expired`) or a newer generation registered (`returned`); an operator lifts it at any time.
#[test]
fn the_scheduler_ends_a_maintenance_only_when_it_expired_or_the_worker_returned() {
    let mut h = three_serving(1);
    h.ok(maintenance(&h, "w1", "restart", 1_000));
    let version = h.worker("w1").maintenance.as_ref().unwrap().version;
    let end = |version| Command::EndMaintenance {
        worker: "w1".into(),
        by: Actor::Scheduler,
        generation: None,
        version: Some(version),
    };
    refused(&mut h, end(version), RejectCode::Invalid);
    refused(&mut h, end(version + 1), RejectCode::VersionConflict);
    // The process restarts: a new incarnation registers, the maintenance stays.
    h.register("w1", 2, "a");
    assert!(h.worker("w1").in_maintenance(), "a restart keeps it");
    h.ok(end(version));
    assert!(!h.worker("w1").in_maintenance());
    assert!(matches!(
        h.state.events.events.back().unwrap().kind,
        EventKind::MaintenanceEnded { ref cause, .. } if cause == "returned"
    ));
    refused(&mut h, end(version), RejectCode::NotFound);

    h.ok(maintenance(&h, "w1", "restart", 1_000));
    let version = h.worker("w1").maintenance.as_ref().unwrap().version;
    h.tick_ms = 2_000;
    h.ok(end(version));
    h.tick_ms = 10;
    assert!(matches!(
        h.state.events.events.back().unwrap().kind,
        EventKind::MaintenanceEnded { ref cause, .. } if cause == "expired"
    ));

    h.ok(maintenance(&h, "w1", "restart", 600_000));
    h.ok(Command::EndMaintenance {
        worker: "w1".into(),
        by: Actor::Operator,
        generation: None,
        version: None,
    });
    assert!(!h.worker("w1").in_maintenance());
}

/// While the brake is tripped no death is committed — not even a verdict decided before it
/// tripped; only the scheduler (at the trip's version) or an operator releases it, and an
/// agent never does.
#[test]
fn a_tripped_brake_holds_every_death_until_released() {
    let mut h = three_serving(1);
    let held: Vec<WorkerId> = vec!["w1".into(), "w2".into()];
    h.ok(Command::TripBrake {
        workers: held.clone(),
        reason: "zone a and b silent".into(),
    });
    let b = h.state.brakes.mass_failure.clone().unwrap();
    assert_eq!(b.workers, held);
    let dead = |h: &Harness, w: &str| Command::MarkDead {
        worker: w.into(),
        generation: h.worker(w).generation,
        term: h.term,
    };
    for w in ["w1", "w3"] {
        let verdict = dead(&h, w);
        refused(&mut h, verdict, RejectCode::BrakeTripped);
    }
    let release = |by, version| Command::ReleaseBrake {
        by,
        version,
        reason: None,
        until_ms: None,
    };
    refused(&mut h, release(Actor::Agent, None), RejectCode::Invalid);
    refused(
        &mut h,
        release(Actor::Scheduler, Some(b.version + 1)),
        RejectCode::VersionConflict,
    );
    refused(
        &mut h,
        Command::TripBrake {
            workers: vec![],
            reason: "x".into(),
        },
        RejectCode::Invalid,
    );
    h.ok(release(Actor::Scheduler, Some(b.version)));
    assert!(h.state.brakes.mass_failure.is_none());
    h.ok(dead(&h, "w1"));
    assert!(h.worker("w1").dead);

    // An operator's release with `until` holds the brake off, on the record.
    let until = h.now_ms + 30_000;
    h.ok(Command::ReleaseBrake {
        by: Actor::Operator,
        version: None,
        reason: Some("zone a is being rebuilt".into()),
        until_ms: Some(until),
    });
    let r = h.state.brakes.released.clone().unwrap();
    assert_eq!((r.actor.as_str(), r.until_ms), ("admin", Some(until)));
}

/// A preferred-leader change wakes the assignments long poll of every holder of the partition
/// (their `leader` flags changed): a worker about to restart waits for exactly that.
#[test]
fn a_leader_change_wakes_every_holders_assignments() {
    let mut h = three_serving(1);
    let others = |h: &Harness| ["w1", "w2", "w3"].map(|w| h.worker(w).assignments_version);
    let before = others(&h);
    let to = if h.state.partitions[0]
        .leader
        .as_ref()
        .is_some_and(|l| l.as_str() == "w2")
    {
        "w3"
    } else {
        "w2"
    };
    h.ok(Command::SetLeader {
        partition: 0,
        leader: to.into(),
        expected_epoch: h.state.partitions[0].epoch,
    });
    let after = others(&h);
    for i in 0..3 {
        assert!(
            after[i] > before[i],
            "holder {i} not woken: {before:?} -> {after:?}"
        );
    }
}

/// A plan computed before a cordon or a maintenance committed must not land after it: `apply`
/// refuses a new replica (or a drain move) on either, whatever the planner believed, and
/// changes nothing.
#[test]
fn nothing_new_lands_on_a_cordoned_worker_or_one_in_maintenance() {
    let mut h = three_serving(1);
    h.add_worker("w4", Some("a"), 100);
    h.add_worker("w5", Some("b"), 100);
    h.ok(Command::Cordon {
        worker: "w4".into(),
        holder: "ops".into(),
        reason: "disk alarm".into(),
        until_ms: None,
    });
    let c = maintenance(&h, "w5", "kernel upgrade", 60_000);
    h.ok(c);
    for w in ["w4", "w5"] {
        let epoch = h.state.partitions[0].epoch;
        let add = Command::AddReplica {
            partition: 0,
            worker: w.into(),
            expected_epoch: epoch,
            replaces: Some("w1".into()),
        };
        let err = refused(&mut h, add, RejectCode::Unplaceable);
        let why = if w == "w4" {
            "cordoned"
        } else {
            "in maintenance"
        };
        assert!(err.message.contains(why), "{err}");
    }
    // Lifted, the same placement lands.
    h.ok(Command::Uncordon {
        worker: "w4".into(),
        holder: "ops".into(),
    });
    h.add_replica(0, "w4", Some("w1"));
}
