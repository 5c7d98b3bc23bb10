//! Bearer-token authorization (SPEC §4): the `admin` token may do everything; the fleet-wide
//! `worker` token may register, heartbeat, acknowledge, read assignments and change its own
//! worker's state (which `apply` limits to what an agent may do) — the routes the route table
//! marks [`Access::Agent`]. With no token configured the node runs open (and said so loudly at
//! start). Tokens are compared in constant time (`subtle`).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use drover_api::ErrorCode;

use super::error::ApiError;
use crate::core::Node;

/// Who is calling, as the token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Worker,
    /// No tokens are configured.
    Open,
}

/// Who may call a route. Each route in the route table (`api/mod.rs`) has one, and the router
/// layers [`authorize`] with it on that route: the table is the one place that says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The admin token (when tokens are configured, SPEC §4).
    Token,
    /// The admin token or the fleet's worker token: what an agent calls (register, heartbeat,
    /// acknowledge, read assignments, change its own worker's state, which `apply` limits).
    Agent,
    /// Health, readiness, metrics and this API's OpenAPI document: never a token.
    Open,
    /// Test-only fault injection: served only with `enable_fault_injection`, to the admin token.
    Debug,
}

impl Access {
    fn allows(self, role: Role) -> bool {
        match self {
            Access::Open | Access::Agent => true,
            Access::Token | Access::Debug => role != Role::Worker,
        }
    }
}

/// The state of one route's [`authorize`] layer: the node (for its tokens) and the route's
/// access.
#[derive(Clone, Debug)]
pub struct Guard {
    pub node: Node,
    pub access: Access,
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Resolves the caller's role and refuses what the route's access does not allow: 401 without
/// a valid token, 403 for a worker token on a route that is not the agents'.
pub async fn authorize(State(guard): State<Guard>, mut req: Request, next: Next) -> Response {
    let config = guard.node.config();
    if config.admin_token.is_none() && config.worker_token.is_none() {
        req.extensions_mut().insert(Role::Open);
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let role = match presented {
        Some(t) if config.admin_token.as_deref().is_some_and(|a| equal(a, t)) => Role::Admin,
        Some(t) if config.worker_token.as_deref().is_some_and(|w| equal(w, t)) => Role::Worker,
        Some(_) => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "unknown bearer token",
            )
            .into_response();
        }
        None => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "missing `Authorization: Bearer <token>`",
            )
            .into_response();
        }
    };
    if !guard.access.allows(role) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "the worker token may not {} {}",
                req.method(),
                req.uri().path()
            ),
        )
        .into_response();
    }
    req.extensions_mut().insert(role);
    next.run(req).await
}
