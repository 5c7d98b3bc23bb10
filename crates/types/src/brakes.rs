//! Operator safety records beside the lifecycle (SPEC §1 "Cordon and maintenance", §3 "Safety
//! brakes"): the scheduler pause, and the rules every `reason`, cordon holder and expiry obeys.
//! The records are replicated; their expiry is decided by the scheduler on its own clock and
//! committed as a command, never by `apply` reading a clock.

use serde::{Deserialize, Serialize};

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
}

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
