//! The applied Drover state machine (openraft's `RaftStateMachine`) and its snapshots.
//!
//! The state lives in memory behind a `std::sync::RwLock` (never held across an `.await`):
//! apply takes the write lock for one batch of entries, readers (the API) take the read lock.
//! Each batch is persisted as the records it touched plus a header with the applied log id and
//! membership, in one RocksDB write batch, so the applied state and applied index never diverge
//! on disk.

use std::collections::HashMap;
use std::collections::VecDeque;
use std::fmt;
use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::time::Instant;

use drover_types::{
    Brakes, Changes, ClusterState, Command, DrainIntent, Event, KvEntry, Partition, Response,
    Settings, Table, Worker, WorkerId, apply_proposal, codec,
};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftSnapshotBuilder,
    StorageIOError,
};
use prometheus_client::metrics::histogram::Histogram;
use rocksdb::{DB, Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::{self, CF_SM, CF_SNAPSHOT, Kind, SM_END, SM_START, SNAPSHOT_CURRENT};
use crate::log_store::{cf, encoded, get_decoded, synced};
use crate::{Entry, LogId, Reply, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// The applied state with the Raft position it reflects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub state: ClusterState,
    pub last_applied: Option<LogId>,
    pub membership: StoredMembership,
}

/// The singleton record of the state machine family.
#[derive(Debug, Serialize, Deserialize)]
struct Header {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    version: u64,
    settings: Settings,
    table: Option<Table>,
    events_next_seq: u64,
    /// The scheduler's brakes (SPEC §3): small, and in the header written with every batch.
    brakes: Brakes,
}

/// The current snapshot as stored: openraft's metadata and our encoded state.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// When this node applied what the lease rules depend on (SPEC §1 "What makes the lease
/// sound"): the last settings change and each worker's current generation. Soft and per node:
/// never persisted, never replicated. A node applies an entry only after it committed, so each
/// time here is an upper bound on the commit time, which is what the rules need. What was
/// applied before this process opened the store, or came with an installed snapshot, is dated
/// at that moment (`baseline`) — later than its commit, so still an upper bound.
#[derive(Debug)]
pub struct ApplyClock {
    baseline: Instant,
    settings: Option<Instant>,
    generations: HashMap<WorkerId, (u64, Instant)>,
}

impl ApplyClock {
    /// A clock for a store opened (or a snapshot installed) at `now`.
    pub fn new_at(now: Instant) -> ApplyClock {
        ApplyClock {
            baseline: now,
            settings: None,
            generations: HashMap::new(),
        }
    }

    /// When this node applied the current settings.
    pub fn settings_applied(&self) -> Instant {
        self.settings.unwrap_or(self.baseline)
    }

    /// When this node applied `worker`'s registration at `generation`.
    pub fn generation_applied(&self, worker: &WorkerId, generation: u64) -> Instant {
        match self.generations.get(worker) {
            Some((g, at)) if *g == generation => *at,
            _ => self.baseline,
        }
    }

    /// Notes what one applied command changed that the lease rules care about.
    fn note(&mut self, command: &Command, response: &Response, now: Instant) {
        match (command, response) {
            (Command::UpdateSettings { .. }, _) => self.settings = Some(now),
            (Command::Register(_), Response::Worker(w)) => {
                self.generations.insert(w.id.clone(), (w.generation, now));
            }
            _ => {}
        }
    }

    /// After a snapshot replaced the state: everything in it is dated now.
    fn reset(&mut self, now: Instant) {
        *self = ApplyClock::new_at(now);
    }
}

thread_local! {
    /// Guards of the state lock this thread holds (0 or 1; debug builds check).
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// This thread's hold on the state lock, counted from before the lock is taken (a second
/// `read()` on one thread deadlocks behind a waiting writer) until its guard drops.
#[derive(Debug)]
struct Held;

impl Held {
    fn take() -> Held {
        let before = HELD.with(|h| h.replace(h.get() + 1));
        debug_assert!(
            before == 0,
            "the state lock taken again by a thread that holds it: with an apply waiting \
             between the two, this thread and then the runtime deadlock"
        );
        Held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
    }
}

/// A guard of the state lock, counted in this thread's [`Held`] while it lives.
#[derive(Debug)]
pub struct Counted<G> {
    guard: G,
    _held: Held,
}

/// A read guard of the applied state (see [`StateHandle::read`]).
pub type StateRead<'a> = Counted<RwLockReadGuard<'a, Applied>>;
/// The write guard apply and snapshot installation take.
type StateWrite<'a> = Counted<RwLockWriteGuard<'a, Applied>>;

impl<G: std::ops::Deref<Target = Applied>> std::ops::Deref for Counted<G> {
    type Target = Applied;
    fn deref(&self) -> &Applied {
        &self.guard
    }
}

impl<G: std::ops::DerefMut<Target = Applied>> std::ops::DerefMut for Counted<G> {
    fn deref_mut(&mut self) -> &mut Applied {
        &mut self.guard
    }
}

/// Shared read access to the applied state, for the API and the scheduler.
#[derive(Clone, Debug)]
pub struct StateHandle {
    applied: Arc<RwLock<Applied>>,
    clock: Arc<Mutex<ApplyClock>>,
}

impl StateHandle {
    /// Reads the applied state. Do not hold the guard across an `.await`: apply waits for it.
    /// Nor take it twice on one thread (two `read()`s in one expression hold both): std's
    /// `RwLock` is writer-preferring, so an apply waiting between the two deadlocks the thread,
    /// and then the runtime. Debug builds panic on a second guard instead.
    pub fn read(&self) -> StateRead<'_> {
        let held = Held::take();
        // A panic while holding the lock cannot leave the state half-applied in a way a reader
        // could misuse more than a crash would: apply validates before it mutates.
        let guard = self
            .applied
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StateRead { guard, _held: held }
    }

    fn write(&self) -> StateWrite<'_> {
        let held = Held::take();
        let guard = self
            .applied
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        StateWrite { guard, _held: held }
    }

    /// When this node applied what the lease rules depend on. Held only for lookups; taken
    /// after the state lock by apply, so never take the state lock while holding it.
    pub fn clock(&self) -> MutexGuard<'_, ApplyClock> {
        self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The state machine half of the store.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<DB>,
    applied: StateHandle,
    snapshots_built: Arc<AtomicU64>,
    snapshots_installed: Arc<AtomicU64>,
    /// The applied state version, published after every applied batch, for long polls.
    versions: Arc<tokio::sync::watch::Sender<u64>>,
    /// The state version of the last applied change to a record the planner reads (workers,
    /// partitions, drains, the table, settings) — not KV writes, which the scheduler ignores.
    placement: Arc<tokio::sync::watch::Sender<u64>>,
    /// Per worker, the state version of the last applied change to its record (its
    /// assignments among them), for the long polls that wait on one worker each.
    workers: Arc<WorkerWatch>,
    /// Seconds per applied batch.
    apply_seconds: Histogram,
}

/// Change notices per worker: a long poll waits on its own worker's channel, so an applied
/// batch wakes the waiters of the workers it changed, not every waiter of the node (10,000
/// agents each holding a long poll would otherwise be woken, and take the state's read lock,
/// on every applied entry).
#[derive(Debug, Default)]
struct WorkerWatch {
    senders: Mutex<HashMap<WorkerId, tokio::sync::watch::Sender<u64>>>,
}

impl WorkerWatch {
    fn senders(&self) -> MutexGuard<'_, HashMap<WorkerId, tokio::sync::watch::Sender<u64>>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(&self, id: &WorkerId, version: u64) -> tokio::sync::watch::Receiver<u64> {
        self.senders()
            .entry(id.clone())
            .or_insert_with(|| tokio::sync::watch::Sender::new(version))
            .subscribe()
    }

    /// Tells the waiters of `changed` that their worker changed at `version`; forgets the
    /// channels nobody waits on any more.
    fn notify<'a>(&self, changed: impl IntoIterator<Item = &'a WorkerId>, version: u64) {
        let mut senders = self.senders();
        for id in changed {
            let Some(tx) = senders.get(id) else { continue };
            if tx.receiver_count() == 0 {
                senders.remove(id);
            } else {
                tx.send_replace(version);
            }
        }
    }

    /// Forgets `id`'s channel if nobody waits on it (a wait that ended, for a worker that may
    /// never change: an id that does not exist).
    fn prune(&self, id: &WorkerId) {
        let mut senders = self.senders();
        if senders.get(id).is_some_and(|tx| tx.receiver_count() == 0) {
            senders.remove(id);
        }
    }

    /// Every waiter: the whole state was replaced (a snapshot installed).
    fn notify_all(&self, version: u64) {
        let mut senders = self.senders();
        senders.retain(|_, tx| tx.receiver_count() > 0);
        for tx in senders.values() {
            tx.send_replace(version);
        }
    }
}

impl fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMachine")
            .field("last_applied", &self.applied.read().last_applied)
            .finish_non_exhaustive()
    }
}

fn sm_err(verb: ErrorVerb, e: Error) -> StorageError {
    StorageIOError::new(ErrorSubject::StateMachine, verb, AnyError::new(&e)).into()
}

fn snapshot_err(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: Error) -> StorageError {
    let subject = ErrorSubject::Snapshot(meta.map(|m| m.signature()));
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn put_or_delete<T: Serialize>(
    batch: &mut WriteBatch,
    family: &rocksdb::ColumnFamily,
    key: Vec<u8>,
    what: &'static str,
    value: Option<&T>,
) -> Result<()> {
    match value {
        Some(v) => batch.put_cf(family, key, encoded(what, v)?),
        None => batch.delete_cf(family, key),
    }
    Ok(())
}

fn write_header(batch: &mut WriteBatch, family: &rocksdb::ColumnFamily, a: &Applied) -> Result<()> {
    let header = Header {
        last_applied: a.last_applied,
        membership: a.membership.clone(),
        version: a.state.version,
        settings: a.state.settings.clone(),
        table: a.state.table.clone(),
        events_next_seq: a.state.events.next_seq,
        brakes: a.state.brakes.clone(),
    };
    batch.put_cf(
        family,
        keys::header_key(),
        encoded("state header", &header)?,
    );
    Ok(())
}

/// Adds to `batch` the records named in `changes`, as they are in `a`, and the header.
/// `events_before` is the (first, next) event sequence before the entries were applied.
fn write_changes(
    batch: &mut WriteBatch,
    family: &rocksdb::ColumnFamily,
    a: &Applied,
    changes: &Changes,
    events_before: (u64, u64),
) -> Result<()> {
    let s = &a.state;
    for id in &changes.workers {
        put_or_delete(
            batch,
            family,
            keys::worker_key(id),
            "worker",
            s.workers.get(id),
        )?;
    }
    for id in &changes.tombstones {
        put_or_delete(
            batch,
            family,
            keys::tombstone_key(id),
            "tombstone",
            s.tombstones.get(id),
        )?;
    }
    for &p in &changes.partitions {
        put_or_delete(
            batch,
            family,
            keys::partition_key(p),
            "partition",
            s.partition(p),
        )?;
    }
    for k in &changes.kv {
        put_or_delete(batch, family, keys::kv_key(k), "kv entry", s.kv.get(k))?;
    }
    for d in &changes.drains {
        put_or_delete(batch, family, keys::drain_key(*d), "drain", s.drains.get(d))?;
    }
    if changes.events {
        let (first_before, next_before) = events_before;
        let first_now = s.events.first_seq();
        if first_now > first_before {
            batch.delete_range_cf(
                family,
                keys::event_key(first_before),
                keys::event_key(first_now),
            );
        }
        for e in s.events.events.iter().filter(|e| e.seq >= next_before) {
            batch.put_cf(family, keys::event_key(e.seq), encoded("event", e)?);
        }
    }
    write_header(batch, family, a)
}

/// Adds every record of `a` to `batch`, after deleting whatever the family held.
fn write_everything(
    batch: &mut WriteBatch,
    family: &rocksdb::ColumnFamily,
    a: &Applied,
) -> Result<()> {
    batch.delete_range_cf(family, SM_START, SM_END);
    let s = &a.state;
    for (id, w) in &s.workers {
        batch.put_cf(family, keys::worker_key(id), encoded("worker", w)?);
    }
    for (id, g) in &s.tombstones {
        batch.put_cf(family, keys::tombstone_key(id), encoded("tombstone", g)?);
    }
    for p in &s.partitions {
        batch.put_cf(family, keys::partition_key(p.id), encoded("partition", p)?);
    }
    for (k, e) in &s.kv {
        batch.put_cf(family, keys::kv_key(k), encoded("kv entry", e)?);
    }
    for (id, d) in &s.drains {
        batch.put_cf(family, keys::drain_key(*id), encoded("drain", d)?);
    }
    for e in &s.events.events {
        batch.put_cf(family, keys::event_key(e.seq), encoded("event", e)?);
    }
    write_header(batch, family, a)
}

fn decode<T: serde::de::DeserializeOwned>(what: &str, key: &[u8], value: &[u8]) -> Result<T> {
    codec::decode(value).map_err(|e| Error::corrupt(format!("{what} record {key:?}"), e))
}

fn utf8(key: &[u8]) -> Result<String> {
    String::from_utf8(key.to_vec())
        .map_err(|_| Error::Inconsistent(format!("record key {key:?} is not UTF-8")))
}

/// Reads the applied state back from its records.
fn load(db: &DB) -> Result<Applied> {
    let family = cf(db, CF_SM)?;
    let mut a = Applied::default();
    let mut events = VecDeque::new();
    let mut partitions: Vec<Partition> = Vec::new();
    let mut header: Option<Header> = None;
    for item in db.iterator_cf(family, IteratorMode::From(&SM_START, Direction::Forward)) {
        let (key, value) = item?;
        let (&kind, body) = key
            .split_first()
            .ok_or_else(|| Error::Inconsistent("empty record key".into()))?;
        let s = &mut a.state;
        match Kind::from_byte(kind) {
            Some(Kind::Header) => header = Some(decode("header", &key, &value)?),
            Some(Kind::Worker) => {
                let w: Worker = decode("worker", &key, &value)?;
                s.workers.insert(WorkerId(utf8(body)?), w);
            }
            Some(Kind::Tombstone) => {
                let g: u64 = decode("tombstone", &key, &value)?;
                s.tombstones.insert(WorkerId(utf8(body)?), g);
            }
            Some(Kind::Partition) => {
                let p: Partition = decode("partition", &key, &value)?;
                if usize::try_from(p.id).ok() != Some(partitions.len()) {
                    return Err(Error::Inconsistent(format!(
                        "partition {} stored where {} belongs",
                        p.id,
                        partitions.len()
                    )));
                }
                partitions.push(p);
            }
            Some(Kind::Kv) => {
                let e: KvEntry = decode("kv", &key, &value)?;
                s.kv.insert(utf8(body)?, e);
            }
            Some(Kind::Drain) => {
                let d: DrainIntent = decode("drain", &key, &value)?;
                s.drains.insert(d.id, d);
            }
            Some(Kind::Event) => {
                let e: Event = decode("event", &key, &value)?;
                events.push_back(e);
            }
            None => {
                return Err(Error::Inconsistent(format!(
                    "unknown record kind {kind:#x}"
                )));
            }
        }
    }
    if let Some(h) = header {
        a.last_applied = h.last_applied;
        a.membership = h.membership;
        a.state.version = h.version;
        a.state.settings = h.settings;
        a.state.table = h.table;
        a.state.events.next_seq = h.events_next_seq;
        a.state.brakes = h.brakes;
    }
    a.state.partitions = partitions;
    a.state.events.events = events;
    Ok(a)
}

impl StateMachine {
    pub(crate) fn open(db: Arc<DB>, apply_seconds: Histogram) -> Result<StateMachine> {
        let applied = load(&db)?;
        let (versions, _) = tokio::sync::watch::channel(applied.state.version);
        let (placement, _) = tokio::sync::watch::channel(applied.state.version);
        Ok(StateMachine {
            versions: Arc::new(versions),
            placement: Arc::new(placement),
            workers: Arc::new(WorkerWatch::default()),
            db,
            applied: StateHandle {
                applied: Arc::new(RwLock::new(applied)),
                clock: Arc::new(Mutex::new(ApplyClock::new_at(Instant::now()))),
            },
            snapshots_built: Arc::new(AtomicU64::new(0)),
            snapshots_installed: Arc::new(AtomicU64::new(0)),
            apply_seconds,
        })
    }

    /// Snapshots received from a leader and installed since this process opened the store.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed.load(Ordering::SeqCst)
    }

    /// Follows the applied state version: changes after every applied batch that changed it.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// Follows the changes to one worker's record: the receiver sees a new value whenever an
    /// applied entry changed it (or a snapshot replaced the state). Subscribe before reading
    /// the state, so a change in between is not missed.
    pub fn subscribe_worker(&self, id: &WorkerId) -> tokio::sync::watch::Receiver<u64> {
        let version = self.applied.read().state.version;
        self.workers.subscribe(id, version)
    }

    /// Ends a wait that [`Self::subscribe_worker`] began (its receiver dropped): the channel
    /// goes once nobody else waits on it.
    pub fn unsubscribe_worker(&self, id: &WorkerId, changes: tokio::sync::watch::Receiver<u64>) {
        drop(changes);
        self.workers.prune(id);
    }

    /// Follows the version of the last applied change the planner cares about (see
    /// `Changes::touch_placement`): the scheduling loop wakes on it, not on every KV write.
    pub fn subscribe_placement(&self) -> tokio::sync::watch::Receiver<u64> {
        self.placement.subscribe()
    }

    /// Shared read access to the applied state.
    pub fn handle(&self) -> StateHandle {
        self.applied.clone()
    }

    /// Applies a batch of entries and persists what they changed, atomically with the applied
    /// log id.
    pub fn apply_entries(&self, entries: impl IntoIterator<Item = Entry>) -> Result<Vec<Reply>> {
        let mut a = self.applied.write();
        let mut clock = self.applied.clock();
        let started = std::time::Instant::now();
        let events_before = (a.state.events.first_seq(), a.state.events.next_seq);
        let (replies, changes) = apply_to(&mut a, entries, &mut clock, Instant::now());
        let family = cf(&self.db, CF_SM)?;
        let mut batch = WriteBatch::default();
        write_changes(&mut batch, family, &a, &changes, events_before)?;
        // Not synced: see the crate doc. The entries are durable in the log, which is purged
        // only behind a snapshot, and WAL recovery keeps a prefix, so a lost write here is
        // re-applied from the log on restart.
        self.db.write(batch)?;
        self.apply_seconds.observe(started.elapsed().as_secs_f64());
        let version = a.state.version;
        drop(clock);
        drop(a);
        // After the lock is released, so woken readers find the new state.
        self.versions
            .send_if_modified(|v| std::mem::replace(v, version) != version);
        self.workers.notify(&changes.workers, version);
        if changes.touch_placement() {
            self.placement
                .send_if_modified(|v| std::mem::replace(v, version) != version);
        }
        Ok(replies)
    }

    /// The applied state as it would be after `entries`, computed in memory: nothing is
    /// written, and the state machine itself is unchanged.
    pub fn applied_after(&self, entries: impl IntoIterator<Item = Entry>) -> Applied {
        let mut a = self.applied.read().clone();
        let now = Instant::now();
        apply_to(&mut a, entries, &mut ApplyClock::new_at(now), now);
        a
    }

    /// The current snapshot, if one was built or installed.
    pub fn current_snapshot(&self) -> Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let stored: Option<StoredSnapshot> = get_decoded(&self.db, CF_SNAPSHOT, SNAPSHOT_CURRENT)?;
        Ok(stored.map(|s| (s.meta, s.data)))
    }

    /// Replaces the applied state with a snapshot's and makes it the current snapshot.
    pub fn install(&self, meta: &SnapshotMeta, data: Vec<u8>) -> Result<()> {
        self.install_with(meta, data, WriteBatch::default())
    }

    /// [`install`](Self::install), in one synced write with what `batch` already holds (the
    /// log's side of seeding a store).
    pub(crate) fn install_with(
        &self,
        meta: &SnapshotMeta,
        data: Vec<u8>,
        mut batch: WriteBatch,
    ) -> Result<()> {
        let state: ClusterState =
            codec::decode(&data).map_err(|e| Error::corrupt("snapshot data", e))?;
        let installed = Applied {
            state,
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
        };
        write_everything(&mut batch, cf(&self.db, CF_SM)?, &installed)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        batch.put_cf(
            cf(&self.db, CF_SNAPSHOT)?,
            SNAPSHOT_CURRENT,
            encoded("snapshot", &stored)?,
        );
        let mut a = self.applied.write();
        // Synced: openraft purges the log behind an installed snapshot right after this, and
        // tells the leader this node holds it.
        self.db.write_opt(batch, &synced())?;
        // Counted before the state is published: whoever reads the installed state also sees
        // it counted (a reader between the two saw the new keys and a count of 0 under load).
        self.snapshots_installed.fetch_add(1, Ordering::SeqCst);
        *a = installed;
        self.applied.clock().reset(Instant::now());
        let version = a.state.version;
        drop(a);
        self.versions
            .send_if_modified(|v| std::mem::replace(v, version) != version);
        self.workers.notify_all(version);
        self.placement
            .send_if_modified(|v| std::mem::replace(v, version) != version);
        Ok(())
    }
}

/// Builds a snapshot from a copy of the state taken when openraft asked for a builder, so the
/// state machine keeps applying while the copy is encoded and stored.
pub struct SnapshotBuilder {
    db: Arc<DB>,
    applied: Applied,
    id: u64,
}

impl fmt::Debug for SnapshotBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotBuilder")
            .field("last_applied", &self.applied.last_applied)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SnapshotBuilder {
    /// Encodes the copied state and stores it as the current snapshot.
    pub fn build(&self) -> Result<(SnapshotMeta, Vec<u8>)> {
        let a = &self.applied;
        let data = encoded("snapshot data", &a.state)?;
        let snapshot_id = match a.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, self.id),
            None => format!("--{}", self.id),
        };
        let meta = SnapshotMeta {
            last_log_id: a.last_applied,
            last_membership: a.membership.clone(),
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // Not synced: the log still holds everything this snapshot covers until a purge, which
        // is written after this in the same WAL and so cannot survive a crash without it.
        self.db.put_cf(
            cf(&self.db, CF_SNAPSHOT)?,
            SNAPSHOT_CURRENT,
            encoded("snapshot", &stored)?,
        )?;
        Ok((meta, stored.data))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (meta, data) = self
            .build()
            .map_err(|e| snapshot_err(None, ErrorVerb::Write, e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.applied.read();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.apply_entries(entries)
            .map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            applied: self.applied.read().clone(),
            id: self.snapshots_built.fetch_add(1, Ordering::Relaxed),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        self.install(meta, snapshot.into_inner())
            .map_err(|e| snapshot_err(Some(meta), ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let current = self
            .current_snapshot()
            .map_err(|e| snapshot_err(None, ErrorVerb::Read, e))?;
        Ok(current.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Applies `entries` to `a` in memory, noting on `clock` (at `now`) what the lease rules
/// care about: each entry's reply, and what the entries changed, for persisting.
fn apply_to(
    a: &mut Applied,
    entries: impl IntoIterator<Item = Entry>,
    clock: &mut ApplyClock,
    now: Instant,
) -> (Vec<Reply>, Changes) {
    let mut changes = Changes::default();
    let mut replies = Vec::new();
    for entry in entries {
        a.last_applied = Some(entry.log_id);
        let reply = match entry.payload {
            EntryPayload::Blank => Reply::Internal,
            EntryPayload::Membership(m) => {
                a.membership = StoredMembership::new(Some(entry.log_id), m);
                Reply::Internal
            }
            EntryPayload::Normal(proposal) => {
                let batch = proposal.command.is_group();
                let mut answers: Vec<Reply> =
                    apply_proposal(&mut a.state, crate::position(&entry.log_id), &proposal)
                        .into_iter()
                        .map(|result| match result {
                            Ok(mut outcome) => {
                                if outcome.changed {
                                    clock.note(&proposal.command, &outcome.response, now);
                                }
                                changes.merge(std::mem::take(&mut outcome.changes));
                                Reply::Applied(Box::new(outcome))
                            }
                            Err(rejection) => Reply::Rejected(rejection),
                        })
                        .collect();
                match answers.pop() {
                    Some(single) if !batch => single,
                    last => {
                        answers.extend(last);
                        Reply::Batch(answers)
                    }
                }
            }
        };
        replies.push(reply);
    }
    (replies, changes)
}
