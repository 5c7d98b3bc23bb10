//! Drains (SPEC §3): `POST /v1/workers/{id}/drain` and `POST /v1/drain` for a set (a rack, a
//! zone): parsing, validation and forwarding here, the planning and its retry in the core
//! (`core/drains.rs`). The leader plans with the same `plan_drain` the scheduler executes; a dry run returns
//! the moves and the verdict and commits nothing, a real drain commits the intent with that
//! plan. One that cannot finish is refused (`409 drain_infeasible`, with the reasons) unless it
//! asks `allow_blocked`: then its workers stay Draining with `blocked` reasons. Both answers
//! carry the plan's `warnings` (partitions that lose zone spread or their preferred leader).

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_api::{DrainAnswer, DrainOneRequest, DrainSetRequest, ErrorCode};
use drover_types::{WorkerId, validate_worker_id};

use super::error::{ApiError, ApiResult, Conflict, NotFound, StandardErrors, TooLarge};
use super::extract::{ApiPath, WorkerPath, body, check_reason, parse_json};
use super::forward::Forward;
use crate::core::{DrainError, DrainRequest, Node};

/// Drains one worker: Active → Draining with a committed move plan, or a dry run of it.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/drain",
    operation_id = "drain_worker",
    tag = "drains",
    params(WorkerPath),
    request_body(content = Option<DrainOneRequest>, description = "Optional; an empty body starts the drain"),
    responses(
        (status = 200, description = "The plan (dry run) or the started drain", body = DrainAnswer),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn drain_one(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    // The body is optional: none, or JSON `null`, starts the drain.
    let b: DrainOneRequest = if raw.is_empty() {
        DrainOneRequest::default()
    } else {
        parse_json::<Option<DrainOneRequest>>(&raw)?.unwrap_or_default()
    };
    drain(
        node,
        vec![id],
        b.dry_run,
        b.allow_blocked,
        b.reason,
        uri,
        headers,
        raw,
    )
    .await
}

/// Drains a set of workers as one operation, or a dry run of it.
#[utoipa::path(
    post,
    path = "/v1/drain",
    operation_id = "drain_workers",
    tag = "drains",
    request_body = DrainSetRequest,
    responses(
        (status = 200, description = "The plan (dry run) or the started drain", body = DrainAnswer),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn drain_set(
    State(node): State<Node>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: DrainSetRequest = parse_json(&raw)?;
    drain(
        node,
        b.workers,
        b.dry_run,
        b.allow_blocked,
        b.reason,
        uri,
        headers,
        raw,
    )
    .await
}

// The request's fields, then what forwarding needs.
#[allow(clippy::too_many_arguments)]
async fn drain(
    node: Node,
    ids: Vec<String>,
    dry_run: bool,
    allow_blocked: bool,
    reason: Option<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<Response> {
    if let Some(r) = &reason {
        check_reason(r)?;
    }
    let mut workers = BTreeSet::new();
    for id in &ids {
        validate_worker_id(id).map_err(|e| ApiError::bad_request(format!("field workers: {e}")))?;
        workers.insert(WorkerId::from(id.as_str()));
    }
    if workers.is_empty() || workers.len() != ids.len() {
        return Err(ApiError::bad_request(
            "field workers: name each worker once, at least one",
        ));
    }
    if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
        return Ok(fwd);
    }
    let req = DrainRequest {
        workers,
        dry_run,
        allow_blocked,
        reason,
    };
    match node.drain(req).await {
        Ok(answer) => Ok(Json(answer).into_response()),
        Err(DrainError::UnknownWorker(w)) => Err(ApiError::not_found(format!("no worker {w}"))),
        Err(DrainError::Infeasible(message)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::DrainInfeasible,
            message,
        )),
        Err(DrainError::Unexpected(message)) => Err(ApiError::internal(message)),
        Err(DrainError::Core(e)) => Err(e.into()),
    }
}
