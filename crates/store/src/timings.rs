//! How long the store's two hot steps take, as histograms the server exports: the WAL fsync
//! that makes appended entries durable (one per group of appends the sync thread collects),
//! and applying a batch of committed entries (the state change and its RocksDB write).

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Shared by every clone of the store; cloning shares the histograms.
#[derive(Clone, Debug)]
pub struct Timings {
    /// Seconds per WAL fsync of appended log entries.
    pub fsync: Histogram,
    /// Seconds per applied batch of committed entries.
    pub apply: Histogram,
}

impl Default for Timings {
    fn default() -> Self {
        // 20 µs to ~5 s.
        let buckets = || exponential_buckets(0.000_02, 2.0, 18);
        Timings {
            fsync: Histogram::new(buckets()),
            apply: Histogram::new(buckets()),
        }
    }
}
