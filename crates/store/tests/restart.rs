//! Restart and crash tests. Each store is written by a child process (this test binary run
//! again with an environment variable naming its job) that never shuts the store down cleanly:
//! it aborts, or is SIGKILLed. The parent then reopens the store and checks it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{assert_applied_is_replay, entries, fingerprint, log_id, spawn_self};
use drover_store::Vote;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use rand::{Rng, SeedableRng};

const REOPEN_DIR: &str = "DROVER_TEST_REOPEN_DIR";
const CRASH_DIR: &str = "DROVER_TEST_CRASH_DIR";
const CRASH_SEED: &str = "DROVER_TEST_CRASH_SEED";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Child of `reopen_restores_everything`: writes N entries, applies them, snapshots, purges,
/// votes and commits, prints the store's fingerprint, and aborts without closing RocksDB.
#[test]
fn reopen_child() {
    let Ok(dir) = std::env::var(REOPEN_DIR) else {
        return; // only meaningful as a child process
    };
    runtime().block_on(async {
        let store = common::open(&PathBuf::from(dir));
        let mut log = store.log.clone();
        let mut sm = store.state_machine.clone();
        log.save_vote(&Vote::new(3, 1)).await.unwrap();
        for chunk in (1..=300u64).collect::<Vec<_>>().chunks(25) {
            let range = chunk[0]..=chunk[chunk.len() - 1];
            log.blocking_append(entries(range.clone())).await.unwrap();
            store.state_machine.apply_entries(entries(range)).unwrap();
        }
        let snapshot = openraft::storage::RaftStateMachine::get_snapshot_builder(&mut sm).await;
        let (meta, _) = snapshot.build().unwrap();
        assert_eq!(meta.last_log_id, Some(log_id(300)));
        log.purge(log_id(250)).await.unwrap();
        log.blocking_append(entries(301..=320)).await.unwrap();
        store
            .state_machine
            .apply_entries(entries(301..=310))
            .unwrap();
        log.save_committed(Some(log_id(310))).await.unwrap();
        println!(
            "FINGERPRINT-BEGIN\n{}\nFINGERPRINT-END",
            fingerprint(&store)
        );
        std::io::stdout().flush().unwrap();
    });
    // No destructor runs: RocksDB is not closed, its memtables are not flushed.
    std::process::abort();
}

/// Append and apply 320 entries, snapshot at 300, purge to 250, apply up to 310, then drop the
/// store without a clean shutdown: the reopened store has the same log state, entries, vote,
/// committed id, applied state and snapshot.
#[test]
fn reopen_restores_everything() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_self(
        "reopen_child",
        &[(REOPEN_DIR, dir.path().display().to_string())],
    );
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success(), "the child should have aborted");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let before = stdout
        .split("FINGERPRINT-BEGIN\n")
        .nth(1)
        .and_then(|s| s.split("\nFINGERPRINT-END").next())
        .expect("child printed no fingerprint");

    let store = common::open(dir.path());
    assert_eq!(fingerprint(&store), before);
    let (last, purged) = store.log.log_state().unwrap();
    assert_eq!((last, purged), (Some(log_id(320)), Some(log_id(250))));
    assert_applied_is_replay(&store);
}

/// Child of `sigkill_loses_nothing_acknowledged`: continues the log where it stands (after
/// re-applying what the last run had not), then appends, applies, snapshots and purges in a
/// loop, printing `acked N` after each acknowledged append, until it is killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CRASH_DIR) else {
        return; // only meaningful as a child process
    };
    let seed: u64 = std::env::var(CRASH_SEED).unwrap().parse().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    runtime().block_on(async {
        let store = common::open(&PathBuf::from(dir));
        let mut log = store.log.clone();
        let mut sm = store.state_machine.clone();
        let (last, _) = store.log.log_state().unwrap();
        let mut next = last.map_or(1, |l| l.index + 1);
        // What openraft does on restart: re-apply the log after the applied index.
        let applied = store
            .state_machine
            .handle()
            .read()
            .last_applied
            .map_or(0, |l| l.index);
        store
            .state_machine
            .apply_entries(entries(applied + 1..=next - 1))
            .unwrap();
        let mut out = std::io::stdout();
        loop {
            let n = rng.random_range(1..=32);
            log.blocking_append(entries(next..=next + n - 1))
                .await
                .unwrap();
            writeln!(out, "acked {}", next + n - 1).unwrap();
            out.flush().unwrap();
            store
                .state_machine
                .apply_entries(entries(next..=next + n - 1))
                .unwrap();
            next += n;
            if rng.random_ratio(1, 6) {
                let builder =
                    openraft::storage::RaftStateMachine::get_snapshot_builder(&mut sm).await;
                let (meta, _) = builder.build().unwrap();
                let at = meta.last_log_id.map_or(0, |l| l.index);
                if at > 16 {
                    log.purge(log_id(at - 16)).await.unwrap();
                }
            }
        }
    });
}

/// SIGKILL a child that appends, applies, snapshots and purges in a loop, at random moments,
/// 20 times over one data directory. After each kill: every acknowledged entry is there, in
/// order and intact; the applied state equals a fresh replay of the log from the last snapshot;
/// and the next child keeps working on the same store. Seeds are printed; set
/// `DROVER_TEST_CRASH_SEED` to replay a run.
#[test]
fn sigkill_loses_nothing_acknowledged() {
    let base: u64 = match std::env::var(CRASH_SEED) {
        Ok(s) => s.parse().unwrap(),
        Err(_) => rand::rng().random(),
    };
    println!("crash test base seed {base} (replay with {CRASH_SEED}={base})");
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(base);
    let mut acked_total = 0;
    for round in 0..20u64 {
        let seed = base.wrapping_add(round);
        let mut child = spawn_self(
            "crash_child",
            &[
                (CRASH_DIR, dir.path().display().to_string()),
                (CRASH_SEED, seed.to_string()),
            ],
        );
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("acked ") {
                    let _ = tx.send(n.parse::<u64>().unwrap());
                }
            }
        });
        // Wait (with a deadline) until this run has acknowledged something, then let it run a
        // random while longer so the kill lands anywhere in its loop.
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("child acknowledged nothing");
        let run_for = Duration::from_millis(rng.random_range(0..150));
        let start = Instant::now();
        let mut acked = first;
        while start.elapsed() < run_for {
            if let Ok(n) = rx.recv_timeout(run_for.saturating_sub(start.elapsed())) {
                acked = acked.max(n);
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        acked = rx.try_iter().fold(acked, u64::max);
        assert!(
            acked >= acked_total,
            "round {round} (seed {seed}) acknowledged less than before"
        );
        acked_total = acked;

        let store = common::open(dir.path());
        let (last, purged) = store.log.log_state().unwrap();
        let last = last.map_or(0, |l| l.index);
        assert!(
            last >= acked,
            "round {round} (seed {seed}): acked {acked}, log ends at {last}"
        );
        let first_kept = purged.map_or(1, |p| p.index + 1);
        let kept = store.log.entries(first_kept..).unwrap();
        assert_eq!(
            kept,
            entries(first_kept..=last),
            "round {round} (seed {seed}): log differs"
        );
        if let Some(p) = purged {
            let (meta, _) = store.state_machine.current_snapshot().unwrap().unwrap();
            assert!(
                meta.last_log_id >= Some(p),
                "round {round}: purged past the snapshot"
            );
        }
        assert_applied_is_replay(&store);
        println!(
            "round {round} seed {seed}: acked up to {acked}, log ends at {last}, purged to {purged:?}"
        );
    }
    // And it still works in-process after the last crash.
    let store = common::open(dir.path());
    let (last, _) = store.log.log_state().unwrap();
    let next = last.map_or(1, |l| l.index + 1);
    runtime().block_on(async {
        let mut log = store.log.clone();
        let applied = store
            .state_machine
            .handle()
            .read()
            .last_applied
            .map_or(0, |l| l.index);
        store
            .state_machine
            .apply_entries(entries(applied + 1..=next - 1))
            .unwrap();
        log.blocking_append(entries(next..=next + 9)).await.unwrap();
        store
            .state_machine
            .apply_entries(entries(next..=next + 9))
            .unwrap();
    });
    assert_eq!(
        store.state_machine.handle().read().last_applied,
        Some(log_id(next + 9))
    );
    assert_applied_is_replay(&store);
}

/// The scheduling loop follows `subscribe_placement`: KV writes move the state version but not
/// the placement version, so a KV-heavy load does not run a planning round per write.
#[test]
fn kv_writes_do_not_move_the_placement_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let sm = &store.state_machine;
    let (versions, placement) = (sm.subscribe(), sm.subscribe_placement());
    // 1 creates the table; 2 activates a worker that does not exist (refused); 3–5 are KV puts.
    sm.apply_entries(entries(1..=1)).unwrap();
    sm.apply_entries(entries(2..=5)).unwrap();
    assert_eq!(*versions.borrow(), 5);
    assert_eq!(
        *placement.borrow(),
        1,
        "KV writes are not placement changes"
    );
    // 6 registers a worker.
    sm.apply_entries(entries(6..=6)).unwrap();
    assert_eq!(*placement.borrow(), 6);
}
