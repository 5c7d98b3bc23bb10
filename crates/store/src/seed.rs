//! Seeding a store before Raft opens it: replacing what it holds with one state at one log
//! position, as if this node had installed that state as a snapshot and purged its log up to
//! it. Both ways back from a disaster start here (docs/operations.md): a restore seeds an empty
//! store from a backup, force-new-cluster seeds a surviving node's store with its own state
//! and a membership of itself alone.
//!
//! Openraft then starts from the snapshot like any node that installed one: it is initialized
//! (its last log id is the purged one), its membership is the seeded one, its log continues at
//! the next index, and a node that joins later gets the seeded state as the leader's snapshot,
//! since the log before it is gone.

use std::collections::{BTreeMap, BTreeSet};

use drover_types::ClusterState;
use rocksdb::WriteBatch;

use crate::error::{Error, Result};
use crate::keys::{CF_RAFT, RAFT_CLUSTER_ID};
use crate::log_store::{cf, encoded, get_decoded, synced};
use crate::{Applied, LogId, Node, NodeId, SnapshotMeta, Store, StoredMembership};

impl Store {
    /// Whether the store holds nothing yet: no log entry, no vote, nothing applied, no
    /// snapshot — a data dir never used.
    pub fn is_empty(&self) -> Result<bool> {
        let (last, purged) = self.log.log_state()?;
        let applied = self.state_machine.handle().read().last_applied;
        Ok(last.is_none()
            && purged.is_none()
            && self.log.vote()?.is_none()
            && applied.is_none()
            && self.state_machine.current_snapshot()?.is_none())
    }

    /// The applied state after every entry the log holds past it, committed or not, and how
    /// many those were — computed in memory, so that seeding it is the one write. Only before
    /// Raft opens the store, when this node's log is all that is left of the cluster
    /// (force-new-cluster): an entry this node holds uncommitted may have been committed by
    /// the lost majority, and every entry of a node's log is a prefix of some leader's, so
    /// applying them all keeps the most of what may have been acknowledged.
    pub fn whole_log_applied(&self) -> Result<(Applied, usize)> {
        let from = self
            .state_machine
            .handle()
            .read()
            .last_applied
            .map_or(0, |l| l.index.saturating_add(1));
        let entries = self.log.entries(from..)?;
        let n = entries.len();
        Ok((self.state_machine.applied_after(entries), n))
    }

    /// The `--cluster-id` of the cluster this store belongs to: written at its first start,
    /// or by a seed. `None` for a store that never started, or from a release before it was
    /// kept.
    pub fn cluster_id(&self) -> Result<Option<String>> {
        get_decoded(&self.log.db, CF_RAFT, RAFT_CLUSTER_ID)
    }

    /// Records that this store belongs to the cluster `id` (synced).
    pub fn set_cluster_id(&self, id: &str) -> Result<()> {
        self.log.db.put_cf_opt(
            cf(&self.log.db, CF_RAFT)?,
            RAFT_CLUSTER_ID,
            encoded("cluster id", &id)?,
            &synced(),
        )?;
        Ok(())
    }

    /// Replaces everything the store holds but the vote with `state` at `at`, whose voters
    /// are `members`, in the cluster `cluster_id`: the applied state, the current snapshot, an
    /// empty log purged up to `at`, `at` committed, and the cluster id, in one synced write.
    /// The vote is kept, so terms only grow.
    pub fn seed(
        &self,
        state: &ClusterState,
        at: LogId,
        members: BTreeMap<NodeId, Node>,
        cluster_id: &str,
    ) -> Result<()> {
        if state.version > at.index {
            return Err(Error::Inconsistent(format!(
                "cannot seed state version {} at log index {}: versions are log indexes",
                state.version, at.index
            )));
        }
        let voters: BTreeSet<NodeId> = members.keys().copied().collect();
        let membership = openraft::Membership::new(vec![voters], members);
        let meta = SnapshotMeta {
            last_log_id: Some(at),
            last_membership: StoredMembership::new(Some(at), membership),
            snapshot_id: format!("seed-{}-{}", at.leader_id, at.index),
        };
        let data = encoded("seeded state", state)?;
        let mut batch = WriteBatch::default();
        self.log.seed_into(&mut batch, &at)?;
        batch.put_cf(
            cf(&self.log.db, CF_RAFT)?,
            RAFT_CLUSTER_ID,
            encoded("cluster id", &cluster_id)?,
        );
        self.state_machine.install_with(&meta, data, batch)
    }
}
