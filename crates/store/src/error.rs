//! Storage errors: typed, and each says what it was reading or writing. A corrupt log entry is
//! reported with its index; nothing in this crate panics on bad bytes.

use std::sync::Arc;

use drover_types::codec;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt log entry at index {index}: {source}")]
    CorruptEntry {
        index: u64,
        #[source]
        source: Arc<codec::Error>,
    },
    #[error("log key {key:?} is not an 8-byte index")]
    CorruptLogKey { key: Vec<u8> },
    #[error("log entry at key {key} says it is index {found}")]
    MisplacedEntry { key: u64, found: u64 },
    #[error("corrupt {what}: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: Arc<codec::Error>,
    },
    #[error("inconsistent state machine records: {0}")]
    Inconsistent(String),
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: Arc<codec::Error>,
    },
    #[error("column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("the WAL sync thread is gone")]
    SyncerGone,
}

impl Error {
    /// Whether retrying the same operation may succeed. Corruption never heals by itself; a
    /// RocksDB I/O error might (a full disk freed, say).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Rocks(_))
    }

    pub(crate) fn corrupt(what: impl Into<String>, source: codec::Error) -> Self {
        Error::Corrupt {
            what: what.into(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn encode(what: &'static str, source: codec::Error) -> Self {
        Error::Encode {
            what,
            source: Arc::new(source),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
