//! Why `apply` refuses a command: stable, machine-readable codes (SPEC §4's error `code`) and
//! the rejection that carries one with its message. How a code maps to HTTP is the server's
//! business, not this pure crate's.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::PartitionId;

/// Stable, machine-readable rejection codes (the `code` of SPEC §4's error shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectCode {
    /// A field is malformed or out of its limits.
    Invalid,
    /// A value exceeds a size limit.
    TooLarge,
    NotFound,
    AlreadyExists,
    /// The §1 transition table forbids this change.
    IllegalTransition,
    /// `expected_version` did not match.
    VersionConflict,
    /// The partition epoch moved on: re-read assignments.
    StaleEpoch,
    /// An agent call carries an older generation.
    StaleGeneration,
    /// The worker was declared dead at this generation: re-register.
    Fenced,
    /// A registration reuses an incarnation with different attributes.
    IncarnationConflict,
    /// The target worker cannot hold this replica (rule 1).
    Unplaceable,
    /// The step would leave the partition below RF healthy serving replicas.
    UnderReplicated,
    /// A Draining worker still holds replicas.
    NotDrained,
    /// A leader's decision (a death verdict) reached the log in a term other than the one it
    /// was decided in: the leadership that justified it is over. Nothing changed.
    StaleTerm,
    /// A maintenance would leave partitions (named in the rejection) with fewer than
    /// `min_available` serving replicas on workers alive and not in maintenance.
    BudgetExceeded,
    /// The mass-failure brake is tripped: no death is declared until it is released.
    BrakeTripped,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Invalid => "invalid",
            RejectCode::TooLarge => "too_large",
            RejectCode::NotFound => "not_found",
            RejectCode::AlreadyExists => "already_exists",
            RejectCode::IllegalTransition => "illegal_transition",
            RejectCode::VersionConflict => "version_conflict",
            RejectCode::StaleEpoch => "stale_epoch",
            RejectCode::StaleGeneration => "stale_generation",
            RejectCode::Fenced => "fenced",
            RejectCode::IncarnationConflict => "incarnation_conflict",
            RejectCode::Unplaceable => "unplaceable",
            RejectCode::UnderReplicated => "under_replicated",
            RejectCode::NotDrained => "not_drained",
            RejectCode::StaleTerm => "stale_term",
            RejectCode::BudgetExceeded => "budget_exceeded",
            RejectCode::BrakeTripped => "brake_tripped",
        }
    }

    /// Whether the same request may succeed if retried after re-reading state. No rejection
    /// succeeds on a blind retry: `apply` is deterministic.
    pub fn retryable_after_reread(self) -> bool {
        matches!(
            self,
            RejectCode::VersionConflict | RejectCode::StaleEpoch | RejectCode::UnderReplicated
        )
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed refusal: a normal answer to the client, never a storage error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: RejectCode,
    pub message: String,
    /// The current version, with `version_conflict`.
    pub current_version: Option<u64>,
    /// The partitions concerned, with `budget_exceeded`.
    pub partitions: Vec<PartitionId>,
}

pub(super) fn reject<T>(code: RejectCode, message: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(code, message))
}

/// `budget_exceeded`, naming the partitions (at most the first 20 in the message; all in the
/// rejection's `partitions`).
pub(super) fn budget_exceeded<T>(
    what: &str,
    min: &str,
    partitions: Vec<PartitionId>,
) -> Result<T, Rejection> {
    Err(Rejection::budget_exceeded(what, min, partitions))
}

impl Rejection {
    /// A refusal with `code` and `message`, nothing more.
    pub fn new(code: RejectCode, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            message: message.into(),
            current_version: None,
            partitions: Vec::new(),
        }
    }

    /// `budget_exceeded` naming the partitions (the first 20 in the message, all in the field):
    /// `apply`'s refusal and the leader's, which adds the workers it does not hear.
    pub fn budget_exceeded(what: &str, min: &str, partitions: Vec<PartitionId>) -> Rejection {
        let shown: Vec<String> = partitions
            .iter()
            .take(20)
            .map(ToString::to_string)
            .collect();
        let more = partitions.len().saturating_sub(shown.len());
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        Rejection {
            code: RejectCode::BudgetExceeded,
            message: format!(
                "{what} would leave partitions {}{more} with fewer than {min} serving replicas on \
                 workers alive and not in maintenance",
                shown.join(", ")
            ),
            current_version: None,
            partitions,
        }
    }
}

pub(super) fn invalid<T>(message: impl Into<String>) -> Result<T, Rejection> {
    reject(RejectCode::Invalid, message)
}

pub(super) fn version_conflict<T>(what: &str, expected: u64, current: u64) -> Result<T, Rejection> {
    Err(Rejection {
        code: RejectCode::VersionConflict,
        message: format!("{what} is at version {current}, not {expected}"),
        current_version: Some(current),
        partitions: Vec::new(),
    })
}
