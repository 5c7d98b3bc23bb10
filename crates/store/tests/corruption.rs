//! Bad bytes on disk are typed errors naming what is corrupt, never panics.

mod common;

use std::path::Path;

use common::entries;
use drover_store::{ALL_CFS, CF_LOG, CF_SM, Error};
use openraft::storage::RaftLogStorageExt;

fn raw_put(dir: &Path, family: &str, key: &[u8], value: &[u8]) {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(false);
    let db = rocksdb::DB::open_cf(&opts, dir, ALL_CFS).unwrap();
    db.put_cf(db.cf_handle(family).unwrap(), key, value)
        .unwrap();
}

fn written_store(dir: &Path) {
    let store = common::open(dir);
    let mut log = store.log.clone();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(log.blocking_append(entries(1..=10)))
        .unwrap();
    store.state_machine.apply_entries(entries(1..=10)).unwrap();
}

/// A garbled log entry is reported with its index; the entries before it still read.
#[test]
fn corrupt_log_entry_is_reported_with_its_index() {
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path());
    raw_put(
        dir.path(),
        CF_LOG,
        &5u64.to_be_bytes(),
        b"\x01\xff\xff\xff garbage",
    );
    let store = common::open(dir.path());
    match store.log.entries(1..=10) {
        Err(Error::CorruptEntry { index: 5, .. }) => {}
        other => panic!("expected a corrupt entry at 5, got {other:?}"),
    }
    assert_eq!(store.log.entries(1..5).unwrap().len(), 4);
    let e = store.log.entries(..).unwrap_err();
    assert!(e.to_string().contains("index 5"), "{e}");
    assert!(!e.is_retryable());
}

/// An entry stored under the wrong index, or an unknown format version, is an error too.
#[test]
fn misplaced_entry_and_unknown_format_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path());
    let entry_3 = drover_types::codec::encode(&common::entry(3)).unwrap();
    raw_put(dir.path(), CF_LOG, &4u64.to_be_bytes(), &entry_3);
    let mut future = entry_3.clone();
    future[0] = 99;
    raw_put(dir.path(), CF_LOG, &6u64.to_be_bytes(), &future);
    let store = common::open(dir.path());
    assert!(matches!(
        store.log.entries(4..=4),
        Err(Error::MisplacedEntry { key: 4, found: 3 })
    ));
    let e = store.log.entries(6..=6).unwrap_err();
    assert!(e.to_string().contains("unknown format version 99"), "{e}");
}

/// A garbled state-machine record makes open fail with an error naming it.
#[test]
fn corrupt_state_record_fails_open_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    written_store(dir.path());
    raw_put(
        dir.path(),
        CF_SM,
        b"\x04\x00\x00\x00\x02",
        b"\x01not a partition",
    );
    match drover_store::open(dir.path()) {
        Err(Error::Corrupt { what, .. }) => assert!(what.contains("partition"), "{what}"),
        other => panic!("expected a corrupt partition record, got {other:?}"),
    }
}
