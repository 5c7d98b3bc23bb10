//! The API's one error shape (SPEC §4): `{"error": {"code", "message"}}` with the right status,
//! plus the leader's id and address when a request reached a node that cannot serve it. The
//! core's error becomes this shape here and nowhere else (`From<CoreError>`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_api::{ErrorBody, ErrorCode, ErrorDetail};
use drover_types::{RejectCode, Rejection};
use utoipa::{IntoResponses, ToResponse};

use crate::core::{DrainError, Error as CoreError, LeaderHint, MembershipError};

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub leader: Option<LeaderHint>,
    pub current_version: Option<u64>,
    /// With `budget_exceeded`: the partitions that would fall below the budget (boxed: every
    /// handler returns this error, so it stays small).
    pub partitions: Option<Box<Vec<drover_types::PartitionId>>>,
    /// Seconds to wait before retrying, sent as `Retry-After` (a full queue's 503).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            leader: None,
            current_version: None,
            partitions: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::Invalid, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Unavailable,
            message,
        );
        e.leader = leader;
        e
    }

    /// 503 for a write that was sent on (proposed, or forwarded) and then lost track of: it may
    /// or may not have been applied, so a client must read before retrying. Plain `unavailable`
    /// always means nothing was proposed, and is safe to retry.
    pub fn outcome_unknown(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::OutcomeUnknown,
            message,
        );
        e.leader = leader;
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            message,
        )
    }
}

/// The status of each refusal of the state machine.
fn rejection_status(code: RejectCode) -> StatusCode {
    match code {
        RejectCode::Invalid => StatusCode::BAD_REQUEST,
        RejectCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        RejectCode::NotFound => StatusCode::NOT_FOUND,
        // A leader's decision that reached the log after its term ended: nothing changed, and
        // the next leader decides again.
        RejectCode::StaleTerm => StatusCode::SERVICE_UNAVAILABLE,
        RejectCode::AlreadyExists
        | RejectCode::IllegalTransition
        | RejectCode::VersionConflict
        | RejectCode::StaleEpoch
        | RejectCode::StaleGeneration
        | RejectCode::Fenced
        | RejectCode::IncarnationConflict
        | RejectCode::Unplaceable
        | RejectCode::UnderReplicated
        | RejectCode::NotDrained
        | RejectCode::BudgetExceeded
        | RejectCode::BrakeTripped => StatusCode::CONFLICT,
    }
}

/// The one mapping from the core's answers to HTTP. `unavailable` always means nothing was
/// proposed (safe to retry); `outcome_unknown` that a client must read before retrying.
impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::Rejected(r) => {
                let mut e = ApiError::new(rejection_status(r.code), r.code, message);
                e.current_version = r.current_version;
                e.partitions = (!r.partitions.is_empty()).then(|| Box::new(r.partitions));
                e
            }
            CoreError::NotLeader { leader } | CoreError::Unavailable { leader, .. } => {
                ApiError::unavailable(message, leader)
            }
            CoreError::ShuttingDown => ApiError::unavailable(message, None),
            CoreError::Overloaded { .. } => {
                let mut e = ApiError::unavailable(message, None);
                e.retry_after = Some(1);
                e
            }
            CoreError::OutcomeUnknown { leader, .. } => ApiError::outcome_unknown(message, leader),
        }
    }
}

/// A drain's own failures (the core plans drains, `core/drains.rs`), mapped here beside the
/// core's error they wrap.
impl From<DrainError> for ApiError {
    fn from(e: DrainError) -> Self {
        match e {
            DrainError::UnknownWorker(w) => ApiError::not_found(format!("no worker {w}")),
            DrainError::Infeasible(message) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::DrainInfeasible, message)
            }
            DrainError::Unexpected(message) => ApiError::internal(message),
            DrainError::Core(e) => e.into(),
        }
    }
}

/// A membership change's own refusals (`core/membership.rs`).
impl From<MembershipError> for ApiError {
    fn from(e: MembershipError) -> Self {
        let message = e.to_string();
        match e {
            MembershipError::AddressTaken { .. } => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::AlreadyExists, message)
            }
            MembershipError::NotAMember(_) => ApiError::not_found(message),
            MembershipError::QuorumLoss(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::QuorumLoss, message)
            }
            MembershipError::Core(e) => e.into(),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        CoreError::Rejected(r).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let leader_header = self
            .leader
            .as_ref()
            .and_then(|l| http::HeaderValue::from_str(&l.address).ok());
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                leader: self.leader,
                current_version: self.current_version,
                partitions: self.partitions.map(|p| *p).unwrap_or_default(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(v) = leader_header {
            response.headers_mut().insert("x-drover-leader", v);
        }
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

// The error answers as reusable OpenAPI responses, so each operation lists the statuses it can
// return without repeating their descriptions.

/// Malformed request: bad JSON, an unknown field or a wrong type (the field is named), a value
/// out of its limits, or a bad path or query parameter (`invalid`).
#[derive(Debug, ToResponse)]
pub struct BadRequest(pub ErrorBody);

/// No token, or an unknown one (`unauthorized`).
#[derive(Debug, ToResponse)]
pub struct Unauthorized(pub ErrorBody);

/// The worker token may not do this; it needs the admin token (`forbidden`).
#[derive(Debug, ToResponse)]
pub struct Forbidden(pub ErrorBody);

/// No such record (`not_found`).
#[derive(Debug, ToResponse)]
pub struct NotFound(pub ErrorBody);

/// Refused by the state machine (SPEC §1-§3): `illegal_transition`, `version_conflict` (with
/// `current_version`), `stale_generation`, `fenced`, `stale_epoch`, `already_exists`, ...
/// Nothing was changed.
#[derive(Debug, ToResponse)]
pub struct Conflict(pub ErrorBody);

/// The events asked for were compacted away (`compacted`); start again from the oldest kept.
#[derive(Debug, ToResponse)]
pub struct Gone(pub ErrorBody);

/// The body, or a value in it, is over its size limit (`too_large`).
#[derive(Debug, ToResponse)]
pub struct TooLarge(pub ErrorBody);

/// No leader right now, or it could not be reached (`unavailable`); `leader` and the
/// `x-drover-leader` header say where to retry when known. A write's outcome may be unknown.
#[derive(Debug, ToResponse)]
#[response(headers(
    ("x-drover-leader" = String, description = "The leader's HOST:PORT, when known"),
    ("retry-after" = u32, description = "Seconds to wait first, when a queue of this node is full"),
))]
pub struct Unavailable(pub ErrorBody);

/// The refusals almost every operation can answer, listed once: a malformed request, no or an
/// unknown token, a token without the right, and no leader to serve it (each a reference to
/// the shared response above). Operations add what is theirs (404, 409, 413, ...) beside it.
#[derive(Debug, IntoResponses)]
pub enum StandardErrors {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The refusals of the calls a worker's agent makes with the worker token (register, state
/// change, acknowledge): the worker token may make them, so there is no 403, and each is a
/// write (409 refused by the state machine, 413 too large).
#[derive(Debug, IntoResponses)]
pub enum AgentErrors {
    #[response(status = 400)]
    BadRequest(#[ref_response] BadRequest),
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 409)]
    Conflict(#[ref_response] Conflict),
    #[response(status = 413)]
    TooLarge(#[ref_response] TooLarge),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}
