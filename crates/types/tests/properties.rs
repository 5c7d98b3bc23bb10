//! Property tests of `apply` over random command sequences, garbage values included.
//!
//! After every step: no panic; the SPEC §6 invariants hold; versions, epochs and generations
//! only grow; a rejected command leaves the state byte-for-byte unchanged; no release takes a
//! partition below RF healthy serving replicas; the `Changes` an outcome reports are exactly
//! the records that changed; JSON and bincode round trips are the identity; and a second replica
//! fed the same log, through the codec, encodes identical bytes.
//!
//! Cases: 1,000 by default; `PROPTEST_CASES` bounds them (CI sets it low). `TRACE_STEPS=1`
//! prints every step and its result, to follow a failing sequence.

use std::collections::BTreeMap;

use drover_types::{
    Actor, ClusterState, Command, LogPosition, Outcome, PlannedMove, Proposal, Registration,
    ReplicaRole, SettingsPatch, WorkerId, WorkerState, apply, codec,
};
use proptest::prelude::*;

/// A number resolved against the state when the step runs, so sequences hit the current
/// version/epoch/generation often enough to get past preconditions, and miss it sometimes.
#[derive(Clone, Debug)]
enum Num {
    Current,
    Off(i8),
    Raw(u64),
}

impl Num {
    fn resolve(&self, current: u64) -> u64 {
        match self {
            Num::Current => current,
            Num::Off(d) => current.saturating_add_signed(i64::from(*d)),
            Num::Raw(n) => *n,
        }
    }
}

fn num() -> impl Strategy<Value = Num> {
    prop_oneof![
        6 => Just(Num::Current),
        2 => (-2i8..3).prop_map(Num::Off),
        1 => any::<u64>().prop_map(Num::Raw),
    ]
}

const IDS: [&str; 7] = ["w0", "w1", "w2", "w3", "w4", "Bad Id", ""];
const ZONES: [&str; 4] = ["z0", "z1", "z2", "bad zone"];
const KEYS: [&str; 4] = ["a", "a/b", "c:d", "no spaces"];
const STATES: [WorkerState; 4] = WorkerState::ALL;

/// A command template, turned into a concrete `Command` against the state when it runs.
#[derive(Clone, Debug)]
enum Op {
    Register {
        w: usize,
        inc: u64,
        zone: usize,
        addr_ok: bool,
        capacity: u32,
        labels: usize,
    },
    SetState {
        w: usize,
        to: usize,
        by: u8,
        generation: Num,
        expected: Option<Num>,
        force: bool,
    },
    Remove {
        w: usize,
        expected: Option<Num>,
    },
    MarkDead {
        w: usize,
        generation: Num,
        /// How many terms before the entry's the verdict was decided in (0: the same term).
        terms_back: u64,
    },
    CreateTable {
        count: u32,
        rf: u8,
    },
    AddReplica {
        p: u32,
        w: usize,
        epoch: Num,
        rep: Option<usize>,
    },
    Ack {
        p: u32,
        w: usize,
        generation: Num,
        epoch: Num,
    },
    MarkLeaving {
        p: u32,
        w: usize,
        epoch: Num,
    },
    RemoveReplica {
        p: u32,
        w: usize,
        epoch: Num,
    },
    SetLeader {
        p: u32,
        w: usize,
        epoch: Num,
    },
    StartDrain {
        ws: Vec<usize>,
        targets: Vec<usize>,
        complete: bool,
    },
    PlanDrain {
        which: usize,
        targets: Vec<usize>,
    },
    KvPut {
        key: usize,
        len: usize,
        expected: Option<Num>,
    },
    KvDelete {
        key: usize,
        expected: Option<Num>,
    },
    Settings {
        kv_max: u32,
        retained: u32,
    },
    /// A cordon by one of `HOLDERS`; `until`: ms from now (negative: in the past).
    Cordon {
        w: usize,
        holder: usize,
        reason: usize,
        until: Option<i64>,
    },
    Uncordon {
        w: usize,
        holder: usize,
    },
    ExpireCordon {
        w: usize,
        holder: usize,
        version: Num,
    },
    Pause {
        reason: usize,
        until: Option<i64>,
    },
    Resume,
    ExpirePause {
        version: Num,
    },
}

const HOLDERS: [&str; 4] = ["ops", "upgrade:7", "", "no/slash"];
const REASONS: [&str; 3] = ["kernel upgrade", "", "   "];

fn op() -> impl Strategy<Value = Op> {
    let w = 0..IDS.len();
    let p = 0u32..6;
    prop_oneof![
        4 => (w.clone(), 0u64..4, 0..ZONES.len(), prop::bool::weighted(0.95), 0u32..3, prop_oneof![8 => Just(0usize), 1 => 0usize..40])
            .prop_map(|(w, inc, zone, addr_ok, capacity, labels)| Op::Register { w, inc, zone, addr_ok, capacity, labels }),
        6 => (w.clone(), 0..4usize, 0u8..3, num(), prop::option::weighted(0.2, num()), any::<bool>())
            .prop_map(|(w, to, by, generation, expected, force)| Op::SetState { w, to, by, generation, expected, force }),
        1 => (w.clone(), prop::option::of(num())).prop_map(|(w, expected)| Op::Remove { w, expected }),
        1 => (w.clone(), num(), prop_oneof![3 => Just(0u64), 1 => 1u64..3])
            .prop_map(|(w, generation, terms_back)| Op::MarkDead { w, generation, terms_back }),
        1 => (prop_oneof![Just(0u32), 1u32..6, Just(70_000)], 0u8..5).prop_map(|(count, rf)| Op::CreateTable { count, rf }),
        8 => (p.clone(), w.clone(), num(), prop::option::weighted(0.3, 0..IDS.len()))
            .prop_map(|(p, w, epoch, rep)| Op::AddReplica { p, w, epoch, rep }),
        8 => (p.clone(), w.clone(), num(), num()).prop_map(|(p, w, generation, epoch)| Op::Ack { p, w, generation, epoch }),
        4 => (p.clone(), w.clone(), num()).prop_map(|(p, w, epoch)| Op::MarkLeaving { p, w, epoch }),
        2 => (p.clone(), w.clone(), num()).prop_map(|(p, w, epoch)| Op::RemoveReplica { p, w, epoch }),
        2 => (p, w.clone(), num()).prop_map(|(p, w, epoch)| Op::SetLeader { p, w, epoch }),
        2 => (prop::collection::vec(w.clone(), 0..3), prop::collection::vec(w.clone(), 0..12), prop::bool::weighted(0.8))
            .prop_map(|(ws, targets, complete)| Op::StartDrain { ws, targets, complete }),
        1 => (0usize..3, prop::collection::vec(w.clone(), 0..12)).prop_map(|(which, targets)| Op::PlanDrain { which, targets }),
        2 => (0..KEYS.len(), prop_oneof![Just(0usize), 1usize..8, Just(70_000)], prop::option::of(num()))
            .prop_map(|(key, len, expected)| Op::KvPut { key, len, expected }),
        1 => (0..KEYS.len(), prop::option::of(num())).prop_map(|(key, expected)| Op::KvDelete { key, expected }),
        1 => (prop_oneof![Just(0u32), Just(4), Just(65_536)], prop_oneof![Just(0u32), 1u32..6, Just(10_000)])
            .prop_map(|(kv_max, retained)| Op::Settings { kv_max, retained }),
        2 => (w.clone(), 0..HOLDERS.len(), prop_oneof![4 => Just(0usize), 1 => 0..REASONS.len()], prop::option::of(-5i64..20))
            .prop_map(|(w, holder, reason, until)| Op::Cordon { w, holder, reason, until }),
        1 => (w.clone(), 0..HOLDERS.len()).prop_map(|(w, holder)| Op::Uncordon { w, holder }),
        1 => (w, 0..HOLDERS.len(), num()).prop_map(|(w, holder, version)| Op::ExpireCordon { w, holder, version }),
        1 => (prop_oneof![4 => Just(0usize), 1 => 0..REASONS.len()], prop::option::of(-5i64..20))
            .prop_map(|(reason, until)| Op::Pause { reason, until }),
        1 => Just(Op::Resume),
        1 => num().prop_map(|version| Op::ExpirePause { version }),
    ]
}

fn wid(i: usize) -> WorkerId {
    WorkerId::from(IDS[i % IDS.len()])
}

/// Moves for every replica the workers `from` hold, targets picked round-robin from `targets`.
fn moves_for(
    s: &ClusterState,
    from: &[WorkerId],
    targets: &[usize],
    complete: bool,
) -> Vec<PlannedMove> {
    let mut out = Vec::new();
    let mut t = targets.iter().cycle();
    for w in from {
        for p in s.replicas_on(w) {
            if !complete && out.len() % 2 == 1 {
                continue;
            }
            out.push(PlannedMove {
                partition: p.id,
                from: w.clone(),
                to: t.next().map(|&i| wid(i)),
                epoch: p.epoch,
            });
        }
    }
    out
}

fn concretize(op: &Op, s: &ClusterState, term: u64, now: u64) -> Command {
    let until = |u: Option<i64>| u.map(|d| now.saturating_add_signed(d));
    let cordon_version = |w: &WorkerId, h: &str| {
        s.workers
            .get(w)
            .and_then(|w| w.cordons.get(h))
            .map_or(0, |c| c.version)
    };
    let generation = |w: &WorkerId| s.workers.get(w).map_or(1, |w| w.generation);
    let version = |w: &WorkerId| s.workers.get(w).map_or(0, |w| w.version);
    let epoch = |p: u32| s.partition(p).map_or(0, |p| p.epoch);
    match op.clone() {
        Op::Register {
            w,
            inc,
            zone,
            addr_ok,
            capacity,
            labels,
        } => Command::Register(Registration {
            worker: wid(w),
            incarnation: inc,
            address: if addr_ok {
                format!("10.0.0.{w}:80")
            } else {
                "nohost".into()
            },
            zone: (zone > 0).then(|| ZONES[zone].to_owned()),
            capacity,
            labels: (0..labels)
                .map(|i| (format!("k{i}"), "v".into()))
                .collect::<BTreeMap<_, _>>(),
        }),
        Op::SetState {
            w,
            to,
            by,
            generation: g,
            expected,
            force,
        } => {
            let id = wid(w);
            Command::SetState {
                generation: Some(g.resolve(generation(&id))),
                expected_version: expected.map(|e| e.resolve(version(&id))),
                worker: id,
                to: STATES[to],
                by: [Actor::Operator, Actor::Agent, Actor::Scheduler][usize::from(by)],
                force,
                reason: None,
            }
        }
        Op::Remove { w, expected } => {
            let id = wid(w);
            Command::Remove {
                expected_version: expected.map(|e| e.resolve(version(&id))),
                worker: id,
            }
        }
        Op::MarkDead {
            w,
            generation: g,
            terms_back,
        } => {
            let id = wid(w);
            Command::MarkDead {
                generation: g.resolve(generation(&id)),
                worker: id,
                term: term.saturating_sub(terms_back),
            }
        }
        Op::CreateTable { count, rf } => Command::CreateTable {
            count,
            replication_factor: rf,
        },
        Op::AddReplica {
            p,
            w,
            epoch: e,
            rep,
        } => Command::AddReplica {
            partition: p,
            worker: wid(w),
            expected_epoch: e.resolve(epoch(p)),
            replaces: rep.map(wid),
        },
        Op::Ack {
            p,
            w,
            generation: g,
            epoch: e,
        } => {
            let id = wid(w);
            // "Current" here means the replica's own `since`: the epoch an agent would ack.
            let since = s
                .partition(p)
                .and_then(|p| p.replica(&id))
                .map_or(epoch(p), |r| r.since);
            Command::Acknowledge {
                partition: p,
                generation: g.resolve(generation(&id)),
                epoch: e.resolve(since),
                worker: id,
            }
        }
        Op::MarkLeaving { p, w, epoch: e } => Command::MarkLeaving {
            partition: p,
            worker: wid(w),
            expected_epoch: e.resolve(epoch(p)),
        },
        Op::RemoveReplica { p, w, epoch: e } => Command::RemoveReplica {
            partition: p,
            worker: wid(w),
            expected_epoch: e.resolve(epoch(p)),
        },
        Op::SetLeader { p, w, epoch: e } => Command::SetLeader {
            partition: p,
            leader: wid(w),
            expected_epoch: e.resolve(epoch(p)),
        },
        Op::StartDrain {
            ws,
            targets,
            complete,
        } => {
            let workers: Vec<WorkerId> = ws.iter().map(|&i| wid(i)).collect();
            Command::StartDrain {
                moves: moves_for(s, &workers, &targets, complete),
                workers,
                reason: None,
                deadline_ms: None,
                on_deadline: Default::default(),
            }
        }
        Op::PlanDrain { which, targets } => {
            let drain = s.drains.keys().nth(which).copied().unwrap_or(u64::MAX);
            let from: Vec<WorkerId> = s
                .drains
                .get(&drain)
                .map(|d| d.workers.iter().cloned().collect())
                .unwrap_or_default();
            Command::PlanDrain {
                drain,
                moves: moves_for(s, &from, &targets, true),
            }
        }
        Op::KvPut { key, len, expected } => {
            let k = KEYS[key];
            let current = s.kv.get(k).map_or(0, |e| e.version);
            Command::KvPut {
                key: k.into(),
                value: "v".repeat(len),
                expected_version: expected.map(|e| e.resolve(current)),
            }
        }
        Op::KvDelete { key, expected } => {
            let k = KEYS[key];
            let current = s.kv.get(k).map_or(0, |e| e.version);
            Command::KvDelete {
                key: k.into(),
                expected_version: expected.map(|e| e.resolve(current)),
            }
        }
        Op::Settings { kv_max, retained } => Command::UpdateSettings {
            patch: SettingsPatch {
                kv_max_value_bytes: Some(kv_max),
                events_retained: Some(retained),
                ..SettingsPatch::default()
            },
            expected_version: None,
        },
        Op::Cordon {
            w,
            holder,
            reason,
            until: u,
        } => Command::Cordon {
            worker: wid(w),
            holder: HOLDERS[holder].into(),
            reason: REASONS[reason].into(),
            until_ms: until(u),
        },
        Op::Uncordon { w, holder } => Command::Uncordon {
            worker: wid(w),
            holder: HOLDERS[holder].into(),
        },
        Op::ExpireCordon { w, holder, version } => Command::ExpireCordon {
            worker: wid(w),
            holder: HOLDERS[holder].into(),
            version: version.resolve(cordon_version(&wid(w), HOLDERS[holder])),
        },
        Op::Pause { reason, until: u } => Command::PauseScheduler {
            reason: REASONS[reason].into(),
            until_ms: until(u),
        },
        Op::Resume => Command::ResumeScheduler,
        Op::ExpirePause { version } => Command::ExpirePause {
            version: version.resolve(s.brakes.pause.as_ref().map_or(0, |p| p.version)),
        },
    }
}

/// `pre` with every record named in `changes` replaced by its value (or absence) in `post`:
/// what incremental storage would hold after persisting only the reported changes.
fn overlay(pre: &ClusterState, post: &ClusterState, o: &Outcome) -> ClusterState {
    let mut s = pre.clone();
    let c = &o.changes;
    s.version = post.version;
    for w in &c.workers {
        match post.workers.get(w) {
            Some(v) => s.workers.insert(w.clone(), v.clone()),
            None => s.workers.remove(w),
        };
    }
    for w in &c.tombstones {
        match post.tombstones.get(w) {
            Some(v) => s.tombstones.insert(w.clone(), *v),
            None => s.tombstones.remove(w),
        };
    }
    for &p in &c.partitions {
        let i = p as usize;
        if s.partitions.len() <= i {
            s.partitions.resize(i + 1, post.partitions[i].clone());
        }
        s.partitions[i] = post.partitions[i].clone();
    }
    for k in &c.kv {
        match post.kv.get(k) {
            Some(v) => s.kv.insert(k.clone(), v.clone()),
            None => s.kv.remove(k),
        };
    }
    for d in &c.drains {
        match post.drains.get(d) {
            Some(v) => s.drains.insert(*d, v.clone()),
            None => s.drains.remove(d),
        };
    }
    if c.table {
        s.table = post.table.clone();
    }
    if c.settings {
        s.settings = post.settings.clone();
    }
    if c.events {
        s.events = post.events.clone();
    }
    if c.brakes {
        s.brakes = post.brakes.clone();
    }
    s
}

fn round_trips<T>(value: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).unwrap();
    assert_eq!(
        &serde_json::from_str::<T>(&json).unwrap(),
        value,
        "JSON round trip"
    );
    let bin = codec::encode(value).unwrap();
    assert_eq!(
        &codec::decode::<T>(&bin).unwrap(),
        value,
        "bincode round trip"
    );
}

fn healthy(s: &ClusterState) -> Vec<usize> {
    s.partitions.iter().map(|p| s.healthy_serving(p)).collect()
}

fn run_sequence(ops: &[Op], times: &[u64]) -> ClusterState {
    let mut a = ClusterState::default();
    let mut b = ClusterState::default();
    let mut index = 0u64;
    let mut term = 1u64;
    let mut now = 1_700_000_000_000u64;
    for (step, (op, dt)) in ops.iter().zip(times.iter().cycle()).enumerate() {
        // Sometimes skip log indexes, as Raft's blank and membership entries do, and sometimes
        // start a new term, as an election does.
        index += 1 + dt % 2;
        term += u64::from(dt % 5 == 4);
        now += dt;
        let at = LogPosition::new(term, index);
        let proposal = Proposal {
            at_ms: now,
            command: concretize(op, &a, term, now),
        };
        let pre = a.clone();
        let pre_bytes = codec::encode(&pre).unwrap();
        let result = apply(&mut a, at, &proposal);

        // Replica B gets the entry through the log encoding.
        let decoded: Proposal = codec::decode(&codec::encode(&proposal).unwrap()).unwrap();
        let result_b = apply(&mut b, at, &decoded);
        if std::env::var("TRACE_STEPS").is_ok() {
            eprintln!(
                "{step}: {:?} => {:?}",
                proposal.command,
                result.as_ref().map(|o| o.changed)
            );
        }
        assert_eq!(
            result, result_b,
            "step {step}: replicas disagree on {proposal:?}"
        );

        let ctx = || format!("step {step}: {proposal:?} -> {result:?}");
        let violations = a.check_invariants();
        assert!(violations.is_empty(), "{}: {violations:?}", ctx());
        // The per-version holdings index (built at the last step's version, kept in `a`)
        // answers as the scan does once apply moved the version.
        for i in 0..IDS.len() {
            let w = wid(i);
            let indexed: Vec<u32> = a.holdings_of(&w).iter().map(|p| p.id).collect();
            let scanned: Vec<u32> = a.replicas_on(&w).map(|p| p.id).collect();
            assert_eq!(indexed, scanned, "{}: holdings of {w}", ctx());
        }
        match &result {
            Err(_) => assert_eq!(
                codec::encode(&a).unwrap(),
                pre_bytes,
                "{}: rejection changed state",
                ctx()
            ),
            Ok(o) => {
                assert_eq!(o.changed, !o.changes.is_empty(), "{}", ctx());
                assert_eq!(
                    a.version,
                    if o.changed { index } else { pre.version },
                    "{}",
                    ctx()
                );
                assert_eq!(overlay(&pre, &a, o), a, "{}: changes incomplete", ctx());
                round_trips(o);
            }
        }
        // Monotonic: versions, epochs, generations (through removal, via the tombstone).
        assert!(a.version >= pre.version);
        for (old, new) in pre.partitions.iter().zip(&a.partitions) {
            assert!(
                new.epoch >= old.epoch && new.version >= old.version,
                "{}",
                ctx()
            );
        }
        for (id, old) in &pre.workers {
            let now_gen = a
                .workers
                .get(id)
                .map(|w| w.generation)
                .or(a.tombstones.get(id).copied());
            assert!(now_gen.is_some_and(|g| g >= old.generation), "{}", ctx());
            if let Some(w) = a.workers.get(id) {
                assert!(w.version >= old.version, "{}", ctx());
            }
        }
        // No planned step takes a partition below RF healthy serving replicas: only a death or a
        // forced disable may.
        let unplanned = matches!(
            proposal.command,
            Command::MarkDead { .. } | Command::SetState { force: true, .. }
        );
        if !unplanned {
            for ((p, before), after) in a.partitions.iter().zip(healthy(&pre)).zip(healthy(&a)) {
                let rf = usize::from(p.replication_factor);
                assert!(
                    after >= before.min(rf),
                    "{}: partition {} {before} -> {after}",
                    ctx(),
                    p.id
                );
            }
        }
        // Replicas that acked a join are serving; leaving ones are never the preferred leader.
        for p in &a.partitions {
            if let Some(l) = &p.leader {
                assert_ne!(p.replica(l).map(|r| r.role), Some(ReplicaRole::Leaving));
            }
        }
        round_trips(&proposal);
    }
    round_trips(&a);
    assert_eq!(
        codec::encode(&a).unwrap(),
        codec::encode(&b).unwrap(),
        "replicas diverged"
    );
    a
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000)
}

/// A prefix that registers and activates `workers` workers in two zones, creates a table and
/// places `placed` replicas of each partition, so random steps start from deep states (exactly
/// RF serving replicas, drains with real moves) as often as from nothing.
fn setup(workers: usize, count: u32, rf: u8, placed: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for w in 0..workers {
        ops.push(Op::Register {
            w,
            inc: 1,
            zone: 1 + w % 2,
            addr_ok: true,
            capacity: 1,
            labels: 0,
        });
        ops.push(Op::SetState {
            w,
            to: 1,
            by: 1,
            generation: Num::Current,
            expected: None,
            force: false,
        });
    }
    ops.push(Op::CreateTable { count, rf });
    for p in 0..count {
        for i in 0..placed.min(workers) {
            let w = (p as usize + i) % workers;
            ops.push(Op::AddReplica {
                p,
                w,
                epoch: Num::Current,
                rep: None,
            });
            ops.push(Op::Ack {
                p,
                w,
                generation: Num::Current,
                epoch: Num::Current,
            });
        }
    }
    ops
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Random command sequences keep every invariant (see the module doc), from an empty state
    /// or from a random placed cluster.
    #[test]
    fn random_sequences_keep_invariants(
        prefix in prop_oneof![
            1 => Just(Vec::new()),
            3 => (0usize..6, 1u32..5, 1u8..4, 0usize..5).prop_map(|(w, c, rf, placed)| setup(w, c, rf, placed)),
        ],
        ops in prop::collection::vec(op(), 1..80),
        times in prop::collection::vec(0u64..5_000, 1..8),
    ) {
        let all: Vec<Op> = prefix.into_iter().chain(ops).collect();
        run_sequence(&all, &times);
    }
}

/// A scripted sequence that reaches deep states (placed replicas, drains, releases) that random
/// sequences rarely do, checked the same way.
#[test]
fn scripted_lifecycle_keeps_invariants() {
    let mut ops = Vec::new();
    for w in 0..4 {
        ops.push(Op::Register {
            w,
            inc: 1,
            zone: 1 + w % 2,
            addr_ok: true,
            capacity: 1,
            labels: 0,
        });
        ops.push(Op::SetState {
            w,
            to: 1,
            by: 1,
            generation: Num::Current,
            expected: None,
            force: false,
        });
    }
    ops.push(Op::CreateTable { count: 3, rf: 2 });
    for p in 0..3 {
        for w in 0..3 {
            ops.push(Op::AddReplica {
                p,
                w,
                epoch: Num::Current,
                rep: None,
            });
            ops.push(Op::Ack {
                p,
                w,
                generation: Num::Current,
                epoch: Num::Current,
            });
        }
        ops.push(Op::SetLeader {
            p,
            w: 0,
            epoch: Num::Current,
        });
    }
    ops.push(Op::StartDrain {
        ws: vec![0],
        targets: vec![3],
        complete: true,
    });
    for p in 0..3 {
        ops.push(Op::AddReplica {
            p,
            w: 3,
            epoch: Num::Current,
            rep: Some(0),
        });
        ops.push(Op::Ack {
            p,
            w: 3,
            generation: Num::Current,
            epoch: Num::Current,
        });
        ops.push(Op::MarkLeaving {
            p,
            w: 0,
            epoch: Num::Current,
        });
        ops.push(Op::Ack {
            p,
            w: 0,
            generation: Num::Current,
            epoch: Num::Current,
        });
    }
    ops.push(Op::SetState {
        w: 0,
        to: 3,
        by: 2,
        generation: Num::Current,
        expected: None,
        force: false,
    });
    ops.push(Op::MarkDead {
        w: 1,
        generation: Num::Current,
        terms_back: 0,
    });
    ops.push(Op::SetState {
        w: 2,
        to: 3,
        by: 0,
        generation: Num::Current,
        expected: None,
        force: true,
    });
    ops.push(Op::Remove {
        w: 0,
        expected: None,
    });
    ops.push(Op::Register {
        w: 0,
        inc: 9,
        zone: 1,
        addr_ok: true,
        capacity: 1,
        labels: 0,
    });
    let end = run_sequence(&ops, &[7]);
    // The script really got there: w0 drained to Disabled, removed, and registered anew; w3
    // took over every partition; w1 died; w2 was forcibly disabled.
    let w = |i: usize| &end.workers[&wid(i)];
    assert_eq!(
        (w(0).state, w(0).generation),
        (WorkerState::Provisioning, 2)
    );
    assert!(w(1).dead);
    assert_eq!(w(2).state, WorkerState::Disabled);
    for p in &end.partitions {
        assert_eq!(p.replicas.len(), 1, "{p:?}");
        assert_eq!(p.replicas[0].worker, wid(3));
    }
}
