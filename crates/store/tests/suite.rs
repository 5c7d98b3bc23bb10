//! openraft's own storage conformance suite, run against drover-store.

use drover_store::{LogStore, StateMachine, StorageError, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = TempDir::new().map_err(|e| openraft::StorageIOError::write(&e))?;
        let store =
            drover_store::open(dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, store.log, store.state_machine))
    }
}

/// Proves drover-store satisfies every contract openraft's storage suite checks: log state,
/// vote, append, truncate, purge, membership, applied state, snapshots and their transfer.
#[test]
fn openraft_storage_suite() -> anyhow::Result<()> {
    Suite::test_all(Builder)?;
    Ok(())
}
