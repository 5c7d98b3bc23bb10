//! Helpers shared by drover-store's tests: deterministic log entries, a fingerprint of
//! everything a store holds, the replay check, and running this test binary as a child process
//! (so a store can be dropped without a clean shutdown, or SIGKILLed).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command as Process, Stdio};

use drover_store::{Entry, LogId, Store};
use drover_types::{ClusterState, Command, Proposal, Registration, apply, codec};
use openraft::{CommittedLeaderId, EntryPayload};

pub const TERM: u64 = 1;
pub const NODE: u64 = 1;

pub fn log_id(index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(TERM, NODE), index)
}

/// The entry at `index`: a mix of commands (some of which `apply` rejects), derived from the
/// index alone so a checker can recompute it.
pub fn entry(index: u64) -> Entry {
    let command = match index % 6 {
        _ if index == 1 => Command::CreateTable {
            count: 8,
            replication_factor: 2,
        },
        0 => Command::Register(Registration {
            worker: format!("w{}", index % 11).as_str().into(),
            incarnation: index,
            address: format!("127.0.0.1:{}", 1000 + index % 1000),
            zone: Some(format!("z{}", index % 3)),
            capacity: 1,
            labels: BTreeMap::new(),
        }),
        1 => Command::KvDelete {
            key: format!("k{}", index % 37),
            expected_version: None,
        },
        2 => Command::SetState {
            worker: format!("w{}", index % 11).as_str().into(),
            to: drover_types::WorkerState::Active,
            by: drover_types::Actor::Operator,
            generation: None,
            expected_version: None,
            force: false,
            reason: None,
        },
        _ => Command::KvPut {
            key: format!("k{}", index % 37),
            value: format!("v{index}"),
            expected_version: None,
        },
    };
    let payload = if index % 50 == 7 {
        EntryPayload::Blank
    } else {
        EntryPayload::Normal(Proposal {
            at_ms: index * 10,
            command,
        })
    };
    Entry {
        log_id: log_id(index),
        payload,
    }
}

pub fn entries(range: std::ops::RangeInclusive<u64>) -> Vec<Entry> {
    range.map(entry).collect()
}

/// Everything a store holds that must survive a restart, as one comparable string.
pub fn fingerprint(store: &Store) -> String {
    let (last, purged) = store.log.log_state().unwrap();
    let first = purged.map_or(0, |p| p.index + 1);
    let log = store.log.entries(first..).unwrap();
    let applied = store.state_machine.handle().read().clone();
    let snapshot = store.state_machine.current_snapshot().unwrap();
    format!(
        "last={last:?}\npurged={purged:?}\nvote={:?}\ncommitted={:?}\nlog={log:?}\napplied={applied:?}\nsnapshot={snapshot:?}",
        store.log.vote().unwrap(),
        store.log.committed().unwrap(),
    )
}

/// Checks that the applied state equals the current snapshot's state with the log entries
/// after it replayed through `apply`, up to the applied index.
pub fn assert_applied_is_replay(store: &Store) {
    let applied = store.state_machine.handle().read().clone();
    let (mut state, from) = match store.state_machine.current_snapshot().unwrap() {
        Some((meta, data)) => (
            codec::decode::<ClusterState>(&data).unwrap(),
            meta.last_log_id.map_or(0, |l| l.index) + 1,
        ),
        None => (ClusterState::default(), 0),
    };
    let upto = applied.last_applied.map_or(0, |l| l.index);
    for e in store.log.entries(from..=upto).unwrap() {
        if let EntryPayload::Normal(p) = &e.payload {
            let _ = apply(&mut state, drover_store::position(&e.log_id), p);
        }
    }
    assert_eq!(
        state, applied.state,
        "applied state differs from a replay of snapshot + log"
    );
}

/// Runs the test named `test` of this same binary in a child process with `env` set, its
/// stdout piped back.
pub fn spawn_self(test: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Process::new(exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

pub fn open(dir: &Path) -> Store {
    drover_store::open(dir).unwrap()
}
