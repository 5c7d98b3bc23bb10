//! Versioned metadata values (SPEC §4).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KvEntry {
    pub value: String,
    /// State version of the last write.
    pub version: u64,
    /// State version of the write that created the key.
    pub create_version: u64,
}
