//! What the core answers when it cannot do what was asked: the one error type of proposals,
//! linearizable reads and leader lookups, each variant saying whether a client may retry.
//! It knows no status codes: the HTTP layer maps it to its error body in one place
//! (`api/error.rs`).

pub use drover_api::LeaderHint;
use drover_types::Rejection;

/// Why a proposal or a linearizable read did not succeed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// This node does not lead (a quorum told it so); nothing was proposed. Retry at `leader`
    /// when it is known.
    #[error("this node is not the leader")]
    NotLeader { leader: Option<LeaderHint> },
    /// `apply` refused the command: a normal answer, and nothing changed. `apply` is
    /// deterministic, so the same request is refused again.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// Nothing was proposed (no leader known, leadership not confirmed, a write that waited
    /// past its request timeout); the cause can pass by itself.
    #[error("{message}")]
    Unavailable {
        message: String,
        leader: Option<LeaderHint>,
    },
    /// The write was proposed and then lost track of: it may or may not have been applied, so
    /// a client must read before it retries.
    #[error("{message}")]
    OutcomeUnknown {
        message: String,
        leader: Option<LeaderHint>,
    },
    /// This node is stopping; nothing was proposed. Another node may serve the request.
    #[error("this node is shutting down")]
    ShuttingDown,
    /// A bounded queue is full (more writes wait than the node takes on); nothing was
    /// proposed. Retry after a moment.
    #[error("{message}")]
    Overloaded { message: String },
}

impl Error {
    pub(crate) fn unavailable(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        Error::Unavailable {
            message: message.into(),
            leader,
        }
    }

    pub(crate) fn outcome_unknown(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        Error::OutcomeUnknown {
            message: message.into(),
            leader,
        }
    }

    /// Whether sending the same request again, unchanged, may succeed: nothing was applied and
    /// the cause can pass by itself. Not after a rejection (`apply` would refuse it again), nor
    /// after an unknown outcome (the first attempt may have been applied: read first).
    pub fn retryable(&self) -> bool {
        match self {
            Error::NotLeader { .. }
            | Error::Unavailable { .. }
            | Error::ShuttingDown
            | Error::Overloaded { .. } => true,
            Error::Rejected(_) | Error::OutcomeUnknown { .. } => false,
        }
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Error::Rejected(r)
    }
}

/// What the core's requests answer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use drover_types::RejectCode;

    use super::*;

    /// Only what changed nothing and can pass by itself is retryable: never a rejection, never
    /// a write whose outcome is unknown.
    #[test]
    fn retryable_only_when_nothing_was_applied_and_it_can_pass() {
        let rejected = Error::Rejected(Rejection {
            code: RejectCode::StaleEpoch,
            message: "moved on".into(),
            current_version: None,
            partitions: Vec::new(),
        });
        assert!(!rejected.retryable());
        assert_eq!(rejected.to_string(), "moved on");
        assert!(!Error::outcome_unknown("lost", None).retryable());
        assert!(Error::unavailable("no leader", None).retryable());
        assert!(Error::NotLeader { leader: None }.retryable());
        assert!(Error::ShuttingDown.retryable());
    }
}
