//! Partitions, their key ranges and their replica sets (SPEC §2).

use serde::{Deserialize, Serialize};

use crate::ids::{PartitionId, WorkerId};

/// An inclusive range of the u64 key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRange {
    pub start: u64,
    pub end: u64,
}

impl KeyRange {
    pub fn contains(&self, key: u64) -> bool {
        self.start <= key && key <= self.end
    }
}

const KEY_SPACE: u128 = 1 << 64;

fn range_start(i: u128, count: u128) -> u128 {
    // i ≤ count ≤ 65,536, so i·2⁶⁴ < 2⁸¹ fits in a u128.
    i * KEY_SPACE / count
}

/// Partition `i` of `count` owns `[⌊i·2⁶⁴/count⌋, ⌊(i+1)·2⁶⁴/count⌋ − 1]` (SPEC §2).
/// `count` must be non-zero and `i < count`; a zero count yields the empty-looking range 0..=0.
pub fn key_range(i: PartitionId, count: u32) -> KeyRange {
    if count == 0 {
        return KeyRange { start: 0, end: 0 };
    }
    let (i, c) = (u128::from(i), u128::from(count));
    let start = range_start(i, c);
    let end = range_start(i + 1, c).saturating_sub(1);
    KeyRange {
        start: u64::try_from(start).unwrap_or(u64::MAX),
        end: u64::try_from(end).unwrap_or(u64::MAX),
    }
}

/// The partition of `count` whose key range holds `key`.
pub fn partition_for_key(key: u64, count: u32) -> PartitionId {
    if count == 0 {
        return 0;
    }
    let c = u128::from(count);
    // ⌊key·count/2⁶⁴⌋ is the answer or one below it; step up while the next range starts at or
    // before the key.
    let mut p = u128::from(key) * c / KEY_SPACE;
    while p + 1 < c && range_start(p + 1, c) <= u128::from(key) {
        p += 1;
    }
    PartitionId::try_from(p).unwrap_or(count - 1)
}

/// A replica's role in make-before-break (SPEC §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ReplicaRole {
    /// Added; catching up until its worker acknowledges.
    Joining,
    /// Serving reads and writes.
    Serving,
    /// Being released; removed once its worker acknowledges (or dies).
    Leaving,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replica {
    pub worker: WorkerId,
    pub role: ReplicaRole,
    /// The partition epoch at which the replica took its role; acknowledgements name it.
    pub since: u64,
    /// Proposer time at which it took its role (join timeouts count from here).
    pub since_ms: u64,
    /// The epoch of the join acknowledgement that made it serving, so a repeated
    /// acknowledgement is recognized and succeeds unchanged.
    pub acked_join: Option<u64>,
    /// The replica this one was added to replace (the move's source), so the break step
    /// releases exactly that one.
    pub replaces: Option<WorkerId>,
}

impl Replica {
    /// A joining replica on `worker` since epoch `since` (at `since_ms`), replacing `replaces`.
    pub fn joining(
        worker: WorkerId,
        since: u64,
        since_ms: u64,
        replaces: Option<WorkerId>,
    ) -> Self {
        Replica {
            worker,
            role: ReplicaRole::Joining,
            since,
            since_ms,
            acked_join: None,
            replaces,
        }
    }
}

/// A release acknowledgement already applied, kept so that its retry succeeds unchanged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Release {
    pub worker: WorkerId,
    pub since: u64,
}

/// How many applied releases a partition remembers for idempotent retries.
pub const RECENT_RELEASES: usize = 8;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Partition {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub id: PartitionId,
    pub key_range: KeyRange,
    pub replication_factor: u8,
    pub replicas: Vec<Replica>,
    /// Preferred leader: a healthy serving replica, or none until the scheduler picks one.
    pub leader: Option<WorkerId>,
    /// Bumped on every change to `replicas`; workers use it as a fencing token.
    pub epoch: u64,
    /// State version of the last change to this partition.
    pub version: u64,
    pub recent_releases: Vec<Release>,
}

impl Partition {
    pub fn replica(&self, worker: &WorkerId) -> Option<&Replica> {
        self.replicas.iter().find(|r| &r.worker == worker)
    }

    pub fn replica_mut(&mut self, worker: &WorkerId) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| &r.worker == worker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_tile_the_key_space() {
        for count in [1u32, 2, 3, 7, 64, 1000, 65_536] {
            let mut next = 0u64;
            for i in 0..count {
                let r = key_range(i, count);
                assert_eq!(r.start, next, "count {count} partition {i}");
                assert!(r.end >= r.start);
                assert_eq!(partition_for_key(r.start, count), i);
                assert_eq!(partition_for_key(r.end, count), i);
                next = r.end.wrapping_add(1);
            }
            assert_eq!(key_range(count - 1, count).end, u64::MAX);
        }
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            key_range(0, 1),
            KeyRange {
                start: 0,
                end: u64::MAX
            }
        );
        assert_eq!(key_range(1, 2).start, 1 << 63);
        assert_eq!(partition_for_key(u64::MAX, 3), 2);
    }
}
