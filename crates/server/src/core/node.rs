//! The handle on a running node, [`Node`]: its configuration, Raft instance, applied state and
//! the leader's soft state, with the questions every part of the core asks of them (who leads,
//! who is alive). It is built by `start.rs`; what the node does lives beside it —
//! proposals (`propose.rs`, `commit.rs`), linearizable reads (`reads.rs`), membership and
//! leadership tasks, the scheduling loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use drover_raft::{Faults, Peering, Raft};
use drover_store::{StateHandle, StateMachine};
use openraft::ServerState;
use tokio::time::Instant;

use super::batcher::Batcher;
use super::error::LeaderHint;
use super::liveness::{Heartbeats, Liveness, Timing};
use super::metrics::Metrics;
use super::read_index::ReadIndex;
use crate::clock::Clock;
use crate::config::Config;

/// What a node is made of; assembled once by `start.rs`.
pub(super) struct Inner {
    pub(super) config: Config,
    pub(super) peering: Peering,
    pub(super) raft: Raft,
    pub(super) state: StateHandle,
    pub(super) state_machine: StateMachine,
    pub(super) commit_index: Arc<AtomicU64>,
    pub(super) faults: Faults,
    /// Stalls this node's log fsyncs (fault injection).
    pub(super) fsync_gate: drover_store::FsyncGate,
    /// Bound to this node's address, for traffic to the other nodes that is not Raft's:
    /// joining, quorum probes, and the HTTP layer's forwarding to the leader.
    pub(super) peer_client: reqwest::Client,
    pub(super) metrics: Metrics,
    pub(super) heartbeats: Heartbeats,
    /// Coalesces concurrent linearizable reads onto shared leadership confirmations.
    pub(super) reads: Arc<ReadIndex>,
    /// The confirmations agents' heartbeats wait for: paced, shared by a fleet's heartbeats.
    pub(super) beats: Arc<ReadIndex>,
    /// Group-commits concurrent KV writes into shared log entries.
    pub(super) writes: Batcher,
}

/// A handle on the running node, shared by the API handlers and background tasks.
#[derive(Clone)]
pub struct Node(Arc<Inner>);

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id())
            .finish_non_exhaustive()
    }
}

impl Node {
    pub(super) fn new(inner: Inner) -> Node {
        Node(Arc::new(inner))
    }

    pub fn id(&self) -> u64 {
        self.0.config.id
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// Where this node reads the time of day (the configuration's).
    pub fn clock(&self) -> Clock {
        self.0.config.clock
    }

    /// The time of day on this node's clock, in ms since the Unix epoch: what it stamps into
    /// its proposals and compares `until`s and deadlines with.
    pub fn now_ms(&self) -> u64 {
        self.clock().now_ms()
    }

    pub fn raft(&self) -> &Raft {
        &self.0.raft
    }

    /// The cluster id and secret that Raft messages between the nodes carry.
    pub fn peering(&self) -> &Peering {
        &self.0.peering
    }

    pub(super) fn read_index(&self) -> &Arc<ReadIndex> {
        &self.0.reads
    }

    pub(super) fn heartbeat_confirmations(&self) -> &Arc<ReadIndex> {
        &self.0.beats
    }

    pub(super) fn batcher(&self) -> &Batcher {
        &self.0.writes
    }

    pub fn state(&self) -> &StateHandle {
        &self.0.state
    }

    pub fn faults(&self) -> &Faults {
        &self.0.faults
    }

    /// The switch that stalls this node's fsyncs of appended log entries (fault injection).
    pub fn fsync_gate(&self) -> &drover_store::FsyncGate {
        &self.0.fsync_gate
    }

    /// The client for this node's traffic to other nodes outside Raft (see `Inner`).
    pub fn peer_client(&self) -> &reqwest::Client {
        &self.0.peer_client
    }

    pub fn commit_index(&self) -> u64 {
        self.0.commit_index.load(Ordering::Relaxed)
    }

    pub fn snapshots_installed(&self) -> u64 {
        self.0.state_machine.snapshots_installed()
    }

    /// The leader's soft liveness state.
    pub fn heartbeats(&self) -> &Heartbeats {
        &self.0.heartbeats
    }

    /// The node's metrics registry, with the core's own families.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// The planner's view of liveness at `now` ([`Heartbeats::planner_view`]), on this node's
    /// clock. Used by the scheduling loop, drain plans and drain progress alike, so they all
    /// agree.
    pub(crate) fn planner_view(
        &self,
        s: &drover_types::ClusterState,
        clock: &drover_store::ApplyClock,
        now: Instant,
    ) -> drover_scheduler::Liveness {
        self.heartbeats().planner_view(s, clock, now, self.now_ms())
    }

    /// Waits until this leader knows whether each worker that may hold or take replicas is
    /// alive — it has heard it, or `suspect_after` has passed without — so a plan made now is the
    /// plan it would make later (a new leader's first moments would otherwise count every
    /// worker as a suspect: no candidate for anything). Bounded by `suspect_after`.
    pub(crate) async fn liveness_known(&self) {
        loop {
            let now = Instant::now();
            let unknown = {
                let guard = self.state().read();
                let s = &guard.state;
                let clock = self.state().clock();
                let t = Timing::at(&s.settings, &clock, now);
                s.workers.values().any(|w| {
                    matches!(
                        w.state,
                        drover_types::WorkerState::Active | drover_types::WorkerState::Draining
                    ) && {
                        let applied = clock.generation_applied(&w.id, w.generation);
                        self.heartbeats().liveness(w, applied, &t, now) == Liveness::Unknown
                    }
                })
            };
            if !unknown {
                return;
            }
            // Unknown turns into alive or suspect within `suspect_after`; look again soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A worker's liveness as this leader sees it at `now` (`None` on a follower: soft state).
    pub(crate) fn liveness_of(
        &self,
        s: &drover_types::ClusterState,
        w: &drover_types::Worker,
        now: Instant,
    ) -> Option<Liveness> {
        self.heartbeats().leader_since()?;
        let clock = self.state().clock();
        let t = Timing::at(&s.settings, &clock, now);
        let applied = clock.generation_applied(&w.id, w.generation);
        Some(self.heartbeats().liveness(w, applied, &t, now))
    }

    /// Follows the applied state version (for long polls).
    pub fn versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.state_machine.subscribe()
    }

    /// Waits until `look` finds what it looks for in this node's applied state, looking again
    /// after each applied change, until `deadline` (or the node stops): `Some` of what it found,
    /// or `None`. An error from `look` ends the wait with it. The requests that wait for a
    /// registration use it; a long poll waits on its worker alone ([`Self::wait_on_worker`]).
    pub(crate) async fn wait_on_state<T, E>(
        &self,
        deadline: Instant,
        look: impl FnMut(&drover_types::ClusterState) -> std::result::Result<Option<T>, E>,
    ) -> std::result::Result<Option<T>, E> {
        self.wait_on(&mut self.versions(), deadline, look).await
    }

    /// [`Self::wait_on_state`], looking again only after changes to `worker`'s record — what
    /// its assignments are part of — so a node holding thousands of long polls wakes the one
    /// an applied change concerns, not all of them.
    pub(crate) async fn wait_on_worker<T, E>(
        &self,
        worker: &drover_types::WorkerId,
        deadline: Instant,
        look: impl FnMut(&drover_types::ClusterState) -> std::result::Result<Option<T>, E>,
    ) -> std::result::Result<Option<T>, E> {
        let mut changes = self.0.state_machine.subscribe_worker(worker);
        let found = self.wait_on(&mut changes, deadline, look).await;
        self.0.state_machine.unsubscribe_worker(worker, changes);
        found
    }

    async fn wait_on<T, E>(
        &self,
        // Subscribed before the first look, so a change between the look and the wait is seen.
        versions: &mut tokio::sync::watch::Receiver<u64>,
        deadline: Instant,
        mut look: impl FnMut(&drover_types::ClusterState) -> std::result::Result<Option<T>, E>,
    ) -> std::result::Result<Option<T>, E> {
        loop {
            let found = look(&self.state().read().state)?;
            if found.is_some() {
                return Ok(found);
            }
            if !matches!(
                tokio::time::timeout_at(deadline, versions.changed()).await,
                Ok(Ok(()))
            ) {
                return Ok(None);
            }
        }
    }

    /// Follows the version of the last applied change that matters to placement.
    pub(crate) fn placement_versions(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.state_machine.subscribe_placement()
    }

    /// The id and address of `id` in the current membership.
    pub fn hint(&self, id: Option<u64>) -> Option<LeaderHint> {
        let id = id?;
        let m = self.raft().metrics().borrow().clone();
        let node = m.membership_config.membership().get_node(&id)?.clone();
        Some(LeaderHint {
            id,
            address: node.addr,
        })
    }

    /// The current leader as this node knows it.
    pub fn leader(&self) -> Option<LeaderHint> {
        let leader = self.raft().metrics().borrow().current_leader;
        self.hint(leader)
    }

    /// Whether this node is leader right now (for background tasks; requests confirm it with
    /// a quorum instead, `reads.rs`).
    pub fn is_leader(&self) -> bool {
        self.raft().metrics().borrow().state == ServerState::Leader
    }
}
