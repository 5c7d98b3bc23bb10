//! SPEC §4's error shape `{"error": {"code", "message"}}`: the body, its `code` as an enum, and
//! the leader hint a node that cannot serve a request sends along.

use std::fmt;
use std::str::FromStr;

use drover_types::RejectCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every error answer of the API: `{"error": {"code", "message", ...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable and machine-readable: `invalid`, `unauthorized`, `forbidden`, `not_found`,
    /// `too_large`, `compacted`, `unavailable`, or for 409 `illegal_transition`,
    /// `version_conflict`, `stale_generation`, `stale_epoch`, `fenced`, `already_exists`,
    /// `incarnation_conflict`, `unplaceable`, `under_replicated`, `not_drained`, `quorum_loss`,
    /// `drain_infeasible`, `budget_exceeded`.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "not_found"))]
    pub code: ErrorCode,
    /// For people; may change between releases.
    pub message: String,
    /// Where to retry, when this node knows the leader (503 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderHint>,
    /// The record's current version, with `version_conflict`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// The partitions concerned, with `budget_exceeded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<u32>))]
    pub partitions: Vec<drover_types::PartitionId>,
}

/// Where the leader is, as far as this node knows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaderHint {
    pub id: u64,
    /// The leader's `HOST:PORT`; also sent as the `x-drover-leader` header.
    pub address: String,
}

/// Every code the API answers: the state machine's rejections and the transport's own.
///
/// An unknown code (from a newer server) decodes as [`ErrorCode::Other`], so an older client
/// still reads the answer; it keeps the code's text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // -- refused by the state machine (409 unless noted) ------------------------------------
    /// A field is malformed or out of its limits (400).
    Invalid,
    /// A value exceeds a size limit (413).
    TooLarge,
    /// No such record (404).
    NotFound,
    AlreadyExists,
    /// The §1 transition table forbids this change.
    IllegalTransition,
    /// `expected_version` did not match; the answer carries `current_version`.
    VersionConflict,
    /// The partition epoch moved on: re-read assignments.
    StaleEpoch,
    /// A newer process registered with this worker id: this one must stop for good.
    StaleGeneration,
    /// This generation was declared dead: register again (a new generation, holding nothing).
    Fenced,
    /// A registration reuses an incarnation with different attributes.
    IncarnationConflict,
    /// The target worker cannot hold this replica (rule 1).
    Unplaceable,
    /// The step would leave a partition below RF healthy serving replicas.
    UnderReplicated,
    /// A Draining worker still holds replicas.
    NotDrained,
    /// 503: a leader's decision reached the log after its term ended; nothing changed.
    StaleTerm,
    /// A maintenance would leave partitions (in `partitions`) below their disruption budget.
    BudgetExceeded,
    /// The mass-failure brake holds every death until it is released.
    BrakeTripped,
    // -- the API's own ------------------------------------------------------------------------
    /// 401: no token, or an unknown one.
    Unauthorized,
    /// 403: the token may not do this.
    Forbidden,
    /// 405.
    MethodNotAllowed,
    /// 410: the events asked for were compacted.
    Compacted,
    /// 503: nothing was proposed (no leader, not reachable); safe to retry.
    Unavailable,
    /// 503: the request was sent on and its outcome is unknown; read before retrying.
    OutcomeUnknown,
    /// 409: a membership change would break quorum.
    QuorumLoss,
    /// 409: a drain that cannot finish, asked without `allow_blocked`; nothing was changed.
    DrainInfeasible,
    /// 500.
    Internal,
    // -- why `/readyz` answers 503 (in its `error`, never as an error answer) -----------------
    /// The node is not in the cluster's membership (removed, or not added yet).
    NotAMember,
    /// The node knows no leader.
    NoLeader,
    /// No word from a leader (or, for a leader, from a quorum) for over an election timeout.
    OutOfContact,
    /// The node has not applied what its log holds yet.
    CatchingUp,
    /// A code this release does not know.
    Other(String),
}

impl ErrorCode {
    /// Every known code, for tests and documentation.
    pub const KNOWN: [ErrorCode; 29] = [
        ErrorCode::Invalid,
        ErrorCode::TooLarge,
        ErrorCode::NotFound,
        ErrorCode::AlreadyExists,
        ErrorCode::IllegalTransition,
        ErrorCode::VersionConflict,
        ErrorCode::StaleEpoch,
        ErrorCode::StaleGeneration,
        ErrorCode::Fenced,
        ErrorCode::IncarnationConflict,
        ErrorCode::Unplaceable,
        ErrorCode::UnderReplicated,
        ErrorCode::NotDrained,
        ErrorCode::StaleTerm,
        ErrorCode::BudgetExceeded,
        ErrorCode::BrakeTripped,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Compacted,
        ErrorCode::Unavailable,
        ErrorCode::OutcomeUnknown,
        ErrorCode::QuorumLoss,
        ErrorCode::DrainInfeasible,
        ErrorCode::Internal,
        ErrorCode::NotAMember,
        ErrorCode::NoLeader,
        ErrorCode::OutOfContact,
        ErrorCode::CatchingUp,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Invalid => "invalid",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::IllegalTransition => "illegal_transition",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::StaleEpoch => "stale_epoch",
            ErrorCode::StaleGeneration => "stale_generation",
            ErrorCode::Fenced => "fenced",
            ErrorCode::IncarnationConflict => "incarnation_conflict",
            ErrorCode::Unplaceable => "unplaceable",
            ErrorCode::UnderReplicated => "under_replicated",
            ErrorCode::NotDrained => "not_drained",
            ErrorCode::StaleTerm => "stale_term",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::BrakeTripped => "brake_tripped",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Compacted => "compacted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::QuorumLoss => "quorum_loss",
            ErrorCode::DrainInfeasible => "drain_infeasible",
            ErrorCode::Internal => "internal",
            ErrorCode::NotAMember => "not_a_member",
            ErrorCode::NoLeader => "no_leader",
            ErrorCode::OutOfContact => "out_of_contact",
            ErrorCode::CatchingUp => "catching_up",
            ErrorCode::Other(s) => s,
        }
    }

    /// Whether sending the same request again, unchanged, may succeed: nothing was applied and
    /// the cause can pass by itself (no leader yet). `OutcomeUnknown` is not: the request may
    /// have been applied, so a client must read the state first.
    pub fn retryable(&self) -> bool {
        matches!(self, ErrorCode::Unavailable)
    }
}

impl From<RejectCode> for ErrorCode {
    fn from(c: RejectCode) -> Self {
        match c {
            RejectCode::Invalid => ErrorCode::Invalid,
            RejectCode::TooLarge => ErrorCode::TooLarge,
            RejectCode::NotFound => ErrorCode::NotFound,
            RejectCode::AlreadyExists => ErrorCode::AlreadyExists,
            RejectCode::IllegalTransition => ErrorCode::IllegalTransition,
            RejectCode::VersionConflict => ErrorCode::VersionConflict,
            RejectCode::StaleEpoch => ErrorCode::StaleEpoch,
            RejectCode::StaleGeneration => ErrorCode::StaleGeneration,
            RejectCode::Fenced => ErrorCode::Fenced,
            RejectCode::IncarnationConflict => ErrorCode::IncarnationConflict,
            RejectCode::Unplaceable => ErrorCode::Unplaceable,
            RejectCode::UnderReplicated => ErrorCode::UnderReplicated,
            RejectCode::NotDrained => ErrorCode::NotDrained,
            RejectCode::StaleTerm => ErrorCode::StaleTerm,
            RejectCode::BudgetExceeded => ErrorCode::BudgetExceeded,
            RejectCode::BrakeTripped => ErrorCode::BrakeTripped,
        }
    }
}

impl FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ErrorCode::KNOWN
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap_or_else(|| ErrorCode::Other(s.to_owned())))
    }
}

/// For callers that name a code by its wire text (an unknown one becomes [`ErrorCode::Other`]).
impl From<&str> for ErrorCode {
    fn from(s: &str) -> Self {
        s.parse().unwrap_or_else(|_| ErrorCode::Other(s.to_owned()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(ErrorCode::Invalid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for c in ErrorCode::KNOWN {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }
        let other: ErrorCode = serde_json::from_str("\"brand_new\"").unwrap();
        assert_eq!(other, ErrorCode::Other("brand_new".into()));
        assert_eq!(other.as_str(), "brand_new");
    }

    #[test]
    fn every_rejection_has_its_code() {
        use RejectCode::*;
        for r in [
            Invalid,
            TooLarge,
            NotFound,
            AlreadyExists,
            IllegalTransition,
            VersionConflict,
            StaleEpoch,
            StaleGeneration,
            Fenced,
            IncarnationConflict,
            Unplaceable,
            UnderReplicated,
            NotDrained,
            StaleTerm,
            BudgetExceeded,
            BrakeTripped,
        ] {
            assert_eq!(ErrorCode::from(r).as_str(), r.as_str());
        }
    }
}
