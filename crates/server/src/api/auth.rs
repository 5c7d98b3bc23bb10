//! Bearer-token authorization (SPEC §4): the `admin` token may do everything; the fleet-wide
//! `worker` token may register, heartbeat, acknowledge, read assignments and change its own
//! worker's state (which `apply` limits to what an agent may do). With no token configured the
//! node runs open (and said so loudly at start).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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

/// Routes the worker token may use.
fn worker_may(method: &Method, path: &str) -> bool {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(
        (method, parts.as_slice()),
        (&Method::PUT, ["v1", "workers", _])
            | (&Method::POST, ["v1", "workers", _, "heartbeat" | "state"])
            | (&Method::GET, ["v1", "workers", _, "assignments"])
            | (&Method::POST, ["v1", "partitions", _, "replicas", _, "ack"])
    )
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Resolves the caller's role and refuses what it may not do: 401 without a valid token,
/// 403 for a worker token outside its routes.
pub async fn authorize(State(node): State<Node>, mut req: Request, next: Next) -> Response {
    let config = node.config();
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
                "unauthorized",
                "unknown bearer token",
            )
            .into_response();
        }
        None => {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing `Authorization: Bearer <token>`",
            )
            .into_response();
        }
    };
    if role == Role::Worker && !worker_may(req.method(), req.uri().path()) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
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
