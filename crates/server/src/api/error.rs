//! The API's one error shape (SPEC §4): `{"error": {"code", "message"}}` with the right status,
//! plus the leader's id and address when a request reached a node that cannot serve it.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_types::Rejection;
use serde::Serialize;

/// Where the leader is, as far as this node knows.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LeaderHint {
    pub id: u64,
    pub address: String,
}

#[derive(Clone, Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub leader: Option<LeaderHint>,
    pub current_version: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    leader: Option<&'a LeaderHint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    current_version: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            leader: None,
            current_version: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unavailable(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        e.leader = leader;
        e
    }

    /// 503 for a write that was sent on (proposed, or forwarded) and then lost track of: it may
    /// or may not have been applied, so a client must read before retrying. Plain `unavailable`
    /// always means nothing was proposed, and is safe to retry.
    pub fn outcome_unknown(message: impl Into<String>, leader: Option<LeaderHint>) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "outcome_unknown", message);
        e.leader = leader;
        e
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        let status = StatusCode::from_u16(r.code.http_status()).unwrap_or(StatusCode::CONFLICT);
        let mut e = ApiError::new(status, r.code.as_str(), r.message);
        e.current_version = r.current_version;
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                leader: self.leader.as_ref(),
                current_version: self.current_version,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(l) = &self.leader
            && let Ok(v) = http::HeaderValue::from_str(&l.address)
        {
            response.headers_mut().insert("x-drover-leader", v);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
