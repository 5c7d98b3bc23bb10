//! Column families and typed keys.
//!
//! Keys are a prefix byte and a big-endian integer (or an id's bytes), so RocksDB's key order is
//! log order, partition order and event order, and a prefix scan finds one kind of record.

use drover_types::{PartitionId, WorkerId};

/// Raft log entries, keyed by index (8 bytes, big-endian, no prefix: the family is the prefix).
pub const CF_LOG: &str = "log";
/// Raft metadata: vote, committed log id, last purged log id.
pub const CF_RAFT: &str = "raft";
/// The applied state machine, one record per worker, partition, key, drain and event, plus a
/// header holding the applied log id; written together in one batch per apply.
pub const CF_SM: &str = "sm";
/// The current snapshot: its metadata and data.
pub const CF_SNAPSHOT: &str = "snapshot";

pub const ALL_CFS: [&str; 4] = [CF_LOG, CF_RAFT, CF_SM, CF_SNAPSHOT];

pub const RAFT_VOTE: &[u8] = b"vote";
pub const RAFT_COMMITTED: &[u8] = b"committed";
pub const RAFT_LAST_PURGED: &[u8] = b"last_purged";
/// The `--cluster-id` the store belongs to (`Store::cluster_id`).
pub const RAFT_CLUSTER_ID: &[u8] = b"cluster_id";

pub const SNAPSHOT_CURRENT: &[u8] = b"current";

pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Past every log key: 8-byte keys sort before any longer key with the same first 8 bytes.
pub const LOG_END: [u8; 9] = [0xff; 9];

pub fn log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// Record kinds in [`CF_SM`], the first byte of each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Applied log id, membership, state version, settings, table shape, event sequence.
    Header = 0x01,
    Worker = 0x02,
    Tombstone = 0x03,
    Partition = 0x04,
    Kv = 0x05,
    Drain = 0x06,
    Event = 0x07,
}

impl Kind {
    pub fn from_byte(b: u8) -> Option<Kind> {
        [
            Kind::Header,
            Kind::Worker,
            Kind::Tombstone,
            Kind::Partition,
            Kind::Kv,
            Kind::Drain,
            Kind::Event,
        ]
        .into_iter()
        .find(|k| *k as u8 == b)
    }
}

fn key(kind: Kind, body: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + body.len());
    k.push(kind as u8);
    k.extend_from_slice(body);
    k
}

pub fn header_key() -> Vec<u8> {
    key(Kind::Header, &[])
}

pub fn worker_key(id: &WorkerId) -> Vec<u8> {
    key(Kind::Worker, id.as_str().as_bytes())
}

pub fn tombstone_key(id: &WorkerId) -> Vec<u8> {
    key(Kind::Tombstone, id.as_str().as_bytes())
}

pub fn partition_key(id: PartitionId) -> Vec<u8> {
    key(Kind::Partition, &id.to_be_bytes())
}

pub fn kv_key(k: &str) -> Vec<u8> {
    key(Kind::Kv, k.as_bytes())
}

pub fn drain_key(id: u64) -> Vec<u8> {
    key(Kind::Drain, &id.to_be_bytes())
}

pub fn event_key(seq: u64) -> Vec<u8> {
    key(Kind::Event, &seq.to_be_bytes())
}

/// The whole state machine family: `[SM_START, SM_END)` covers every record kind.
pub const SM_START: [u8; 1] = [0x00];
pub const SM_END: [u8; 1] = [0xff];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_numeric_order() {
        assert!(log_key(255) < log_key(256));
        assert!(log_key(u64::MAX).as_slice() < LOG_END.as_slice());
        assert!(partition_key(9) < partition_key(10));
        assert!(event_key(1 << 40) > event_key(7));
        assert_eq!(log_index(&log_key(42)), Some(42));
        assert_eq!(log_index(b"short"), None);
        for k in [Kind::Header, Kind::Worker, Kind::Event] {
            assert_eq!(Kind::from_byte(k as u8), Some(k));
        }
    }
}
