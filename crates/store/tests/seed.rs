//! Seeding a store (the recoveries' first step): a used store's whole log applied, then the
//! store replaced by one state at one log id with a new membership, in one write that a reopen
//! finds whole.

mod common;

use std::collections::BTreeMap;

use common::{assert_applied_is_replay, entries, log_id};
use drover_store::{Node, Vote};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// 120 entries in the log, 80 applied: `whole_log_applied` computes the state after the other
/// 40, committed or not — a replay of all 120 — without writing it. Seeded with that state at
/// entry 120, node 7 alone and a new cluster id, the reopened store holds an empty log purged
/// up to 120, 120 committed, the state as its applied state and its current snapshot, node 7
/// the only voter, the new cluster id, and the vote as it was.
#[test]
fn a_used_store_is_seeded_with_its_whole_log_and_a_membership_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let state = runtime().block_on(async {
        let store = common::open(dir.path());
        assert!(store.is_empty().unwrap());
        let mut log = store.log.clone();
        log.save_vote(&Vote::new(4, 2)).await.unwrap();
        log.blocking_append(entries(1..=120)).await.unwrap();
        store.state_machine.apply_entries(entries(1..=80)).unwrap();
        log.save_committed(Some(log_id(90))).await.unwrap();
        assert!(!store.is_empty().unwrap());

        store.set_cluster_id("old").unwrap();
        let before = store.state_machine.handle().read().clone();
        let (applied, n) = store.whole_log_applied().unwrap();
        assert_eq!(n, 40);
        assert_eq!(applied.last_applied, Some(log_id(120)));
        assert_eq!(
            *store.state_machine.handle().read(),
            before,
            "computed, not applied"
        );
        assert_applied_is_replay(&store);
        let me = BTreeMap::from([(7, Node::new("127.0.0.1:7007"))]);
        // A state version above the log id is refused: versions are log indexes.
        let mut ahead = applied.state.clone();
        ahead.version = 121;
        assert!(store.seed(&ahead, log_id(120), me.clone(), "new").is_err());
        assert_eq!(store.cluster_id().unwrap().as_deref(), Some("old"));
        store.seed(&applied.state, log_id(120), me, "new").unwrap();
        assert_applied_is_replay(&store);
        applied.state
    });

    let store = common::open(dir.path());
    assert_eq!(
        store.log.log_state().unwrap(),
        (Some(log_id(120)), Some(log_id(120)))
    );
    assert!(store.log.entries(0..).unwrap().is_empty());
    assert_eq!(store.log.committed().unwrap(), Some(log_id(120)));
    assert_eq!(store.log.vote().unwrap(), Some(Vote::new(4, 2)));
    assert_eq!(store.cluster_id().unwrap().as_deref(), Some("new"));
    let applied = store.state_machine.handle().read().clone();
    assert_eq!(applied.state, state);
    assert_eq!(applied.last_applied, Some(log_id(120)));
    let voters: Vec<u64> = applied.membership.membership().voter_ids().collect();
    assert_eq!(voters, vec![7]);
    let (meta, data) = store.state_machine.current_snapshot().unwrap().unwrap();
    assert_eq!(meta.last_log_id, Some(log_id(120)));
    assert_eq!(
        drover_types::codec::decode::<drover_types::ClusterState>(&data).unwrap(),
        state
    );
}
