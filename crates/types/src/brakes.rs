//! Operator safety records beside the lifecycle (SPEC §1 "Cordon and maintenance", §3 "Safety
//! brakes"): the scheduler pause, and the rules every `reason`, cordon holder and expiry obeys.
//! The records are replicated; their expiry is decided by the scheduler on its own clock and
//! committed as a command, never by `apply` reading a clock.

use serde::{Deserialize, Serialize};

use crate::ids::WorkerId;

/// Longest `reason` a state change, cordon or pause may carry (SPEC §1: ≤ 256 bytes).
pub const MAX_REASON_BYTES: usize = 256;
/// Longest cordon holder name.
pub const MAX_HOLDER_BYTES: usize = 64;
/// Most cordon holders one worker may have at once (keeps a record bounded).
pub const MAX_CORDONS: usize = 16;

/// The replicated brakes on the scheduler (SPEC §3). Committed as cluster state, so a new
/// leader keeps them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Brakes {
    /// An operator's pause of new moves, if one is in force.
    pub pause: Option<Pause>,
    /// The mass-failure brake, if tripped: no death is declared and nothing is re-created.
    pub mass_failure: Option<MassFailure>,
    /// An operator's release of the mass-failure brake: until `until_ms` the brake does not
    /// trip again, so the deaths it held back are declared.
    pub released: Option<Hold>,
}

/// The mass-failure brake (SPEC §3): tripped by the scheduler when declaring the deaths due
/// would exceed `max_deaths_fraction` of the alive workers, or take every worker of a zone,
/// within one `dead_after` window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MassFailure {
    /// The workers whose death verdicts it holds back, as the scheduler saw them.
    pub workers: Vec<WorkerId>,
    /// Why, in words (which rule, with the numbers).
    pub reason: String,
    /// Proposer time it tripped, in ms since the Unix epoch.
    pub since_ms: u64,
    /// State version of the trip: a release by the scheduler names it.
    pub version: u64,
}

/// A worker's maintenance (SPEC §1): a restart without data movement. While `until` has not
/// passed the worker is not declared dead and its replicas are not re-created elsewhere; it
/// ends once a process of a newer generation has registered and heartbeats, or at `until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Maintenance {
    pub reason: String,
    /// `admin` or `worker:<id>`.
    pub actor: String,
    /// Proposer time it began (or was last renewed), ms since the Unix epoch.
    pub since_ms: u64,
    /// Proposer time at which it ends by itself.
    #[serde(rename = "until")]
    pub until_ms: u64,
    /// The worker's generation when it began: a registration of a newer one is the restart.
    pub generation: u64,
    /// State version of its last change (an end decided by the scheduler names it).
    pub version: u64,
}

/// Longest maintenance one request may ask for: a day. A forgotten maintenance suspends death
/// verdicts for its worker, so it always ends.
pub const MAX_MAINTENANCE_MS: u64 = 24 * 3600 * 1000;

/// An operator's hold (SPEC §1, §3): a cordon on a worker, or the scheduler's pause. Each has
/// a reason, an actor and an optional expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hold {
    pub reason: String,
    /// Who placed it: `admin`.
    pub actor: String,
    /// Proposer time it was placed (or last changed), in milliseconds since the Unix epoch.
    pub since_ms: u64,
    /// Proposer time at which the scheduler lifts it; none: until removed.
    #[serde(rename = "until")]
    pub until_ms: Option<u64>,
    /// State version of its last change: an expiry names it, so a hold renewed since is not
    /// lifted by an expiry decided on the old one.
    pub version: u64,
}

/// One holder's cordon on a worker: no new replica is placed there while any holder has one.
pub type Cordon = Hold;

/// `POST /v1/scheduler/pause`: no new move starts while it holds; moves in flight finish.
pub type Pause = Hold;

/// A reason as a state change carries it: optional, but when given 1–256 bytes of printable
/// text (an empty one says nothing and is a client mistake).
pub fn validate_reason(reason: &str) -> Result<(), String> {
    if reason.trim().is_empty() {
        return Err("reason must not be empty".into());
    }
    if reason.len() > MAX_REASON_BYTES {
        return Err(format!(
            "reason is {} bytes; at most {MAX_REASON_BYTES}",
            reason.len()
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err("reason must not contain control characters".into());
    }
    Ok(())
}

/// A cordon holder's name: 1–64 bytes of `[A-Za-z0-9._:-]`, not `.` or `..` (it is a path
/// segment of `/v1/workers/{id}/cordon/{holder}`, which URL parsers would resolve).
pub fn validate_holder(holder: &str) -> Result<(), String> {
    if holder.is_empty() || holder.len() > MAX_HOLDER_BYTES {
        return Err(format!(
            "holder must be 1-{MAX_HOLDER_BYTES} bytes, got {}",
            holder.len()
        ));
    }
    if holder == "." || holder == ".." {
        return Err("holder must not be . or ..".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if !holder.chars().all(ok) {
        return Err(format!("holder {holder:?} must be of [A-Za-z0-9._:-]"));
    }
    Ok(())
}

/// An expiry as proposed: after the proposer's time `now_ms` (an expiry already past would
/// place a cordon or pause only for the scheduler to lift it).
pub fn validate_until(until_ms: Option<u64>, now_ms: u64) -> Result<(), String> {
    match until_ms {
        Some(until) if until <= now_ms => Err(format!(
            "until ({until} ms) is not in the future (now {now_ms} ms)"
        )),
        _ => Ok(()),
    }
}
