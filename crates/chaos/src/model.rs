//! The sequential specifications the checker holds Drover to (SPEC §1, §4): a KV key with
//! versions and compare-and-set, and a worker record with registration, state changes, deaths
//! and removal.
//!
//! Versions are state versions, global log indexes: every change gets a new one, larger than the
//! key's previous one. An operation whose outcome is unknown took effect at a version nobody was
//! told; the model carries it as unbound (`None`) until a later read or conflict reports it, and
//! binds it then, refusing a version that an acknowledged change already owns: for a KV key, an
//! acknowledged write to the same key or any worker change (writes to different keys may share
//! a version: the leader group-commits them into one log entry); for a worker, any change.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::linearizability::Model;

/// A version as the model knows it: `None` for a change whose version was never reported.
pub type Ver = Option<u64>;

/// What a KV operation asked and got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// `GET`: `Some((value, version))` or `None` for 404.
    Read(Option<(u32, u64)>),
    /// `PUT {value, expected_version}`.
    Write {
        value: u32,
        expected: Option<u64>,
        result: WriteResult,
    },
    /// `DELETE ?expected_version`.
    Delete {
        expected: Option<u64>,
        result: WriteResult,
    },
}

/// The result of a KV or worker write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteResult {
    /// Applied at this version (for a worker removal, whose answer has no version: `None`).
    Ok(Ver),
    /// `409 version_conflict` with the current version.
    Conflict(u64),
    /// `404 not_found`.
    NotFound,
    /// `409 illegal_transition`.
    Illegal,
    /// No answer: it may or may not have been applied.
    Unknown,
}

/// One KV key. `floor` is the version of the key's last change (write or delete).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KvState {
    cur: Option<(u32, Ver)>,
    floor: Ver,
}

/// The KV key model. `owned` holds the versions an unknown change to this key can never turn
/// out to have: those acknowledged writes to this key and acknowledged worker changes reported.
#[derive(Clone, Debug)]
pub struct KvModel {
    pub owned: Arc<BTreeSet<u64>>,
}

/// Binds an unbound version to `v`, or checks a bound one equals it.
fn bind(ver: Ver, v: u64, floor_below: Ver, owned: &BTreeSet<u64>) -> Option<u64> {
    match ver {
        Some(x) => (x == v).then_some(v),
        None => (!owned.contains(&v) && floor_below.is_none_or(|f| v > f)).then_some(v),
    }
}

/// A new change's version must be above the last one's.
fn above(v: Ver, floor: Ver) -> bool {
    match (v, floor) {
        (Some(v), Some(f)) => v > f,
        _ => true,
    }
}

impl KvModel {
    /// Whether `expected` matches the current entry; binds an unbound version when it decides
    /// the answer. `Err` when the state cannot give a definite answer consistent with `want`.
    fn matches(&self, s: &KvState, expected: Option<u64>, want: bool) -> Option<KvState> {
        let Some(e) = expected else {
            return want.then(|| s.clone());
        };
        match (s.cur, e) {
            (None, 0) => want.then(|| s.clone()),
            (None, _) => (!want).then(|| s.clone()),
            (Some(_), 0) => (!want).then(|| s.clone()),
            (Some((_, Some(v))), e) => (want == (v == e)).then(|| s.clone()),
            (Some((val, None)), e) => {
                if want {
                    // The unknown write must have got version e.
                    let v = bind(None, e, None, &self.owned)?;
                    Some(KvState {
                        cur: Some((val, Some(v))),
                        floor: Some(v),
                    })
                } else {
                    Some(s.clone())
                }
            }
        }
    }

    /// The current version as a conflict reports it (0 when the key is absent), binding an
    /// unbound one.
    fn conflict(&self, s: &KvState, expected: Option<u64>, current: u64) -> Option<KvState> {
        let s = self.matches(s, expected, false)?;
        match s.cur {
            None => (current == 0).then_some(s),
            Some((val, ver)) => {
                let v = bind(ver, current, None, &self.owned)?;
                Some(KvState {
                    cur: Some((val, Some(v))),
                    floor: Some(v),
                })
            }
        }
    }
}

impl Model for KvModel {
    type State = KvState;
    type Op = KvOp;

    fn init(&self) -> KvState {
        KvState {
            cur: None,
            floor: Some(0),
        }
    }

    fn step(&self, s: &KvState, op: &KvOp) -> Option<KvState> {
        match op {
            KvOp::Read(None) => s.cur.is_none().then(|| s.clone()),
            KvOp::Read(Some((val, ver))) => {
                let (cur, cur_ver) = s.cur?;
                if cur != *val {
                    return None;
                }
                let v = bind(cur_ver, *ver, None, &self.owned)?;
                Some(KvState {
                    cur: Some((cur, Some(v))),
                    floor: Some(v),
                })
            }
            KvOp::Write {
                value,
                expected,
                result,
            } => match result {
                WriteResult::Ok(ver) => {
                    let s = self.matches(s, *expected, true)?;
                    above(*ver, s.floor).then_some(KvState {
                        cur: Some((*value, *ver)),
                        floor: *ver,
                    })
                }
                WriteResult::Unknown => {
                    let _ = self.matches(s, *expected, true)?;
                    Some(KvState {
                        cur: Some((*value, None)),
                        floor: None,
                    })
                }
                WriteResult::Conflict(c) => self.conflict(s, *expected, *c),
                WriteResult::NotFound | WriteResult::Illegal => None,
            },
            KvOp::Delete { expected, result } => match result {
                WriteResult::Ok(ver) => {
                    s.cur?;
                    let s = self.matches(s, *expected, true)?;
                    above(*ver, s.floor).then_some(KvState {
                        cur: None,
                        floor: *ver,
                    })
                }
                WriteResult::Unknown => {
                    s.cur?;
                    let _ = self.matches(s, *expected, true)?;
                    Some(KvState {
                        cur: None,
                        floor: None,
                    })
                }
                WriteResult::NotFound => s.cur.is_none().then(|| s.clone()),
                WriteResult::Conflict(c) => {
                    s.cur?;
                    self.conflict(s, *expected, *c)
                }
                WriteResult::Illegal => None,
            },
        }
    }
}

/// Leaves out of a key's history the writes with unknown outcomes that nothing observed: their
/// value never read, while every version the key's answers mention belongs to an acknowledged
/// write. Such a write, if it took effect, was overwritten unseen — any linearization with it is
/// one without it — but each one left in makes the search try it at every later point (it never
/// completes), which on a soak's history costs the search its budget. Returns how many it left
/// out. Unknown deletes are kept: an absence does not say whose it is. (Worker registrations
/// are never pruned: each bumps the generation, which every later answer shows.)
pub fn prune_unobserved_kv(ops: &mut Vec<crate::linearizability::Timed<KvOp>>) -> usize {
    let mut read = BTreeSet::new();
    let mut acked = BTreeSet::new();
    let mut mentioned = BTreeSet::new();
    for o in ops.iter() {
        match &o.op {
            KvOp::Read(Some((v, ver))) => {
                read.insert(*v);
                mentioned.insert(*ver);
            }
            KvOp::Write {
                expected, result, ..
            }
            | KvOp::Delete { expected, result } => {
                if let WriteResult::Ok(Some(v)) = result {
                    acked.insert(*v);
                }
                if let WriteResult::Conflict(c) = result {
                    mentioned.insert(*c);
                }
                if matches!(result, WriteResult::Ok(_)) {
                    mentioned.extend(*expected);
                }
            }
            KvOp::Read(None) => {}
        }
    }
    mentioned.remove(&0);
    if !mentioned.is_subset(&acked) {
        return 0;
    }
    let before = ops.len();
    ops.retain(|o| {
        !matches!(&o.op, KvOp::Write { value, result: WriteResult::Unknown, .. } if !read.contains(value))
    });
    before - ops.len()
}

/// Worker states as the model numbers them (the API's lower-case names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WState {
    Provisioning,
    Active,
    Draining,
    Disabled,
}

impl WState {
    pub fn parse(s: &str) -> Option<WState> {
        Some(match s {
            "provisioning" => WState::Provisioning,
            "active" => WState::Active,
            "draining" => WState::Draining,
            "disabled" => WState::Disabled,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            WState::Provisioning => "provisioning",
            WState::Active => "active",
            WState::Draining => "draining",
            WState::Disabled => "disabled",
        }
    }
}

/// The replicated fields of a worker record that the model follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub state: WState,
    pub generation: u64,
    pub incarnation: u64,
    pub version: Ver,
}

/// What a worker operation asked and got. Records in results always carry their version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkerOp {
    Read(Option<Record>),
    /// `PUT /v1/workers/{id}` with a fresh incarnation: `Some(record)` or `None` (unknown).
    Register {
        incarnation: u64,
        result: Option<Record>,
    },
    /// `POST /v1/workers/{id}/state` as an operator.
    SetState {
        to: WState,
        expected: Option<u64>,
        force: bool,
        result: Result<Record, WriteResult>,
    },
    /// `DELETE /v1/workers/{id}`: `Ok(None)` on success (the answer names no version).
    Remove {
        expected: Option<u64>,
        result: WriteResult,
    },
    /// The scheduler declared the worker dead at `generation`, at state `version`: read off
    /// the events log, so both are known. The harness's workers never heartbeat, so once one
    /// is Active the leader declares it dead `dead_after` later; invoked (a second before) the
    /// proposer's time, completed when the harness read the event.
    Dead {
        generation: u64,
        version: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WorkerModelState {
    rec: Option<Record>,
    /// Declared dead at the record's generation (a registration clears it).
    dead: bool,
    /// The generation a removal left in the tombstone.
    tombstone: u64,
    floor: Ver,
}

/// The worker record model (SPEC §1's operator column, and deaths; no drains: nothing places
/// a replica on these workers, which never heartbeat).
#[derive(Clone, Debug)]
pub struct WorkerModel {
    pub owned: Arc<BTreeSet<u64>>,
}

fn legal_for_operator(from: WState, to: WState, force: bool) -> bool {
    use WState::*;
    match (from, to) {
        (Provisioning, Active) | (Provisioning, Disabled) | (Active, Draining) => true,
        (Draining, Active) => true,
        (Draining, Disabled) | (Active, Disabled) => force,
        _ => false,
    }
}

impl WorkerModel {
    /// The record a change reported: `want`'s fields, at the new version the answer gives
    /// (above the floor). The answer owns that version, so no binding rules apply.
    fn fresh(&self, want: &Record, got: &Record, floor: Ver) -> Option<Record> {
        let same = (want.state, want.generation, want.incarnation)
            == (got.state, got.generation, got.incarnation);
        (same && got.version.is_some() && above(got.version, floor)).then_some(*got)
    }

    /// `got` must be `want` (with `want`'s version possibly unbound).
    fn same(&self, want: &Record, got: &Record, floor: Ver) -> Option<Record> {
        if (want.state, want.generation, want.incarnation)
            != (got.state, got.generation, got.incarnation)
        {
            return None;
        }
        let v = bind(want.version, got.version?, None, &self.owned)?;
        if want.version.is_none() && !above(Some(v), floor) {
            return None;
        }
        Some(Record {
            version: Some(v),
            ..*want
        })
    }

    /// Decides `expected` against the record: `Some(true)` matches (binding an unbound version
    /// as needed is left to the caller), `Some(false)` differs.
    fn expectation(&self, rec: &Record, expected: Option<u64>) -> Option<bool> {
        match (expected, rec.version) {
            (None, _) => Some(true),
            (Some(e), Some(v)) => Some(e == v),
            (Some(e), None) => Some(!self.owned.contains(&e)),
        }
    }
}

impl Model for WorkerModel {
    type State = WorkerModelState;
    type Op = WorkerOp;

    fn init(&self) -> WorkerModelState {
        WorkerModelState {
            rec: None,
            dead: false,
            tombstone: 0,
            floor: Some(0),
        }
    }

    fn step(&self, s: &WorkerModelState, op: &WorkerOp) -> Option<WorkerModelState> {
        match op {
            WorkerOp::Read(None) => s.rec.is_none().then(|| s.clone()),
            WorkerOp::Read(Some(got)) => {
                let rec = self.same(&s.rec?, got, None)?;
                Some(WorkerModelState {
                    rec: Some(rec),
                    floor: if s.rec?.version.is_none() {
                        rec.version
                    } else {
                        s.floor
                    },
                    ..s.clone()
                })
            }
            WorkerOp::Register {
                incarnation,
                result,
            } => {
                let (generation, state) = match s.rec {
                    None => (s.tombstone + 1, WState::Provisioning),
                    Some(r) if r.state == WState::Disabled => {
                        (r.generation + 1, WState::Provisioning)
                    }
                    Some(r) => (r.generation + 1, r.state),
                };
                let want = Record {
                    state,
                    generation,
                    incarnation: *incarnation,
                    version: None,
                };
                let rec = match result {
                    None => want,
                    Some(got) => self.fresh(&want, got, s.floor)?,
                };
                Some(WorkerModelState {
                    rec: Some(rec),
                    dead: false,
                    floor: rec.version,
                    ..s.clone()
                })
            }
            WorkerOp::Dead {
                generation,
                version,
            } => {
                // Only an Active or Draining worker is judged; a verdict is for its current
                // generation, once; it changes the record's version and nothing else it shows.
                let rec = s.rec?;
                let judged = matches!(rec.state, WState::Active | WState::Draining);
                if !judged || s.dead || rec.generation != *generation {
                    return None;
                }
                if !above(Some(*version), s.floor) || rec.version.is_some_and(|v| v >= *version) {
                    return None;
                }
                Some(WorkerModelState {
                    rec: Some(Record {
                        version: Some(*version),
                        ..rec
                    }),
                    dead: true,
                    floor: Some(*version),
                    ..s.clone()
                })
            }
            WorkerOp::SetState {
                to,
                expected,
                force,
                result,
            } => {
                let Some(rec) = s.rec else {
                    return matches!(result, Err(WriteResult::NotFound)).then(|| s.clone());
                };
                if rec.state == *to {
                    // Asking for the state it is in succeeds and changes nothing.
                    return match result {
                        Ok(got) => {
                            let rec = self.same(&rec, got, None)?;
                            Some(WorkerModelState {
                                rec: Some(rec),
                                floor: if s.floor.is_none() {
                                    rec.version
                                } else {
                                    s.floor
                                },
                                ..s.clone()
                            })
                        }
                        _ => None,
                    };
                }
                let matches = self.expectation(&rec, *expected)?;
                match result {
                    Err(WriteResult::Conflict(c)) => {
                        let e = (*expected)?;
                        if e == *c {
                            return None;
                        }
                        let v = bind(rec.version, *c, None, &self.owned)?;
                        let rec = Record {
                            version: Some(v),
                            ..rec
                        };
                        Some(WorkerModelState {
                            rec: Some(rec),
                            floor: if s.floor.is_none() { Some(v) } else { s.floor },
                            ..s.clone()
                        })
                    }
                    _ if !matches => None,
                    Err(WriteResult::Illegal) => {
                        (!legal_for_operator(rec.state, *to, *force)).then(|| s.clone())
                    }
                    _ if !legal_for_operator(rec.state, *to, *force) => None,
                    Ok(got) => {
                        let want = Record {
                            state: *to,
                            version: None,
                            ..rec
                        };
                        let new = self.fresh(&want, got, s.floor)?;
                        Some(WorkerModelState {
                            rec: Some(new),
                            floor: new.version,
                            ..s.clone()
                        })
                    }
                    Err(WriteResult::Unknown) => Some(WorkerModelState {
                        rec: Some(Record {
                            state: *to,
                            version: None,
                            ..rec
                        }),
                        floor: None,
                        ..s.clone()
                    }),
                    Err(_) => None,
                }
            }
            WorkerOp::Remove { expected, result } => {
                let Some(rec) = s.rec else {
                    return matches!(result, WriteResult::NotFound).then(|| s.clone());
                };
                match result {
                    WriteResult::Conflict(c) => {
                        let e = (*expected)?;
                        if e == *c {
                            return None;
                        }
                        let v = bind(rec.version, *c, None, &self.owned)?;
                        Some(WorkerModelState {
                            rec: Some(Record {
                                version: Some(v),
                                ..rec
                            }),
                            floor: if s.floor.is_none() { Some(v) } else { s.floor },
                            ..s.clone()
                        })
                    }
                    _ if !self.expectation(&rec, *expected)? => None,
                    WriteResult::Illegal => (rec.state != WState::Disabled).then(|| s.clone()),
                    WriteResult::Ok(_) | WriteResult::Unknown => (rec.state == WState::Disabled)
                        .then_some(WorkerModelState {
                            rec: None,
                            dead: false,
                            tombstone: rec.generation,
                            floor: None,
                        }),
                    WriteResult::NotFound => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linearizability::{Timed, Verdict, check};

    fn t<O>(op: O, invoke: u64, complete: Option<u64>) -> Timed<O> {
        Timed {
            op,
            invoke,
            complete,
            who: String::new(),
        }
    }

    fn kv(owned: &[u64]) -> KvModel {
        KvModel {
            owned: Arc::new(owned.iter().copied().collect()),
        }
    }

    #[test]
    fn kv_cas_chain_is_accepted() {
        let h = vec![
            t(
                KvOp::Write {
                    value: 1,
                    expected: Some(0),
                    result: WriteResult::Ok(Some(5)),
                },
                0,
                Some(10),
            ),
            t(KvOp::Read(Some((1, 5))), 11, Some(12)),
            t(
                KvOp::Write {
                    value: 2,
                    expected: Some(5),
                    result: WriteResult::Ok(Some(9)),
                },
                13,
                Some(20),
            ),
            t(
                KvOp::Write {
                    value: 3,
                    expected: Some(5),
                    result: WriteResult::Conflict(9),
                },
                21,
                Some(22),
            ),
            t(
                KvOp::Delete {
                    expected: Some(9),
                    result: WriteResult::Ok(Some(12)),
                },
                23,
                Some(24),
            ),
            t(KvOp::Read(None), 25, Some(26)),
        ];
        assert_eq!(check(&kv(&[5, 9, 12]), &h, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn kv_versions_must_grow_in_linearization_order() {
        // Two sequential acknowledged writes whose versions go backwards.
        let h = vec![
            t(
                KvOp::Write {
                    value: 1,
                    expected: None,
                    result: WriteResult::Ok(Some(9)),
                },
                0,
                Some(10),
            ),
            t(
                KvOp::Write {
                    value: 2,
                    expected: None,
                    result: WriteResult::Ok(Some(5)),
                },
                11,
                Some(20),
            ),
        ];
        assert!(matches!(
            check(&kv(&[5, 9]), &h, 10_000),
            Verdict::Violation { .. }
        ));
    }

    #[test]
    fn kv_unknown_write_binds_to_what_a_read_reports() {
        let write = |value, result| KvOp::Write {
            value,
            expected: None,
            result,
        };
        let h = vec![
            t(write(1, WriteResult::Unknown), 0, None),
            t(KvOp::Read(Some((1, 7))), 20, Some(21)),
            t(KvOp::Read(Some((1, 7))), 22, Some(23)),
        ];
        assert_eq!(check(&kv(&[]), &h, 10_000), Verdict::Linearizable);
        // The same version twice for two different values cannot be.
        let h = vec![
            t(write(1, WriteResult::Unknown), 0, None),
            t(write(2, WriteResult::Ok(Some(7))), 1, Some(2)),
            t(KvOp::Read(Some((1, 7))), 20, Some(21)),
        ];
        assert!(matches!(
            check(&kv(&[7]), &h, 10_000),
            Verdict::Violation { .. }
        ));
        // A CAS on the version a read revealed succeeds.
        let h = vec![
            t(write(1, WriteResult::Unknown), 0, None),
            t(
                KvOp::Write {
                    value: 2,
                    expected: Some(7),
                    result: WriteResult::Ok(Some(8)),
                },
                20,
                Some(21),
            ),
        ];
        assert_eq!(check(&kv(&[8]), &h, 10_000), Verdict::Linearizable);
    }

    #[test]
    fn unobserved_unknown_writes_are_pruned_only_when_nothing_could_have_seen_them() {
        let write = |value, result| KvOp::Write {
            value,
            expected: None,
            result,
        };
        let base = vec![
            t(write(1, WriteResult::Ok(Some(5))), 0, Some(1)),
            t(write(2, WriteResult::Unknown), 2, None),
            t(write(3, WriteResult::Unknown), 3, None),
            t(write(4, WriteResult::Ok(Some(9))), 10, Some(11)),
            t(KvOp::Read(Some((3, 7))), 12, Some(13)),
        ];
        // Value 3 was read (at version 7, which no acknowledged write owns): nothing is pruned.
        let mut h = base.clone();
        assert_eq!(prune_unobserved_kv(&mut h), 0);
        // Without that read, both unknown writes go, and the verdict does not change.
        let mut h = base[..4].to_vec();
        h.push(t(KvOp::Read(Some((4, 9))), 12, Some(13)));
        let full = check(&kv(&[5, 9]), &h, 10_000);
        assert_eq!(prune_unobserved_kv(&mut h), 2);
        assert_eq!(h.len(), 3);
        assert_eq!(check(&kv(&[5, 9]), &h, 10_000), full);
        assert_eq!(full, Verdict::Linearizable);
    }

    fn rec(state: WState, generation: u64, incarnation: u64, version: u64) -> Record {
        Record {
            state,
            generation,
            incarnation,
            version: Some(version),
        }
    }

    #[test]
    fn worker_lifecycle_is_accepted_and_illegal_answers_checked() {
        let m = WorkerModel {
            owned: Arc::new([3, 4, 6, 8].into_iter().collect()),
        };
        use WState::*;
        let h = vec![
            t(
                WorkerOp::Register {
                    incarnation: 11,
                    result: Some(rec(Provisioning, 1, 11, 3)),
                },
                0,
                Some(1),
            ),
            t(
                WorkerOp::SetState {
                    to: Active,
                    expected: Some(3),
                    force: false,
                    result: Ok(rec(Active, 1, 11, 4)),
                },
                2,
                Some(3),
            ),
            t(
                WorkerOp::SetState {
                    to: Disabled,
                    expected: None,
                    force: false,
                    result: Err(WriteResult::Illegal),
                },
                4,
                Some(5),
            ),
            t(
                WorkerOp::SetState {
                    to: Disabled,
                    expected: Some(4),
                    force: true,
                    result: Ok(rec(Disabled, 1, 11, 6)),
                },
                6,
                Some(7),
            ),
            t(
                WorkerOp::Remove {
                    expected: None,
                    result: WriteResult::Ok(None),
                },
                8,
                Some(9),
            ),
            t(
                WorkerOp::Register {
                    incarnation: 12,
                    result: Some(rec(Provisioning, 2, 12, 8)),
                },
                10,
                Some(11),
            ),
        ];
        assert_eq!(check(&m, &h, 10_000), Verdict::Linearizable);
        // Claiming Active → Disabled without force succeeded is a violation.
        let mut bad = h.clone();
        bad[2].op = WorkerOp::SetState {
            to: Disabled,
            expected: None,
            force: false,
            result: Ok(rec(Disabled, 1, 11, 5)),
        };
        assert!(matches!(check(&m, &bad, 10_000), Verdict::Violation { .. }));
    }

    /// A death (from the events log) bumps an Active worker's version and nothing else it
    /// shows; it is refused for a worker that is not Active or Draining, at another
    /// generation, twice, or below the record's version.
    #[test]
    fn deaths_change_the_version_of_an_active_worker_only() {
        let m = WorkerModel {
            owned: Arc::new([3, 4, 9, 12].into_iter().collect()),
        };
        use WState::*;
        let dead = |generation, version| WorkerOp::Dead {
            generation,
            version,
        };
        let mut h = vec![
            t(
                WorkerOp::Register {
                    incarnation: 11,
                    result: Some(rec(Provisioning, 1, 11, 3)),
                },
                0,
                Some(1),
            ),
            t(
                WorkerOp::SetState {
                    to: Active,
                    expected: Some(3),
                    force: false,
                    result: Ok(rec(Active, 1, 11, 4)),
                },
                2,
                Some(3),
            ),
            t(dead(1, 9), 3, Some(20)),
            t(WorkerOp::Read(Some(rec(Active, 1, 11, 9))), 21, Some(22)),
            t(
                WorkerOp::Register {
                    incarnation: 12,
                    result: Some(rec(Active, 2, 12, 12)),
                },
                23,
                Some(24),
            ),
        ];
        assert_eq!(check(&m, &h, 10_000), Verdict::Linearizable);
        // A read between the activation and the death may see either version.
        h.push(t(WorkerOp::Read(Some(rec(Active, 1, 11, 4))), 5, Some(6)));
        assert_eq!(check(&m, &h, 10_000), Verdict::Linearizable);
        // The same death twice, or of another generation, or of a provisioning worker: no.
        let mut twice = h.clone();
        twice.push(t(dead(1, 10), 21, Some(22)));
        assert!(matches!(
            check(&m, &twice, 10_000),
            Verdict::Violation { .. }
        ));
        let mut other = h.clone();
        other[2].op = dead(2, 9);
        assert!(matches!(
            check(&m, &other, 10_000),
            Verdict::Violation { .. }
        ));
        let early = vec![h[0].clone(), t(dead(1, 9), 1, Some(2))];
        assert!(matches!(
            check(&m, &early, 10_000),
            Verdict::Violation { .. }
        ));
        // A read after the death still showing the version before it: no.
        let mut stale = h[..3].to_vec();
        stale.push(t(WorkerOp::Read(Some(rec(Active, 1, 11, 4))), 21, Some(22)));
        assert!(matches!(
            check(&m, &stale, 10_000),
            Verdict::Violation { .. }
        ));
    }
}
