//! The core's own metrics — what the scheduling loop and group commit record — and the node's
//! one prometheus-client registry, which the HTTP layer adds its request metrics to and
//! encodes at `/metrics`.
//!
//! Concurrency: the registry's `std::sync::Mutex` is held only to register a family or to
//! encode, never across `.await`. The families themselves are lock-free handles.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CauseLabels {
    pub cause: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CodeLabels {
    pub code: String,
}

/// The scheduler and group-commit metrics, and the registry every family of the node is in.
pub struct Metrics {
    registry: Mutex<Registry>,
    /// Make steps this node committed as leader, by reason.
    pub(crate) moves_started: Family<ReasonLabels, Counter>,
    /// Break steps this node committed as leader, by reason (the move's source released).
    pub(crate) moves_completed: Family<ReasonLabels, Counter>,
    /// Replicas of new partitions this node placed as leader (initial placement: no move).
    pub(crate) replicas_placed: Counter,
    /// Preferred-leader changes this node committed as leader, by cause (`none`: the partition
    /// had none; `unhealthy`: its holder stopped being a healthy serving replica; `balance`).
    pub(crate) leader_changes: Family<CauseLabels, Counter>,
    /// Seconds from a drain request to its worker's Disabled, observed by the leader that
    /// committed the Disabled.
    pub(crate) drain_seconds: Histogram,
    /// KV writes per proposed log entry (group commit), observed by the leader's batcher.
    pub(crate) kv_writes_per_entry: Histogram,
    /// Changes of the Raft leader this node saw (an election it learned the result of).
    pub(crate) raft_leader_changes: Counter,
    /// Seconds a scheduling round spends planning (on a copy of the state), as leader.
    pub(crate) round_seconds: Histogram,
    /// Seconds of one shared leadership confirmation (linearizable reads and heartbeats wait
    /// for one that started after they arrived): its count is the rounds run.
    pub(crate) confirmation_seconds: Histogram,
    /// Seconds from handing a log entry to Raft to its answer, on the leader: append, the
    /// followers' append, commit and apply.
    pub(crate) write_seconds: Histogram,
    /// Seconds a KV write or acknowledgement waited in the group commit's queue before its
    /// batch was proposed.
    pub(crate) batch_wait_seconds: Histogram,
    /// Partitions the last round found blocked, by reason (`no_candidate`, `zone_constraint`,
    /// `throttled`, `awaiting_ack`); set by the leader after every round.
    pub(crate) blocked: Family<CodeLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let moves_started = Family::<ReasonLabels, Counter>::default();
        let moves_completed = Family::<ReasonLabels, Counter>::default();
        let replicas_placed = Counter::default();
        let leader_changes = Family::<CauseLabels, Counter>::default();
        // 1 s to ~9 h.
        let drain_seconds = Histogram::new(exponential_buckets(1.0, 2.0, 15));
        // 1 to 512 writes.
        let kv_writes_per_entry = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        let raft_leader_changes = Counter::default();
        // 10 µs to ~5 s.
        let round_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        let confirmation_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        let write_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        let batch_wait_seconds = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        let blocked = Family::<CodeLabels, Gauge>::default();
        let mut registry = Registry::default();
        registry.register(
            "drover_raft_leader_changes",
            "Changes of the Raft leader this node observed",
            raft_leader_changes.clone(),
        );
        registry.register(
            "drover_scheduler_round_duration_seconds",
            "Time a scheduling round spent planning, on the leader",
            round_seconds.clone(),
        );
        registry.register(
            "drover_scheduler_blocked",
            "Partitions the leader's last scheduling round found blocked, by reason",
            blocked.clone(),
        );
        registry.register(
            "drover_moves_started",
            "Make steps committed by this node as leader, by reason",
            moves_started.clone(),
        );
        registry.register(
            "drover_moves_completed",
            "Break steps (source released) committed by this node as leader, by reason",
            moves_completed.clone(),
        );
        registry.register(
            "drover_replicas_placed",
            "Replicas of new partitions placed by this node as leader (initial placement)",
            replicas_placed.clone(),
        );
        registry.register(
            "drover_preferred_leader_changes",
            "Preferred-leader changes committed by this node as leader, by cause",
            leader_changes.clone(),
        );
        registry.register(
            "drover_drain_to_disabled_seconds",
            "Time from a drain request to the worker's Disabled",
            drain_seconds.clone(),
        );
        registry.register(
            "drover_read_confirmation_duration_seconds",
            "Time of one leadership confirmation shared by the linearizable reads and heartbeats \
             waiting for it (count: rounds run)",
            confirmation_seconds.clone(),
        );
        registry.register(
            "drover_raft_write_duration_seconds",
            "Time from handing a log entry to Raft to its answer, on the leader (append, \
             replication, commit, apply)",
            write_seconds.clone(),
        );
        registry.register(
            "drover_batch_wait_duration_seconds",
            "Time a KV write or acknowledgement waited in the group commit's queue before its \
             batch was proposed",
            batch_wait_seconds.clone(),
        );
        registry.register(
            "drover_kv_writes_per_entry",
            "KV writes the leader proposed together in one log entry (group commit)",
            kv_writes_per_entry.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            moves_started,
            moves_completed,
            replicas_placed,
            leader_changes,
            drain_seconds,
            kv_writes_per_entry,
            raft_leader_changes,
            round_seconds,
            confirmation_seconds,
            write_seconds,
            batch_wait_seconds,
            blocked,
        }
    }
}

impl Metrics {
    /// Adds a family of another layer (the HTTP layer's request counters) to the registry, so
    /// one encoding shows them all.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        let mut registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        registry.register(name, help, metric);
    }

    /// Adds the store's fsync and apply latencies.
    pub fn register_store(&self, timings: &drover_store::Timings) {
        self.register(
            "drover_raft_fsync_duration_seconds",
            "Time of one WAL fsync of appended log entries (appends waiting together share one)",
            timings.fsync.clone(),
        );
        self.register(
            "drover_raft_apply_duration_seconds",
            "Time to apply one batch of committed entries to the state machine and RocksDB",
            timings.apply.clone(),
        );
    }

    /// Registers the transport's RPC round trips.
    pub fn register_transport(&self, timings: &drover_raft::RpcTimings) {
        self.register(
            "drover_raft_rpc_duration_seconds",
            "Round trip of one Raft RPC this node sent, by kind (heartbeat: an append with no \
             entries)",
            timings.round_trip.clone(),
        );
    }

    /// Appends every registered family to `out`, in OpenMetrics text.
    pub fn encode(&self, out: &mut String) {
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let _ = prometheus_client::encoding::text::encode(out, &registry);
    }
}
