//! Durability of what openraft is told is done: every acknowledged append, vote and truncate
//! was preceded by a WAL sync. A process kill cannot show a missing sync (the page cache
//! survives it), so this reads RocksDB's own `rocksdb.wal.synced` counter around each call.

mod common;

use common::{entries, log_id};
use drover_store::Vote;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};

/// Every acknowledged append (batches of 1–40 entries), vote and truncate moved the WAL-sync
/// counter before it was acknowledged.
#[tokio::test]
async fn every_acknowledged_write_follows_a_wal_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    let mut log = store.log.clone();
    let mut next = 1;
    for round in 0..60u64 {
        let n = 1 + (round * 7) % 40;
        let before = store.wal_syncs();
        log.blocking_append(entries(next..=next + n - 1))
            .await
            .unwrap();
        assert!(
            store.wal_syncs() > before,
            "append of {n} entries acknowledged without a sync"
        );
        next += n;

        if round % 5 == 0 {
            let before = store.wal_syncs();
            log.save_vote(&Vote::new(round + 1, 1)).await.unwrap();
            assert!(store.wal_syncs() > before, "vote saved without a sync");
        }
        if round % 7 == 3 {
            let before = store.wal_syncs();
            log.truncate(log_id(next - 2)).await.unwrap();
            assert!(
                store.wal_syncs() > before,
                "truncate returned without a sync"
            );
            next -= 2;
        }
    }
    let (last, _) = store.log.log_state().unwrap();
    assert_eq!(last.map(|l| l.index), Some(next - 1));
}
