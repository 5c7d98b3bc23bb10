//! The two ways back from a disaster (docs/operations.md "Disasters"), run once on the store
//! before Raft opens it, both by seeding the store (`drover_store::Store::seed`):
//!
//! - `--restore FILE`: an empty data dir becomes a node of a new cluster whose state is the
//!   backup's, with every worker's generation bumped so the old cluster's agents are fenced
//!   (`drover_types::backup::restored`). Every node of `--initial-cluster` is started with the
//!   same file, as with `etcdutl snapshot restore`; a node added later with `--join` gets the
//!   state as the leader's snapshot.
//! - `--force-new-cluster`: a surviving node's data dir becomes a one-voter cluster with
//!   everything its log holds, committed or not, to which members are then added (etcd's flag
//!   of the same name). The new cluster has a new `--cluster-id`: the lost nodes, should they
//!   come back, are of the old one and cannot reach it, and a flag left in place is refused at
//!   the next start, as the data dir is of the new cluster by then.
//!
//! Every start then checks that the data dir is of the `--cluster-id` given ([`check_cluster`]).

use std::collections::BTreeMap;
use std::path::Path;

use drover_store::{LogId, Store};
use drover_types::{ClusterState, backup, codec};
use openraft::{BasicNode, CommittedLeaderId};

use crate::config::{Config, Membership, Recovery};

/// Why a recovery was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    #[error("{0}")]
    Refused(String),
    #[error("storage: {0}")]
    Store(#[from] drover_store::Error),
}

fn refused<T>(why: impl Into<String>) -> Result<T, RecoveryError> {
    Err(RecoveryError::Refused(why.into()))
}

/// Runs the recovery `config` asks for, if any, then checks the data dir is of the cluster
/// `config` names.
pub(super) fn recover(store: &Store, config: &Config) -> Result<(), RecoveryError> {
    match &config.recovery {
        None => {}
        Some(Recovery::Restore(file)) => restore(store, file, config)?,
        Some(Recovery::ForceNewCluster) => force_new_cluster(store, config)?,
    }
    check_cluster(store, config)
}

/// A data dir belongs to one cluster: the id it was first started with (or seeded with) is
/// kept, and a start with another `--cluster-id` is refused — a node of one cluster pointed
/// at the data of another would replicate the wrong log. A data dir from before the id was
/// kept takes the one it is started with.
fn check_cluster(store: &Store, config: &Config) -> Result<(), RecoveryError> {
    match store.cluster_id()? {
        Some(id) if id == config.cluster_id => Ok(()),
        Some(id) => refused(format!(
            "{} holds a node of cluster {id:?}, and this node was started with --cluster-id \
             {:?}: give it the data dir of its own cluster, or the --cluster-id of this one",
            config.data_dir.display(),
            config.cluster_id
        )),
        None => Ok(store.set_cluster_id(&config.cluster_id)?),
    }
}

fn restore(store: &Store, file: &Path, config: &Config) -> Result<(), RecoveryError> {
    let Membership::Initial(members) = &config.membership else {
        return refused("--restore bootstraps a new cluster: it needs --initial-cluster");
    };
    if !store.is_empty()? {
        return refused(format!(
            "--restore needs an empty data dir, and {} holds a node's data: restore into a new \
             directory",
            config.data_dir.display()
        ));
    }
    let name = file.display();
    let bytes = std::fs::read(file).or_else(|e| refused(format!("--restore {name}: {e}")))?;
    let framed = backup::unframe(&bytes).or_else(|e| {
        refused(format!(
            "--restore {name}: {e}; a truncated or damaged copy, or not a backup"
        ))
    })?;
    let state: ClusterState = codec::decode(framed.snapshot).or_else(|e| {
        refused(format!(
            "--restore {name}: not a backup this release reads: {e}"
        ))
    })?;
    if framed.cluster_id == config.cluster_id {
        return refused(format!(
            "--restore {name}: the backup is of cluster {:?}, and a restored cluster is a new \
             one: give it another --cluster-id, so that nodes of the old cluster cannot reach it",
            framed.cluster_id
        ));
    }
    let violations = state.check_invariants();
    if let Some(first) = violations.first() {
        return refused(format!(
            "--restore {name}: the backup breaks {} of the state's invariants (first: {}); \
             it cannot be trusted",
            violations.len(),
            first.0
        ));
    }
    let backup_version = state.version;
    let (state, version) = backup::restored(state, framed.saved_at_ms);
    // Term 0, as the entry `initialize` writes: the new cluster's first election is term 1.
    let at = LogId::new(CommittedLeaderId::new(0, 0), version);
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr.to_string())))
        .collect();
    store.seed(&state, at, nodes, &config.cluster_id)?;
    tracing::warn!(
        file = %name,
        from_cluster = framed.cluster_id,
        backup_version,
        version,
        workers = state.workers.len(),
        partitions = state.partitions.len(),
        kv_keys = state.kv.len(),
        "RESTORED a new cluster from a backup; every worker's generation is bumped, so agents \
         of the old cluster are fenced until they register again"
    );
    Ok(())
}

fn force_new_cluster(store: &Store, config: &Config) -> Result<(), RecoveryError> {
    if store.is_empty()? {
        return refused(format!(
            "--force-new-cluster starts from this node's data, and {} holds none",
            config.data_dir.display()
        ));
    }
    if let Some(id) = store.cluster_id()?
        && id == config.cluster_id
    {
        return refused(format!(
            "--force-new-cluster makes a new cluster, and {} is of cluster {id:?} already: \
             give the new one another --cluster-id (the nodes that join it too), so that the \
             lost nodes, should they come back, cannot reach it. If this node was forced into \
             {id:?} before and the flag was left in place, remove it",
            config.data_dir.display()
        ));
    }
    let (applied, from_log) = store.whole_log_applied()?;
    let Some(at) = applied.last_applied else {
        return refused("--force-new-cluster: this node has applied nothing to keep");
    };
    let before: Vec<u64> = applied.membership.membership().voter_ids().collect();
    let me = BTreeMap::from([(config.id, BasicNode::new(config.listen.to_string()))]);
    store.seed(&applied.state, at, me, &config.cluster_id)?;
    tracing::warn!(
        voters_before = ?before,
        cluster_id = config.cluster_id,
        last_log_index = at.index,
        applied_from_log = from_log,
        state_version = applied.state.version,
        "FORCED A NEW CLUSTER: this node is now the only voter, with everything its log held; \
         writes the lost majority acknowledged after it are gone. Remove --force-new-cluster \
         and add members with `droverctl members add` and --join"
    );
    Ok(())
}
