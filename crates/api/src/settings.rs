//! `/v1/settings`: a change of the replicated cluster settings.

use drover_types::SettingsPatch;
use serde::{Deserialize, Serialize};

/// A change of some settings: the fields given replace the current values; the result must be
/// valid as a whole (`0 < heartbeat_interval_ms < suspect_after_ms < dead_after_ms`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SettingsRequest {
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 60000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 11))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspect_after_ms: Option<u64>,
    /// At most a week. Lowering it takes effect for death verdicts only once leases granted
    /// under the old value have run out.
    #[cfg_attr(feature = "openapi", schema(minimum = 12, maximum = 604800000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_after_ms: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1024))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_moves_per_worker: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 65536))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_moves_total: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1000, maximum = 86400000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join_timeout_ms: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 16777216))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_max_value_bytes: Option<u32>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000000))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_retained: Option<u32>,
    /// The disruption budget: the fewest serving replicas of each partition that must stay on
    /// workers alive and not in maintenance; 0: a majority of its replication factor.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 255))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_available: Option<u32>,
    /// The mass-failure brake: the most of the alive workers declared dead within one
    /// `dead_after`, as a fraction above 0 and at most 1 (default 0.333334).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>, exclusive_minimum = 0.0, maximum = 1.0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_deaths_fraction: Option<drover_types::Fraction>,
    /// Compare-and-set on the settings' `version`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
}

impl SettingsRequest {
    /// The request that sets what `patch` names, compare-and-set on `expected_version`.
    pub fn new(patch: &SettingsPatch, expected_version: Option<u64>) -> Self {
        SettingsRequest {
            heartbeat_interval_ms: patch.heartbeat_interval_ms,
            suspect_after_ms: patch.suspect_after_ms,
            dead_after_ms: patch.dead_after_ms,
            max_moves_per_worker: patch.max_moves_per_worker,
            max_moves_total: patch.max_moves_total,
            join_timeout_ms: patch.join_timeout_ms,
            kv_max_value_bytes: patch.kv_max_value_bytes,
            events_retained: patch.events_retained,
            min_available: patch.min_available,
            max_deaths_fraction: patch.max_deaths_fraction,
            expected_version,
        }
    }
}
