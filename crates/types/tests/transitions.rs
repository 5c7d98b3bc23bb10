//! Table-driven tests of SPEC §1: every (from, to) pair of the four states for each actor, with
//! and without force, and the registration, removal and death rules around them.

use WorkerState::{Active as A, Disabled as D, Draining as Dr, Provisioning as P};
use drover_types::testing::{Harness, register_cmd};
use drover_types::{
    Actor, Command, EventKind, LogPosition, Proposal, RejectCode, ReplicaRole, Response, WorkerId,
    WorkerState, apply_proposal,
};

/// Expected answer: accepted with a change, accepted unchanged, or rejected with a code.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Want {
    Changed,
    Same,
    No(RejectCode),
}
use Want::*;
const ILLEGAL: Want = No(RejectCode::IllegalTransition);

/// A worker named `w` in `state`, holding no replica.
fn worker_in(state: WorkerState) -> Harness {
    let mut h = Harness::new();
    h.register("w", 1, "z1");
    match state {
        P => {}
        A => {
            h.set_state("w", A, Actor::Operator, false).unwrap();
        }
        Dr => {
            h.set_state("w", A, Actor::Operator, false).unwrap();
            h.set_state("w", Dr, Actor::Operator, false).unwrap();
        }
        D => {
            h.set_state("w", D, Actor::Operator, false).unwrap();
        }
    }
    assert_eq!(h.worker("w").state, state);
    h
}

/// Proves the §1 transition table, including its "who" column: every pair of states, asked by
/// the operator (with and without force), the agent and the scheduler.
#[test]
fn every_state_pair_for_every_actor() {
    use Actor::{Agent as Ag, Operator as Op, Scheduler as Sc};
    #[rustfmt::skip]
    let table: &[(WorkerState, WorkerState, Actor, bool, Want)] = &[
        // operator, no force
        (P, P, Op, false, Same), (P, A, Op, false, Changed), (P, Dr, Op, false, ILLEGAL), (P, D, Op, false, Changed),
        (A, P, Op, false, ILLEGAL), (A, A, Op, false, Same), (A, Dr, Op, false, Changed), (A, D, Op, false, ILLEGAL),
        (Dr, P, Op, false, ILLEGAL), (Dr, A, Op, false, Changed), (Dr, Dr, Op, false, Same), (Dr, D, Op, false, ILLEGAL),
        (D, P, Op, false, ILLEGAL), (D, A, Op, false, ILLEGAL), (D, Dr, Op, false, ILLEGAL), (D, D, Op, false, Same),
        // operator, force
        (P, P, Op, true, Same), (P, A, Op, true, Changed), (P, Dr, Op, true, ILLEGAL), (P, D, Op, true, Changed),
        (A, P, Op, true, ILLEGAL), (A, A, Op, true, Same), (A, Dr, Op, true, Changed), (A, D, Op, true, Changed),
        (Dr, P, Op, true, ILLEGAL), (Dr, A, Op, true, Changed), (Dr, Dr, Op, true, Same), (Dr, D, Op, true, Changed),
        (D, P, Op, true, ILLEGAL), (D, A, Op, true, ILLEGAL), (D, Dr, Op, true, ILLEGAL), (D, D, Op, true, Same),
        // agent (with its current generation)
        (P, P, Ag, false, Same), (P, A, Ag, false, Changed), (P, Dr, Ag, false, ILLEGAL), (P, D, Ag, false, ILLEGAL),
        (A, P, Ag, false, ILLEGAL), (A, A, Ag, false, Same), (A, Dr, Ag, false, Changed), (A, D, Ag, true, ILLEGAL),
        (Dr, P, Ag, false, ILLEGAL), (Dr, A, Ag, false, ILLEGAL), (Dr, Dr, Ag, false, Same), (Dr, D, Ag, false, ILLEGAL),
        (D, P, Ag, false, ILLEGAL), (D, A, Ag, false, ILLEGAL), (D, Dr, Ag, false, ILLEGAL), (D, D, Ag, false, Same),
        // scheduler: only Draining → Disabled, once the worker holds nothing
        (P, P, Sc, false, Same), (P, A, Sc, false, ILLEGAL), (P, Dr, Sc, false, ILLEGAL), (P, D, Sc, false, ILLEGAL),
        (A, P, Sc, false, ILLEGAL), (A, A, Sc, false, Same), (A, Dr, Sc, false, ILLEGAL), (A, D, Sc, false, ILLEGAL),
        (Dr, P, Sc, false, ILLEGAL), (Dr, A, Sc, false, ILLEGAL), (Dr, Dr, Sc, false, Same), (Dr, D, Sc, false, Changed),
        (D, P, Sc, false, ILLEGAL), (D, A, Sc, false, ILLEGAL), (D, Dr, Sc, false, ILLEGAL), (D, D, Sc, false, Same),
    ];
    assert_eq!(table.len(), 64);
    for &(from, to, by, force, want) in table {
        let mut h = worker_in(from);
        let before = h.state.clone();
        let got = match h.set_state("w", to, by, force) {
            Ok(o) if o.changed => Changed,
            Ok(_) => Same,
            Err(e) => No(e.code),
        };
        assert_eq!(got, want, "{from} → {to} by {by:?} force={force}");
        match got {
            Changed => assert_eq!(h.worker("w").state, to),
            _ => assert_eq!(
                h.state, before,
                "{from} → {to}: refusal or repeat changed state"
            ),
        }
    }
}

/// A same-state request succeeds whatever its expected_version; any other change with a stale
/// expected_version is a version conflict carrying the current version.
#[test]
fn expected_version_is_compare_and_set() {
    let mut h = worker_in(A);
    let v = h.worker("w").version;
    let cmd = |to, ev| Command::SetState {
        worker: "w".into(),
        to,
        by: Actor::Operator,
        generation: None,
        expected_version: Some(ev),
        force: false,
        reason: None,
    };
    assert!(!h.run(cmd(A, v + 100)).unwrap().changed);
    let e = h.run(cmd(Dr, v - 1)).unwrap_err();
    assert_eq!(e.code, RejectCode::VersionConflict);
    assert_eq!(e.current_version, Some(v));
    assert!(h.run(cmd(Dr, v)).unwrap().changed);
}

/// Registration: same incarnation is idempotent; a new incarnation is a restart (generation + 1,
/// state and replicas kept); the same incarnation with other attributes is refused.
#[test]
fn registration_and_restart() {
    let mut h = Harness::new();
    let first = h.register("w", 7, "z1");
    assert!(first.changed);
    assert_eq!(h.worker("w").generation, 1);
    assert_eq!(h.worker("w").state, P);

    let again = h.run(register_cmd("w", 7, "z1")).unwrap();
    assert!(!again.changed);
    assert_eq!(h.worker("w").generation, 1);

    let moved = h.run(register_cmd("w", 7, "z2")).unwrap_err();
    assert_eq!(moved.code, RejectCode::IncarnationConflict);

    h.set_state("w", A, Actor::Agent, false).unwrap();
    h.ok(Command::CreateTable {
        count: 2,
        replication_factor: 1,
    });
    h.ok(Command::AddReplica {
        partition: 0,
        worker: "w".into(),
        expected_epoch: 0,
        replaces: None,
    });
    let restarted = h.register("w", 8, "z1");
    assert!(restarted.changed);
    assert_eq!(h.worker("w").generation, 2);
    assert_eq!(h.worker("w").state, A, "a restart keeps the state");
    assert!(
        h.state.partitions[0].replica(&"w".into()).is_some(),
        "and the replicas"
    );

    // The old process is fenced by generation.
    let stale = h
        .run(Command::SetState {
            worker: "w".into(),
            to: Dr,
            by: Actor::Agent,
            generation: Some(1),
            expected_version: None,
            force: false,
            reason: None,
        })
        .unwrap_err();
    assert_eq!(stale.code, RejectCode::StaleGeneration);
}

/// Disabled → Provisioning happens only by registering again, with generation + 1; removal
/// leaves a tombstone so the id's next registration continues its generations.
#[test]
fn recommission_after_disabled_and_after_removal() {
    let mut h = worker_in(D);
    // Same incarnation on a Disabled worker: a retry, unchanged.
    assert!(!h.run(register_cmd("w", 1, "z1")).unwrap().changed);
    h.register("w", 2, "z1");
    assert_eq!(h.worker("w").state, P);
    assert_eq!(h.worker("w").generation, 2);

    let e = h
        .run(Command::Remove {
            worker: "w".into(),
            expected_version: None,
        })
        .unwrap_err();
    assert_eq!(
        e.code,
        RejectCode::IllegalTransition,
        "only a disabled worker is removed"
    );

    h.set_state("w", D, Actor::Operator, false).unwrap();
    let removed = h.ok(Command::Remove {
        worker: "w".into(),
        expected_version: None,
    });
    assert_eq!(
        removed.response,
        Response::Removed {
            worker: "w".into(),
            generation: 2
        }
    );
    assert!(!h.state.workers.contains_key(&WorkerId::from("w")));
    assert_eq!(h.state.tombstones[&WorkerId::from("w")], 2);
    let e = h
        .run(Command::Remove {
            worker: "w".into(),
            expected_version: None,
        })
        .unwrap_err();
    assert_eq!(e.code, RejectCode::NotFound);

    h.register("w", 3, "z1");
    assert_eq!(h.worker("w").generation, 3);
    assert_eq!(h.worker("w").state, P);
    assert!(h.state.tombstones.is_empty());
    let stale = h
        .run(Command::SetState {
            worker: "w".into(),
            to: A,
            by: Actor::Agent,
            generation: Some(2),
            expected_version: None,
            force: false,
            reason: None,
        })
        .unwrap_err();
    assert_eq!(
        stale.code,
        RejectCode::StaleGeneration,
        "a stale agent stays fenced"
    );
}

/// Three Active workers in three zones holding every partition of an RF 3 table.
fn placed_cluster(partitions: u32) -> Harness {
    let mut h = Harness::new();
    for (i, w) in ["a", "b", "c"].iter().enumerate() {
        h.register(w, 1, &format!("z{i}"));
        h.set_state(w, A, Actor::Agent, false).unwrap();
    }
    h.ok(Command::CreateTable {
        count: partitions,
        replication_factor: 3,
    });
    for p in 0..partitions {
        for w in ["a", "b", "c"] {
            h.add_replica(p, w, None);
            let since = h.state.partitions[p as usize].epoch;
            h.ok(Command::Acknowledge {
                partition: p,
                worker: w.into(),
                generation: 1,
                epoch: since,
            });
        }
    }
    h
}

/// Forced disable drops the worker's replicas at once and says how many partitions fell below
/// RF; without force, Active → Disabled is illegal.
#[test]
fn forced_disable_reports_under_replication() {
    let mut h = placed_cluster(4);
    let e = h.set_state("a", D, Actor::Operator, false).unwrap_err();
    assert_eq!(e.code, RejectCode::IllegalTransition);
    let epochs: Vec<u64> = h.state.partitions.iter().map(|p| p.epoch).collect();
    let out = h.set_state("a", D, Actor::Operator, true).unwrap();
    match out.response {
        Response::ForcedDisable {
            worker,
            under_replicated,
        } => {
            assert_eq!(worker.state, D);
            assert_eq!(under_replicated, 4);
        }
        other => panic!("unexpected {other:?}"),
    }
    for (p, before) in h.state.partitions.iter().zip(epochs) {
        assert!(p.replica(&"a".into()).is_none());
        assert_eq!(p.epoch, before + 1);
    }
    assert!(h.state.check_invariants().is_empty());
}

/// The scheduler's Draining → Disabled needs an empty worker; make-before-break refuses to take
/// a partition below RF; death removes replicas without acknowledgement and fences the agent.
#[test]
fn drain_release_and_death() {
    let mut h = placed_cluster(1);
    h.register("d", 1, "z0");
    h.set_state("d", A, Actor::Agent, false).unwrap();
    h.set_state("a", Dr, Actor::Operator, false).unwrap();
    assert_eq!(h.state.drains.len(), 1);
    let e = h.set_state("a", D, Actor::Scheduler, false).unwrap_err();
    assert_eq!(e.code, RejectCode::NotDrained);

    let epoch = |h: &Harness| h.state.partitions[0].epoch;
    let leave = |h: &mut Harness, w: &str| {
        let e = epoch(h);
        h.run(Command::MarkLeaving {
            partition: 0,
            worker: w.into(),
            expected_epoch: e,
        })
    };
    let ack = |h: &mut Harness, w: &str, generation: u64, epoch: u64| {
        h.run(Command::Acknowledge {
            partition: 0,
            worker: w.into(),
            generation,
            epoch,
        })
    };

    // Break before make is refused.
    assert_eq!(
        leave(&mut h, "a").unwrap_err().code,
        RejectCode::UnderReplicated
    );
    let e = epoch(&h);
    h.ok(Command::AddReplica {
        partition: 0,
        worker: "d".into(),
        expected_epoch: e,
        replaces: None,
    });
    let joined_at = epoch(&h);
    assert_eq!(
        leave(&mut h, "a").unwrap_err().code,
        RejectCode::UnderReplicated,
        "d is only joining"
    );
    assert_eq!(
        ack(&mut h, "d", 1, joined_at - 1).unwrap_err().code,
        RejectCode::StaleEpoch
    );
    assert!(ack(&mut h, "d", 1, joined_at).unwrap().changed);
    assert!(
        !ack(&mut h, "d", 1, joined_at).unwrap().changed,
        "a repeated ack succeeds unchanged"
    );

    // Now a can go: make, then break.
    assert!(leave(&mut h, "a").unwrap().changed);
    let leaving_at = epoch(&h);
    assert!(ack(&mut h, "a", 1, leaving_at).unwrap().changed);
    assert!(h.state.partitions[0].replica(&"a".into()).is_none());
    assert!(
        !ack(&mut h, "a", 1, leaving_at).unwrap().changed,
        "a repeated release succeeds"
    );
    assert_eq!(
        ack(&mut h, "a", 1, leaving_at - 1).unwrap_err().code,
        RejectCode::StaleEpoch
    );
    assert!(
        h.set_state("a", D, Actor::Scheduler, false)
            .unwrap()
            .changed
    );
    assert!(h.state.drains.is_empty(), "the finished drain is gone");

    // Death: replicas dropped without acknowledgement, later calls fenced, re-register to return.
    let died = h.ok(Command::MarkDead {
        worker: "d".into(),
        generation: 1,
        term: h.term,
    });
    assert!(matches!(
        died.response,
        Response::Dead {
            replicas_dropped: 1,
            ..
        }
    ));
    assert!(h.state.partitions[0].replica(&"d".into()).is_none());
    assert!(
        !h.ok(Command::MarkDead {
            worker: "d".into(),
            generation: 1,
            term: h.term,
        })
        .changed
    );
    let e = h.set_state("d", Dr, Actor::Agent, false).unwrap_err();
    assert_eq!(e.code, RejectCode::Fenced);
    let e = h.run(Command::AddReplica {
        partition: 0,
        worker: "d".into(),
        expected_epoch: epoch(&h),
        replaces: None,
    });
    assert_eq!(e.unwrap_err().code, RejectCode::Unplaceable);
    h.register("d", 1, "z0");
    assert_eq!(h.worker("d").generation, 2);
    assert!(!h.worker("d").dead);
    assert_eq!(
        h.worker("d").state,
        A,
        "death keeps the state; only replicas are gone"
    );
    let e = h.ok(Command::MarkDead {
        worker: "d".into(),
        generation: 2,
        term: h.term,
    });
    assert!(e.changed);
    let stale = h
        .run(Command::MarkDead {
            worker: "d".into(),
            generation: 1,
            term: h.term,
        })
        .unwrap_err();
    assert_eq!(stale.code, RejectCode::StaleGeneration);
    assert!(h.state.check_invariants().is_empty());
}

/// A death verdict rests on what the leader of one term acknowledged: a leader of a later term
/// may have renewed the worker's lease since. Decided in term 3 and reaching the log in term 4
/// (the old leader was re-elected, or its round raced the election), it is refused and changes
/// nothing; the same verdict decided in term 4 is applied.
#[test]
fn a_death_verdict_from_an_earlier_term_is_refused() {
    let mut h = placed_cluster(2);
    h.term = 4;
    let before = h.state.clone();
    let stale = h
        .run(Command::MarkDead {
            worker: "a".into(),
            generation: 1,
            term: 3,
        })
        .unwrap_err();
    assert_eq!(stale.code, RejectCode::StaleTerm, "{stale}");
    assert_eq!(h.state, before, "a refused verdict changes nothing");
    assert!(!h.worker("a").dead);

    let died = h.ok(Command::MarkDead {
        worker: "a".into(),
        generation: 1,
        term: 4,
    });
    assert!(died.changed);
    assert!(h.worker("a").dead);
}

/// A verdict the leader decided while the worker was Active can reach the log after an operator
/// force-disabled it (chaos seed 8945924269078649419: `dead` committed one version after the
/// disable). Only an Active or Draining worker is judged, so apply refuses it and the Disabled
/// record stays as the operator left it.
#[test]
fn a_death_verdict_behind_a_disable_is_refused() {
    let mut h = placed_cluster(2);
    h.register("d", 1, "z0");
    h.set_state("d", A, Actor::Agent, false).unwrap();
    h.set_state("d", D, Actor::Operator, true).unwrap();
    let before = h.state.clone();
    let late = h
        .run(Command::MarkDead {
            worker: "d".into(),
            generation: 1,
            term: h.term,
        })
        .unwrap_err();
    assert_eq!(late.code, RejectCode::IllegalTransition, "{late}");
    assert_eq!(h.state, before, "a refused verdict changes nothing");
    assert!(!h.worker("d").dead);
}

/// Cancelling a drain withdraws its pending moves (joining targets) and keeps completed ones.
#[test]
fn cancel_drain_withdraws_pending_moves() {
    let mut h = placed_cluster(2);
    h.register("d", 1, "z0");
    h.set_state("d", A, Actor::Agent, false).unwrap();
    let moves = (0..2)
        .map(|p| drover_types::PlannedMove {
            partition: p,
            from: "a".into(),
            to: Some("d".into()),
            epoch: h.state.partitions[p as usize].epoch,
        })
        .collect();
    let started = h.ok(Command::StartDrain {
        workers: vec!["a".into()],
        moves,
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    });
    assert!(
        matches!(started.response, Response::Drain(ref d) if d.replicas_total == 2 && d.planned)
    );
    // Partition 0's move completes its make step; partition 1's stays joining.
    for p in 0..2 {
        h.add_replica(p, "d", None);
    }
    let since = h.state.partitions[0].epoch;
    h.ok(Command::Acknowledge {
        partition: 0,
        worker: "d".into(),
        generation: 1,
        epoch: since,
    });
    h.set_state("a", A, Actor::Operator, false).unwrap();
    assert!(h.state.drains.is_empty());
    assert!(
        h.state.partitions[0].replica(&"d".into()).is_some(),
        "completed move stays"
    );
    assert!(
        h.state.partitions[1].replica(&"d".into()).is_none(),
        "pending move withdrawn"
    );
    assert!(h.state.check_invariants().is_empty());

    // A plan that misses one of the drained worker's replicas is refused.
    let e = h
        .run(Command::StartDrain {
            workers: vec!["b".into()],
            moves: vec![],
            reason: None,
            deadline_ms: None,
            on_deadline: Default::default(),
        })
        .unwrap_err();
    assert_eq!(e.code, RejectCode::Invalid);
}

/// The regression: a cancelled drain withdrew only the joining replicas its record named, so a
/// move off the drained worker toward a target the record did not hold (a replanned target
/// whose plan was never committed) went on after the cancel. Every joining replica that was to
/// replace the worker is withdrawn.
#[test]
fn cancel_drain_withdraws_every_pending_move_recorded_or_not() {
    let mut h = placed_cluster(1);
    for (w, z) in [("d", "z0"), ("e", "z0")] {
        h.register(w, 1, z);
        h.set_state(w, A, Actor::Agent, false).unwrap();
    }
    let epoch = h.state.partitions[0].epoch;
    h.ok(Command::StartDrain {
        workers: vec!["a".into()],
        moves: vec![drover_types::PlannedMove {
            partition: 0,
            from: "a".into(),
            to: Some("d".into()),
            epoch,
        }],
        reason: None,
        deadline_ms: None,
        on_deadline: Default::default(),
    });
    // The move goes to `e`, which the record does not name.
    h.add_replica(0, "e", Some("a"));
    h.set_state("a", A, Actor::Operator, false).unwrap();
    assert!(
        h.state.partitions[0].replica(&"e".into()).is_none(),
        "a pending move outlived its cancelled drain"
    );
    assert!(h.state.check_invariants().is_empty());
}

/// Bad input is a typed rejection: malformed ids, addresses, limits, and the table's bounds.
#[test]
fn limits_are_enforced() {
    let mut h = Harness::new();
    let bad_id = h.run(register_cmd("Not Valid", 1, "z")).unwrap_err();
    assert_eq!(bad_id.code, RejectCode::Invalid);
    for (count, rf) in [(0, 1), (65_537, 1), (1, 0), (1, 8)] {
        let e = h
            .run(Command::CreateTable {
                count,
                replication_factor: rf,
            })
            .unwrap_err();
        assert_eq!(e.code, RejectCode::Invalid, "count {count} rf {rf}");
    }
    h.ok(Command::CreateTable {
        count: 65_536,
        replication_factor: 7,
    });
    let e = h
        .run(Command::CreateTable {
            count: 1,
            replication_factor: 1,
        })
        .unwrap_err();
    assert_eq!(e.code, RejectCode::AlreadyExists);
    let big = "x".repeat(64 * 1024 + 1);
    let e = h.run(Command::KvPut {
        key: "k".into(),
        value: big,
        expected_version: None,
    });
    assert_eq!(e.unwrap_err().code, RejectCode::TooLarge);
    let e = h.run(Command::KvPut {
        key: "k".into(),
        value: "v".into(),
        expected_version: Some(3),
    });
    assert_eq!(e.unwrap_err().code, RejectCode::VersionConflict);
    let put = h.ok(Command::KvPut {
        key: "k".into(),
        value: "v".into(),
        expected_version: Some(0),
    });
    assert!(put.changed);
    let e = h.run(Command::KvPut {
        key: "k".into(),
        value: "v".into(),
        expected_version: Some(0),
    });
    assert_eq!(
        e.unwrap_err().code,
        RejectCode::VersionConflict,
        "0 means create-only"
    );
    let e = h.run(Command::KvDelete {
        key: "nope".into(),
        expected_version: None,
    });
    assert_eq!(e.unwrap_err().code, RejectCode::NotFound);
}

fn put(key: &str, value: &str, expected_version: Option<u64>) -> Command {
    Command::KvPut {
        key: key.into(),
        value: value.into(),
        expected_version,
    }
}

/// A batch entry answers each of its KV writes as if it were alone, all at the entry's index;
/// a refused write inside it refuses nothing else.
#[test]
fn batch_answers_each_write_at_the_entry_index() {
    let mut h = Harness::new();
    h.ok(put("a", "1", None));
    let index = h.index + 1;
    let batch = Proposal {
        at_ms: h.now_ms,
        command: Command::Batch(vec![
            put("a", "2", Some(1)),
            put("b", "x", Some(7)),
            put("c", "3", Some(0)),
            Command::KvDelete {
                key: "missing".into(),
                expected_version: None,
            },
        ]),
    };
    let answers = apply_proposal(&mut h.state, LogPosition::new(h.term, index), &batch);
    let codes: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(RejectCode::VersionConflict),
            None,
            Some(RejectCode::NotFound)
        ]
    );
    assert_eq!(h.state.version, index);
    assert_eq!(h.state.kv["a"].version, index);
    assert_eq!(h.state.kv["a"].value, "2");
    assert_eq!(h.state.kv["c"].create_version, index);
    assert!(!h.state.kv.contains_key("b"));
    // The next entry must still be above the batch's index.
    let again = apply_proposal(&mut h.state, LogPosition::new(h.term, index), &batch);
    assert!(
        again
            .iter()
            .all(|a| a.as_ref().is_err_and(|e| e.code == RejectCode::Invalid))
    );
}

/// Batches the leader never builds are refused whole and change nothing: two writes to one key
/// (which would share a version), a command that is not a KV write, a nested batch, an empty one.
#[test]
fn malformed_batches_change_nothing() {
    let mut h = Harness::new();
    h.ok(put("a", "1", None));
    let before = h.state.clone();
    let malformed = [
        vec![put("a", "2", None), put("a", "3", None)],
        vec![
            put("b", "2", None),
            Command::CreateTable {
                count: 1,
                replication_factor: 1,
            },
        ],
        vec![
            put("b", "2", None),
            Command::Batch(vec![put("c", "1", None)]),
        ],
        vec![],
    ];
    for commands in malformed {
        let n = commands.len().max(1);
        let p = Proposal {
            at_ms: h.now_ms,
            command: Command::Batch(commands.clone()),
        };
        let answers = apply_proposal(&mut h.state, LogPosition::new(h.term, h.index + 1), &p);
        assert_eq!(answers.len(), n, "{commands:?}");
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_err_and(|e| e.code == RejectCode::Invalid)),
            "{commands:?}: {answers:?}"
        );
        assert_eq!(h.state, before, "{commands:?}");
        // `apply` itself refuses a batch: it has one answer per command.
        let e = drover_types::apply(&mut h.state, LogPosition::new(h.term, h.index + 1), &p)
            .unwrap_err();
        assert_eq!(e.code, RejectCode::Invalid);
    }
}

/// Initial placement: a new table's partition takes all its replicas in one command, joining
/// at epochs 1, 2, 3 with an event each, as three adds would; a placed partition, a worker
/// that may not take it (all or nothing), more workers than RF and a stale epoch are refused
/// and change nothing. Each joiner then acknowledges on its own.
#[test]
fn a_new_partition_is_placed_whole_and_acknowledged_one_by_one() {
    let mut h = Harness::new();
    for (id, zone) in [("w1", "a"), ("w2", "b"), ("w3", "c"), ("w4", "a")] {
        h.add_worker(id, Some(zone), 2);
    }
    h.ok(Command::Cordon {
        worker: "w4".into(),
        holder: "ops".into(),
        reason: "disk".into(),
        until_ms: None,
    });
    h.ok(Command::CreateTable {
        count: 2,
        replication_factor: 3,
    });
    let place = |p: u32, ws: &[&str], epoch: u64| Command::PlaceReplicas {
        partition: p,
        workers: ws.iter().map(|w| WorkerId::from(*w)).collect(),
        expected_epoch: epoch,
    };
    let before = h.state.clone();
    for (command, code) in [
        (place(0, &["w1", "w2", "w4"], 0), RejectCode::Unplaceable),
        (place(0, &["w1", "w2", "w3", "w4"], 0), RejectCode::Invalid),
        (place(0, &["w1", "w1"], 0), RejectCode::AlreadyExists),
        (place(0, &[], 0), RejectCode::Invalid),
        (place(0, &["w1"], 3), RejectCode::StaleEpoch),
    ] {
        let e = h.run(command.clone()).unwrap_err();
        assert_eq!(e.code, code, "{command:?}: {e:?}");
        assert_eq!(h.state.partitions, before.partitions, "{command:?}");
    }
    let first_event = h.state.events.next_seq;
    h.ok(place(0, &["w1", "w2", "w3"], 0));
    let p = h.state.partitions[0].clone();
    assert_eq!(p.epoch, 3);
    let since: Vec<(&str, u64, ReplicaRole)> = p
        .replicas
        .iter()
        .map(|r| (r.worker.as_str(), r.since, r.role))
        .collect();
    assert_eq!(
        since,
        [
            ("w1", 1, ReplicaRole::Joining),
            ("w2", 2, ReplicaRole::Joining),
            ("w3", 3, ReplicaRole::Joining)
        ]
    );
    let added: Vec<u64> = h
        .state
        .events
        .after(first_event - 1)
        .unwrap()
        .filter_map(|e| match &e.kind {
            EventKind::ReplicaAdded { epoch, .. } => Some(*epoch),
            _ => None,
        })
        .collect();
    assert_eq!(added, [1, 2, 3]);
    let e = h.run(place(0, &["w1"], 3)).unwrap_err();
    assert_eq!(e.code, RejectCode::Invalid, "placed already: {e:?}");
    for (w, since) in [("w2", 2), ("w1", 1), ("w3", 3)] {
        h.ok(Command::Acknowledge {
            partition: 0,
            worker: w.into(),
            generation: 1,
            epoch: since,
        });
    }
    let p = &h.state.partitions[0];
    assert!(p.replicas.iter().all(|r| r.role == ReplicaRole::Serving));
    assert_eq!(p.epoch, 6);
}

/// One round's steps in one `Group` entry, in order, each answered as if alone: a second step
/// on a partition at the epoch the first moved is refused (stale), the others apply.
/// Acknowledgements group-commit beside KV writes, keyed by replica. A mix of steps and other
/// commands, a nested group, and anything but KV writes in an older `Batch` are refused whole.
#[test]
fn a_rounds_steps_and_acknowledgements_share_entries() {
    let mut h = Harness::new();
    for (id, zone) in [("w1", "a"), ("w2", "b"), ("w3", "c")] {
        h.add_worker(id, Some(zone), 2);
    }
    h.ok(Command::CreateTable {
        count: 3,
        replication_factor: 1,
    });
    let add = |p: u32, w: &str, epoch: u64| Command::AddReplica {
        partition: p,
        worker: w.into(),
        expected_epoch: epoch,
        replaces: None,
    };
    let steps = Proposal {
        at_ms: h.now_ms,
        command: Command::Group(vec![add(0, "w1", 0), add(0, "w2", 0), add(1, "w2", 0)]),
    };
    let index = h.index + 1;
    let answers = apply_proposal(&mut h.state, LogPosition::new(h.term, index), &steps);
    h.index = index;
    let codes: Vec<_> = answers
        .iter()
        .map(|a| a.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(codes, [None, Some(RejectCode::StaleEpoch), None]);
    let acks = Proposal {
        at_ms: h.now_ms,
        command: Command::Group(vec![
            Command::Acknowledge {
                partition: 0,
                worker: "w1".into(),
                generation: 1,
                epoch: 1,
            },
            put("k", "v", None),
            Command::Acknowledge {
                partition: 1,
                worker: "w2".into(),
                generation: 1,
                epoch: 1,
            },
        ]),
    };
    let index = h.index + 1;
    let answers = apply_proposal(&mut h.state, LogPosition::new(h.term, index), &acks);
    h.index = index;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert!(
        h.state.partitions[..2]
            .iter()
            .all(|p| p.replicas[0].role == ReplicaRole::Serving)
    );
    let before = h.state.clone();
    let mixed = Proposal {
        at_ms: h.now_ms,
        command: Command::Group(vec![add(2, "w3", 0), put("k2", "v", None)]),
    };
    // An older release's `Batch` holds KV writes only, as that release applied it: steps or
    // acknowledgements in one are refused whole, so its logs replay as they applied.
    let old_steps = Proposal {
        at_ms: h.now_ms,
        command: Command::Batch(vec![add(2, "w3", 0)]),
    };
    let old_acks = Proposal {
        at_ms: h.now_ms,
        command: Command::Batch(vec![
            put("k3", "v", None),
            Command::Acknowledge {
                partition: 0,
                worker: "w1".into(),
                generation: 1,
                epoch: 1,
            },
        ]),
    };
    let nested = Proposal {
        at_ms: h.now_ms,
        command: Command::Group(vec![add(2, "w3", 0), Command::Group(vec![add(2, "w3", 0)])]),
    };
    for p in [&mixed, &old_steps, &old_acks, &nested] {
        let answers = apply_proposal(&mut h.state, LogPosition::new(h.term, h.index + 1), p);
        assert!(
            answers
                .iter()
                .all(|a| a.as_ref().is_err_and(|e| e.code == RejectCode::Invalid)),
            "{p:?}: {answers:?}"
        );
        assert_eq!(h.state, before, "{p:?}");
    }
}
