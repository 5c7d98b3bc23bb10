//! Durable append throughput: `append` plus the WAL sync that acknowledges it, for batches of
//! 1, 16 and 256 entries carrying 256-byte KV writes. Criterion reports entries per second.
//!
//! Run: `cargo bench -p drover-store --bench append`

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use drover_store::Entry;
use drover_types::{Command, Proposal};
use openraft::storage::RaftLogStorageExt;
use openraft::{CommittedLeaderId, EntryPayload, LogId};

fn entry(index: u64) -> Entry {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(Proposal {
            at_ms: index,
            command: Command::KvPut {
                key: format!("bench/{index}"),
                value: "x".repeat(256),
                expected_version: None,
            },
        }),
    }
}

fn durable_append(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("durable_append");
    group.measurement_time(Duration::from_secs(5));
    for batch in [1u64, 16, 256] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = drover_store::open(dir.path()).expect("open store");
        let mut log = store.log.clone();
        let mut next = 1u64;
        group.throughput(Throughput::Elements(batch));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_custom(|iters| {
                // Entries are built outside the timed part: we measure storage, not encoding
                // of test data.
                let batches: Vec<Vec<Entry>> = (0..iters)
                    .map(|i| (0..batch).map(|j| entry(next + i * batch + j)).collect())
                    .collect();
                next += iters * batch;
                let start = Instant::now();
                for entries in batches {
                    rt.block_on(log.blocking_append(entries)).expect("append");
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, durable_append);
criterion_main!(benches);
