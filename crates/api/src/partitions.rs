//! `/v1/partitions`: the partition table (SPEC §2), the routing answer by key, and replica
//! acknowledgements (SPEC §3).

use drover_types::Partition;
use serde::{Deserialize, Serialize};

// `POST /v1/partitions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTable {
    /// Number of partitions, 1-65,536.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65536))]
    pub count: u32,
    /// Replicas per partition, 1-7.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 7))]
    pub replication_factor: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartitionPage {
    pub items: Vec<Partition>,
    /// Whether more partitions follow this page.
    pub more: bool,
    /// Pass as `cursor` to get the next page.
    pub next_cursor: Option<u32>,
}

/// A healthy serving replica, where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    pub worker: String,
    pub address: String,
    pub zone: Option<String>,
    /// Whether it is the partition's preferred leader.
    pub leader: bool,
}

/// The routing and discovery answer for one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Routing {
    pub partition: Partition,
    /// Healthy serving replicas (serving, on a worker not declared dead).
    pub serving: Vec<Endpoint>,
}

// `POST /v1/partitions/{p}/replicas/{worker}/ack`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckRequest {
    /// The worker's current generation.
    pub generation: u64,
    /// The `since` epoch of the step being acknowledged.
    pub epoch: u64,
}
