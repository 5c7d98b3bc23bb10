//! Drover's Raft plumbing: the openraft configuration, and the Raft RPC transport over HTTP —
//! a pooled `reqwest` client on the sending side ([`Transport`]) and axum routes on the
//! receiving side ([`routes`]). Bodies are the same codec as the log (format byte + bincode);
//! every RPC carries the cluster id and the cluster secret, checked before anything is decoded.

mod faults;
mod routes;
mod transport;

use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

pub use drover_store::{Node, NodeId, SnapshotPolicy, TypeConfig};
pub use faults::{Faults, PeerFault};
pub use routes::routes;
pub use transport::{RpcLabels, RpcTimings, Transport};

/// A running Raft node of Drover.
pub type Raft = openraft::Raft<TypeConfig>;

/// Header naming the cluster an RPC belongs to.
pub const CLUSTER_ID_HEADER: &str = "x-drover-cluster-id";
/// Header carrying the cluster secret.
pub const CLUSTER_SECRET_HEADER: &str = "x-drover-cluster-secret";

/// Who may talk Raft to this node: peers presenting the same cluster id and secret.
#[derive(Clone, Debug)]
pub struct Peering {
    pub cluster_id: String,
    /// No secret means open peering (a development cluster); the server logs it loudly.
    pub secret: Option<String>,
}

impl Peering {
    /// Whether the presented id and secret match ours. The secret is compared in time
    /// independent of where it differs.
    pub fn admits(
        &self,
        cluster_id: Option<&str>,
        secret: Option<&str>,
    ) -> Result<(), &'static str> {
        if cluster_id != Some(self.cluster_id.as_str()) {
            return Err("wrong or missing cluster id");
        }
        match &self.secret {
            None => Ok(()),
            Some(ours) => {
                let theirs = secret.unwrap_or("").as_bytes();
                let same: bool = ours.as_bytes().ct_eq(theirs).into();
                if !same {
                    Err("wrong or missing cluster secret")
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Raft timing and snapshot settings (SPEC §3 defaults: heartbeat 100 ms, election timeout
/// randomized in 500–1000 ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RaftOptions {
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// The leader fsyncs its own append before replicating it, as stock openraft 0.9 does,
    /// instead of in parallel (`openraft::Config::parallel_leader_append`, our patch): kept to
    /// measure one against the other.
    pub serial_append: bool,
    /// The leader answers linearizable reads from its lease while it holds one
    /// (`openraft::Config::lease_read_ms`, our patch), instead of with a heartbeat round each.
    pub lease_reads: bool,
    /// How long a commit index waits for an entry to carry it to a follower before it is sent
    /// alone (`openraft::Config::commit_linger_ms`, our patch).
    pub commit_linger: Duration,
    /// DANGEROUS, tests only: the read lease a hundred times as long as the followers' lease.
    pub unsafe_long_read_lease: bool,
    pub snapshot: SnapshotPolicy,
    /// Largest Raft RPC body accepted, in bytes (a snapshot chunk or an append batch).
    pub max_rpc_bytes: usize,
}

impl Default for RaftOptions {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(500),
            election_timeout_max: Duration::from_millis(1000),
            serial_append: false,
            lease_reads: true,
            commit_linger: Duration::from_millis(2),
            unsafe_long_read_lease: false,
            snapshot: SnapshotPolicy::default(),
            max_rpc_bytes: 64 << 20,
        }
    }
}

impl RaftOptions {
    /// How long a proposal may wait to commit before it is answered "outcome unknown": etcd's
    /// request timeout, 5 s plus two election timeouts (7 s by default). A healthy cluster
    /// commits in milliseconds; a leader cut off from its peers never does, and its clients
    /// should hear so and retry elsewhere rather than wait for the partition to heal.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + self.election_timeout_max * 2
    }

    /// How long after a quorum's acknowledgement the leader answers reads from its lease, for
    /// a follower lease of `lease` ms; 0 when lease reads are off.
    fn read_lease_ms(&self, lease: u64) -> u64 {
        match (self.lease_reads, self.unsafe_long_read_lease) {
            (_, true) => lease * 100,
            (false, false) => 0,
            (true, false) => lease * 4 / 5,
        }
    }

    /// The validated openraft configuration.
    ///
    /// Our election timeout is the SPEC's: how long a follower hears no leader before it
    /// campaigns. openraft 0.9 waits longer than its own `election_timeout`: a follower first
    /// lets the leader's lease run out (the lease is openraft's `election_timeout_max`), then its
    /// randomized timeout — `lease + [min, max)`, and it refuses votes during the lease. Passing
    /// the SPEC's 500–1000 ms through unchanged made followers campaign after 1.5–2 s. So we
    /// solve for openraft's values: `max = ours_max / 2` (the lease) and `min = ours_min − max`
    /// (at least just over a heartbeat), which makes the effective timeout fall in
    /// `[max(ours_min, lease + heartbeat), ours_max]` — 601–1000 ms by default.
    ///
    /// The read lease is 4/5 of that lease (400 ms by default): a follower that acknowledged
    /// the leader neither votes nor campaigns for the whole lease after, so no other leader
    /// exists before it runs out; the fifth left over covers clocks running at different rates.
    pub fn openraft_config(&self, cluster_name: &str) -> Result<Arc<openraft::Config>, String> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let (min, max) = (ms(self.election_timeout_min), ms(self.election_timeout_max));
        let heartbeat = ms(self.heartbeat);
        let lease = max / 2;
        let first = min.saturating_sub(lease).max(heartbeat + 1);
        let mut config = openraft::Config {
            cluster_name: cluster_name.to_owned(),
            heartbeat_interval: heartbeat,
            election_timeout_min: first,
            election_timeout_max: lease,
            // Snapshot chunks must fit under the receiver's body limit with room for framing.
            snapshot_max_chunk_size: u64::try_from(self.max_rpc_bytes / 2).unwrap_or(u64::MAX),
            // An entry commits once any majority has fsynced it, the leader's own fsync running
            // beside the followers' (docs/architecture.md, "One fsync on the write path").
            parallel_leader_append: !self.serial_append,
            lease_read_ms: self.read_lease_ms(lease),
            // A lone writer's next entry comes well within this and carries the commit index;
            // sent at once, an empty append holds the stream when that entry arrives
            // (docs/architecture.md, "Commit linger").
            commit_linger_ms: ms(self.commit_linger),
            ..Default::default()
        };
        self.snapshot.apply_to(&mut config);
        config
            .validate()
            .map(Arc::new)
            .map_err(|e| format!("invalid raft settings: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// openraft campaigns after `lease + random[min, max)` with `lease = max`: the mapping keeps
    /// that inside the SPEC's election timeout range.
    #[test]
    fn effective_election_timeout_stays_in_the_spec_range() {
        let opts = RaftOptions::default();
        let c = opts.openraft_config("t").unwrap();
        let lease = c.election_timeout_max;
        let (earliest, latest) = (
            lease + c.election_timeout_min,
            lease + c.election_timeout_max,
        );
        assert!(earliest >= 500 && latest <= 1000, "{earliest}..{latest}");
        assert!(c.election_timeout_min > c.heartbeat_interval);
        // Reads trust the lease for less than the followers keep it.
        assert!(
            c.lease_read_ms > 0 && c.lease_read_ms < lease,
            "{}",
            c.lease_read_ms
        );
        // Settings that leave no room are refused with a clear error, not silently changed.
        let tight = RaftOptions {
            election_timeout_min: Duration::from_millis(150),
            election_timeout_max: Duration::from_millis(200),
            ..RaftOptions::default()
        };
        assert!(tight.openraft_config("t").is_err());
    }
}
