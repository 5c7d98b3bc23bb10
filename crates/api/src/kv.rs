//! `/v1/kv`: versioned metadata values with compare-and-set (SPEC §4).

use drover_types::KvEntry;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KvItem {
    pub key: String,
    pub value: String,
    /// State version of the last write.
    pub version: u64,
    /// State version of the write that created the key.
    pub create_version: u64,
}

impl KvItem {
    pub fn new(key: &str, e: &KvEntry) -> Self {
        KvItem {
            key: key.to_owned(),
            value: e.value.clone(),
            version: e.version,
            create_version: e.create_version,
        }
    }
}

// `PUT /v1/kv/{key}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KvPut {
    /// UTF-8, at most 64 KiB (the cluster's setting).
    pub value: String,
    /// Compare-and-set: the key's current version, or 0 to create only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KvPage {
    pub items: Vec<KvItem>,
    /// Whether more keys match after this page.
    pub more: bool,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KvDeleted {
    pub key: String,
    pub deleted: bool,
    pub version: u64,
}
