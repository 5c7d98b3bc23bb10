//! Durable RocksDB storage for openraft 0.9 (storage-v2): the Raft log, vote, committed and
//! purged log ids ([`LogStore`]), and the applied Drover state machine with its snapshots
//! ([`StateMachine`]), all in one RocksDB database with one write-ahead log.
//!
//! Durability, in one place (each write site repeats the reason):
//! - **Appends** are written to RocksDB (readable at once, as openraft requires) and then a
//!   dedicated thread syncs the WAL and only then calls openraft's `LogFlushed` callback, so no
//!   entry is acknowledged before it is on disk. (openraft 0.9 awaits each append's callback, so
//!   each append gets its own sync; the leader batches client writes into entries instead.)
//! - **Votes and truncations** are written with `sync = true` before the call returns.
//! - **Applied state** is written without a sync, in one batch with its applied log id. Losing it
//!   in a power cut is harmless: every applied entry is still in the durable log (purges only
//!   ever cut behind a snapshot), and openraft re-applies it. One database means one WAL, whose
//!   recovery keeps a prefix of the writes, so an applied record can never outlive the log
//!   entries and snapshot it depends on.
//!
//! The state machine keeps the whole [`ClusterState`] in memory and persists only the records
//! each entry touched (`drover_types::Changes`), so a restart loads the state instead of
//! replaying the log.

mod error;
mod keys;
mod log_store;
mod seed;
mod state_machine;
mod timings;

use std::path::Path;
use std::sync::Arc;

use drover_types::{Outcome, Proposal, Rejection};
use rocksdb::{ColumnFamilyDescriptor, DB, DBCompressionType, DBRecoveryMode, Options};
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use keys::{ALL_CFS, CF_LOG, CF_RAFT, CF_SM, CF_SNAPSHOT};
pub use log_store::{FsyncGate, LogStore};
pub use state_machine::{Applied, ApplyClock, SnapshotBuilder, StateHandle, StateMachine};
pub use timings::Timings;

/// Node ids are small integers, as in `--initial-cluster 1=…,2=…,3=…`.
pub type NodeId = u64;
/// A node's address as openraft's membership records it.
pub type Node = openraft::BasicNode;

openraft::declare_raft_types!(
    /// Drover's openraft type configuration: log entries carry a [`Proposal`], and applying one
    /// answers a [`Reply`].
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = std::io::Cursor<Vec<u8>>,
);

pub type Entry = openraft::Entry<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Vote = openraft::Vote<NodeId>;
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;

/// Where `log_id` sits, as the state machine's `apply` sees it: the term of the leader that
/// appended the entry, and its index.
pub fn position(log_id: &LogId) -> drover_types::LogPosition {
    drover_types::LogPosition::new(log_id.leader_id.term, log_id.index)
}
pub type StorageError = openraft::StorageError<NodeId>;

/// What applying one log entry answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The command was accepted (possibly as an unchanged repeat).
    Applied(Box<Outcome>),
    /// The command was refused by `apply`: a normal answer, not a storage error.
    Rejected(Rejection),
    /// A Raft-internal entry (blank or membership) with nothing to answer.
    Internal,
    /// A batch entry's answers, one per command in order (`Applied` or `Rejected`).
    Batch(Vec<Reply>),
}

/// How often openraft snapshots and how much log it keeps behind a snapshot, so that a restart
/// or a lagging follower never needs an unbounded log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPolicy {
    /// Take a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Keep this many entries behind the last snapshot for followers that lag a little, so they
    /// catch up by log instead of a full snapshot.
    pub logs_to_keep: u64,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        Self {
            snapshot_every: 10_000,
            logs_to_keep: 5_000,
        }
    }
}

impl SnapshotPolicy {
    /// Writes the policy into an openraft config (which does the scheduling and purging).
    pub fn apply_to(&self, config: &mut openraft::Config) {
        config.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every);
        config.max_in_snapshot_log_to_keep = self.logs_to_keep;
        // openraft purges only in batches of `purge_batch_size`; keep batches below the snapshot
        // interval so a small interval still purges.
        config.purge_batch_size = (self.snapshot_every / 2).clamp(1, 256);
    }
}

/// An open store: the database, its statistics, and the two openraft halves sharing it.
pub struct Store {
    pub log: LogStore,
    pub state_machine: StateMachine,
    /// Fsync and apply latencies, for the server's metrics.
    pub timings: Timings,
    options: Options,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("log", &self.log)
            .field("state_machine", &self.state_machine)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// How many times RocksDB has synced its WAL since open (its `rocksdb.wal.synced` ticker).
    pub fn wal_syncs(&self) -> u64 {
        self.options
            .get_ticker_count(rocksdb::statistics::Ticker::WalFileSynced)
    }
}

/// Opens (or creates) the store in `path` and loads the applied state.
/// All column families' memtables together, before RocksDB flushes the largest.
const MEMTABLE_BUDGET: usize = 32 << 20;
/// One column family's memtable, before it is flushed.
const MEMTABLE_PER_FAMILY: usize = 8 << 20;

pub fn open(path: impl AsRef<Path>) -> Result<Store> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    // Recover the longest consistent prefix of the WAL after a crash: what a synced append
    // acknowledged is inside that prefix, and applied records never get ahead of the log.
    options.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    // The statistics give the WAL-sync counter the durability test reads, and later metrics.
    options.enable_statistics();
    options.set_compression_type(DBCompressionType::Lz4);
    // Memory: RocksDB's default memtable is 64 MiB per column family, two of them each, and
    // a control plane's writes are small and steady, so memtables of four families grew to
    // hundreds of MiB of a node's RSS before their first flush. A total budget flushes the
    // largest once they hold 32 MiB together; what is flushed is read back from SST files.
    options.set_db_write_buffer_size(MEMTABLE_BUDGET);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut cf = Options::default();
        cf.set_compression_type(DBCompressionType::Lz4);
        cf.set_write_buffer_size(MEMTABLE_PER_FAMILY);
        ColumnFamilyDescriptor::new(*name, cf)
    });
    let db = Arc::new(DB::open_cf_descriptors(&options, path, cfs)?);
    let timings = Timings::default();
    let log = LogStore::new(db.clone(), timings.fsync.clone())?;
    let state_machine = StateMachine::open(db, timings.apply.clone())?;
    Ok(Store {
        log,
        state_machine,
        timings,
        options,
    })
}
