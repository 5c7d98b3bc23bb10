//! The Raft log, vote and log pointers (openraft's `RaftLogStorage`).
//!
//! Concurrency: openraft drives this through `&mut self` from its core task, so writes arrive in
//! order; log readers are clones reading RocksDB directly. The WAL sync of appends runs on one
//! dedicated thread (see [`Syncer`]) so the core task never blocks on an fsync.

use std::fmt;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use drover_types::codec;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, StorageIOError};
use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::keys::{
    self, CF_LOG, CF_RAFT, LOG_END, RAFT_COMMITTED, RAFT_LAST_PURGED, RAFT_VOTE, log_key,
};
use crate::{Entry, LogId, StorageError, TypeConfig, Vote};

/// Write options that fsync the WAL before the write returns.
pub(crate) fn synced() -> WriteOptions {
    let mut w = WriteOptions::default();
    w.set_sync(true);
    w
}

pub(crate) fn cf<'a>(db: &'a DB, name: &'static str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name).ok_or(Error::MissingColumnFamily(name))
}

pub(crate) fn get_decoded<T: DeserializeOwned>(
    db: &DB,
    family: &'static str,
    key: &[u8],
) -> Result<Option<T>> {
    match db.get_cf(cf(db, family)?, key)? {
        None => Ok(None),
        Some(bytes) => codec::decode(&bytes)
            .map(Some)
            .map_err(|e| Error::corrupt(format!("{family}/{}", String::from_utf8_lossy(key)), e)),
    }
}

pub(crate) fn encoded<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>> {
    codec::encode(value).map_err(|e| Error::encode(what, e))
}

fn io_err(subject: ErrorSubject<u64>, verb: ErrorVerb, e: Error) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

/// Holds the sync thread before its next fsync while closed: a stalled disk, for the tests that
/// show an entry commits on the majority that has it durably and on no other (reached through
/// the server's fault-injection endpoint only). Open unless a test closes it.
#[derive(Clone, Debug, Default)]
pub struct FsyncGate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl FsyncGate {
    /// Stalls (`true`) or resumes (`false`) the fsyncs of appends.
    pub fn set_stalled(&self, stalled: bool) {
        let (lock, wake) = &*self.0;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = stalled;
        wake.notify_all();
    }

    pub fn stalled(&self) -> bool {
        *self.0.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait_open(&self) {
        let (lock, wake) = &*self.0;
        let mut stalled = lock.lock().unwrap_or_else(|p| p.into_inner());
        while *stalled {
            stalled = wake.wait(stalled).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// The one thread that syncs the WAL for appends, then acknowledges them.
///
/// Every request it receives was written to RocksDB before it was sent, so a `flush_wal(true)`
/// that starts after receiving it covers it; requests that queued up meanwhile share one sync.
struct Syncer {
    tx: Option<mpsc::Sender<LogFlushed<TypeConfig>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    gate: FsyncGate,
}

impl Drop for Syncer {
    /// Closes the channel and waits for the thread, so that when the last `LogStore` is gone
    /// the thread's handle on the database is gone too and the store can be reopened at once.
    fn drop(&mut self) {
        self.tx.take();
        self.gate.set_stalled(false);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Syncer {
    fn start(db: Arc<DB>, fsync: Histogram) -> io::Result<Syncer> {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let gate = FsyncGate::default();
        let held = gate.clone();
        let thread = std::thread::Builder::new()
            .name("drover-wal-sync".into())
            .spawn(move || {
                // Ends when every LogStore clone (and so every sender) is dropped.
                while let Ok(first) = rx.recv() {
                    held.wait_open();
                    let mut waiting = vec![first];
                    waiting.extend(rx.try_iter());
                    // The fsync that makes the appends durable; only after it do we tell
                    // openraft they are.
                    let started = Instant::now();
                    let result = db.flush_wal(true);
                    fsync.observe(started.elapsed().as_secs_f64());
                    for callback in waiting {
                        callback.log_io_completed(
                            result
                                .as_ref()
                                .map(|_| ())
                                .map_err(|e| io::Error::other(e.to_string())),
                        );
                    }
                }
            })?;
        Ok(Syncer {
            tx: Some(tx),
            thread: Some(thread),
            gate,
        })
    }
}

/// The Raft log store. Cloning it is cheap; clones share the database and the sync thread.
#[derive(Clone)]
pub struct LogStore {
    pub(crate) db: Arc<DB>,
    syncer: Arc<Syncer>,
    /// The last committed index openraft told us, for status reporting (0 before any).
    committed_index: Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for LogStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

impl LogStore {
    pub(crate) fn new(db: Arc<DB>, fsync: Histogram) -> Result<LogStore> {
        let syncer = Syncer::start(db.clone(), fsync)
            .map_err(|e| Error::Inconsistent(format!("cannot start the WAL sync thread: {e}")))?;
        let committed: Option<LogId> = get_decoded(&db, CF_RAFT, RAFT_COMMITTED)?;
        let committed_index = committed.map_or(0, |c| c.index);
        Ok(LogStore {
            db,
            syncer: Arc::new(syncer),
            committed_index: Arc::new(std::sync::atomic::AtomicU64::new(committed_index)),
        })
    }

    /// The switch that stalls this store's fsyncs of appends (fault injection).
    pub fn fsync_gate(&self) -> FsyncGate {
        self.syncer.gate.clone()
    }

    /// A shared view of the last committed index openraft reported to this store.
    pub fn committed_index(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.committed_index.clone()
    }

    fn decode_entry(key: &[u8], value: &[u8]) -> Result<Entry> {
        let index =
            keys::log_index(key).ok_or_else(|| Error::CorruptLogKey { key: key.to_vec() })?;
        let entry: Entry = codec::decode(value).map_err(|e| Error::CorruptEntry {
            index,
            source: Arc::new(e),
        })?;
        if entry.log_id.index != index {
            return Err(Error::MisplacedEntry {
                key: index,
                found: entry.log_id.index,
            });
        }
        Ok(entry)
    }

    /// Entries with indexes in `range`, in order.
    pub fn entries(&self, range: impl RangeBounds<u64>) -> Result<Vec<Entry>> {
        let start = match range.start_bound() {
            Bound::Included(&x) => x,
            Bound::Excluded(&x) => x.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let from = log_key(start);
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            cf(&self.db, CF_LOG)?,
            IteratorMode::From(&from, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            let index =
                keys::log_index(&key).ok_or_else(|| Error::CorruptLogKey { key: key.to_vec() })?;
            if !range.contains(&index) {
                break;
            }
            out.push(Self::decode_entry(&key, &value)?);
        }
        Ok(out)
    }

    /// The last entry's log id (or the last purged one when the log is empty) and the last
    /// purged log id.
    pub fn log_state(&self) -> Result<(Option<LogId>, Option<LogId>)> {
        let last_purged: Option<LogId> = get_decoded(&self.db, CF_RAFT, RAFT_LAST_PURGED)?;
        let last = match self
            .db
            .iterator_cf(cf(&self.db, CF_LOG)?, IteratorMode::End)
            .next()
        {
            None => last_purged,
            Some(item) => {
                let (key, value) = item?;
                Some(Self::decode_entry(&key, &value)?.log_id)
            }
        };
        Ok((last, last_purged))
    }

    pub fn vote(&self) -> Result<Option<Vote>> {
        get_decoded(&self.db, CF_RAFT, RAFT_VOTE)
    }

    pub fn committed(&self) -> Result<Option<LogId>> {
        get_decoded(&self.db, CF_RAFT, RAFT_COMMITTED)
    }

    fn write_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<()> {
        let family = cf(&self.db, CF_LOG)?;
        let mut batch = WriteBatch::default();
        for entry in entries {
            batch.put_cf(
                family,
                log_key(entry.log_id.index),
                encoded("log entry", &entry)?,
            );
        }
        // Not synced here: the Syncer's flush_wal(true) makes it durable before the callback.
        // Written now so the entries are readable when append returns, as openraft requires.
        self.db.write(batch)?;
        Ok(())
    }

    fn write_vote(&self, vote: &Vote) -> Result<()> {
        // Synced: a vote must survive a crash, or this node could vote twice in one term.
        self.db.put_cf_opt(
            cf(&self.db, CF_RAFT)?,
            RAFT_VOTE,
            encoded("vote", vote)?,
            &synced(),
        )?;
        Ok(())
    }

    fn write_truncate(&self, from: u64) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.delete_range_cf(cf(&self.db, CF_LOG)?, &log_key(from)[..], &LOG_END[..]);
        // Synced: entries removed by a new leader must not reappear after a crash, where they
        // could be mistaken for entries of the new term's log.
        self.db.write_opt(batch, &synced())?;
        Ok(())
    }

    fn write_purge(&self, upto: &LogId) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_RAFT)?,
            RAFT_LAST_PURGED,
            encoded("log id", upto)?,
        );
        batch.delete_range_cf(
            cf(&self.db, CF_LOG)?,
            log_key(0),
            log_key(upto.index.saturating_add(1)),
        );
        // Not synced: a purge lost in a crash only brings back entries a snapshot already
        // covers, together with the older last-purged id (one batch, so never one without the
        // other).
        self.db.write(batch)?;
        Ok(())
    }

    /// Adds to `batch` what makes the log empty and purged up to `at`, with `at` committed:
    /// the log's side of seeding a store with a state at `at` (see `seed.rs`).
    pub(crate) fn seed_into(&self, batch: &mut WriteBatch, at: &LogId) -> Result<()> {
        batch.delete_range_cf(cf(&self.db, CF_LOG)?, &log_key(0)[..], &LOG_END[..]);
        let raft = cf(&self.db, CF_RAFT)?;
        batch.put_cf(raft, RAFT_LAST_PURGED, encoded("log id", at)?);
        batch.put_cf(raft, RAFT_COMMITTED, encoded("log id", at)?);
        self.committed_index
            .fetch_max(at.index, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn write_committed(&self, committed: Option<&LogId>) -> Result<()> {
        let family = cf(&self.db, CF_RAFT)?;
        if let Some(c) = committed {
            self.committed_index
                .fetch_max(c.index, std::sync::atomic::Ordering::Relaxed);
        }
        // Not synced: openraft treats the committed id as a hint for re-applying on restart.
        match committed {
            Some(c) => self
                .db
                .put_cf(family, RAFT_COMMITTED, encoded("log id", c)?)?,
            None => self.db.delete_cf(family, RAFT_COMMITTED)?,
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + fmt::Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.entries(range)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (last_log_id, last_purged_log_id) = self
            .log_state()
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_vote(vote)
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.vote()
            .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Read, e))
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_committed(committed.as_ref())
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        self.committed()
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Read, e))
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.write_entries(entries)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        // Acknowledged only by the sync thread, after the fsync.
        let sender = self.syncer.tx.as_ref().ok_or(Error::SyncerGone);
        sender
            .and_then(|tx| tx.send(callback).map_err(|_| Error::SyncerGone))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "truncate log from here on");
        self.write_truncate(log_id.index)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        tracing::debug!(%log_id, "purge log up to here");
        self.write_purge(&log_id)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
    }
}
