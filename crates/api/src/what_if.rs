//! What-if (SPEC §3 "Safety brakes"): what stopping or draining a set of workers, or a zone,
//! would cost — asked before doing it. The scheduler computes the answer; it is declared here
//! because it is what the API answers.

use drover_types::{PartitionId, WorkerId};
use serde::{Deserialize, Serialize};

use crate::DrainPreview;

/// What the operator is about to do to the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WhatIfAction {
    /// The processes stop (a restart, a power-off, a lost zone): their replicas stop serving
    /// until they return, or for good once the cluster declares them dead.
    Stop,
    /// A drain of the set as one operation: replicas move off make-before-break.
    Drain,
}

impl WhatIfAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WhatIfAction::Stop => "stop",
            WhatIfAction::Drain => "drain",
        }
    }
}

/// `POST /v1/what-if`: exactly one of `workers` and `zone`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhatIfRequest {
    /// The workers the action is taken on, each named once; or give `zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<WorkerId>>, min_items = 1))]
    pub workers: Option<Vec<String>>,
    /// Every worker of this zone; or give `workers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub action: WhatIfAction,
}

/// A partition the action leaves short of serving replicas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Shortfall {
    #[cfg_attr(feature = "openapi", schema(value_type = u32))]
    pub partition: PartitionId,
    pub replication_factor: u8,
    /// Serving replicas on healthy workers now (alive, not suspect; as everywhere, a joining or
    /// leaving replica does not count).
    pub serving_now: u32,
    /// Of those, the ones left once the action is taken.
    pub serving_after: u32,
}

/// The what-if answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhatIf {
    pub action: WhatIfAction,
    /// The workers the action is taken on (a zone named by its workers).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub workers: Vec<WorkerId>,
    /// Partitions left with fewer than their RF serving replicas. A planned drain moves
    /// make-before-break, so for `drain` this is always empty.
    pub below_rf: Vec<Shortfall>,
    /// Partitions left without a majority of their RF serving (a subset of `below_rf`): their
    /// own service loses its quorum.
    pub below_majority: Vec<Shortfall>,
    /// Partitions whose preferred leader is on one of the workers: leadership moves.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u32>))]
    pub leaders_lost: Vec<PartitionId>,
    /// For `drain`: the dry run of that drain — whether it can finish, its moves, what blocks
    /// it and what it costs — exactly what a drain started now would commit.
    #[serde(default)]
    pub drain: Option<DrainPreview>,
}
