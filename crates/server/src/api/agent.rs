//! The routes a worker's agent calls (SPEC §1, §2): registration, its assignments as a long
//! poll and its heartbeats. Parsing and routing are here; what they mean is the core's
//! (`core/agents.rs`). A lifecycle state change, which agents and operators both ask for, is
//! `workers.rs`'s.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use drover_api::{Assignments, HeartbeatAck, HeartbeatRequest, RegisterRequest};
use drover_types::{
    Command, Registration, Response as Applied, Worker, validate_address, validate_labels,
    validate_zone,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{AgentErrors, ApiError, ApiResult, BadRequest, NotFound, Unauthorized};
use super::extract::{ApiPath, WorkerPath, body, long_poll_wait, parse_json, parse_query};
use super::workers::worker_id;
use crate::core::Node;

/// Registers a worker (SPEC §1): new, restarted (new incarnation), or recommissioned.
#[utoipa::path(
    put,
    path = "/v1/workers/{id}",
    operation_id = "register_worker",
    tag = "workers",
    params(WorkerPath),
    request_body = RegisterRequest,
    responses(
        (status = 200, description = "The record, with the generation to send on every agent call", body = Worker,
            links(
                ("show" = (operation_id = "show_worker", parameters(("id" = "$request.path.id")))),
                ("heartbeat" = (operation_id = "heartbeat", parameters(("id" = "$request.path.id")),
                    request_body = json!({"generation": "$response.body#/generation"}))),
                ("activate" = (operation_id = "set_worker_state", parameters(("id" = "$request.path.id")),
                    request_body = json!({"state": "active"}))),
                ("drain" = (operation_id = "drain_worker", parameters(("id" = "$request.path.id")))),
                ("drain_set" = (operation_id = "drain_workers",
                    request_body = json!({"workers": ["$request.path.id"]}))),
                ("remove" = (operation_id = "remove_worker", parameters(("id" = "$request.path.id")))),
            )),
        AgentErrors,
    )
)]
pub async fn register(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: RegisterRequest = parse_json(&raw)?;
    validate_address(&b.address)
        .map_err(|e| ApiError::bad_request(format!("field address: {e}")))?;
    if let Some(z) = &b.zone {
        validate_zone(z).map_err(|e| ApiError::bad_request(format!("field zone: {e}")))?;
    }
    if b.capacity == Some(0) {
        return Err(ApiError::bad_request("field capacity: must be at least 1"));
    }
    validate_labels(&b.labels).map_err(|e| ApiError::bad_request(format!("field labels: {e}")))?;
    let outcome = node
        .propose(Command::Register(Registration {
            worker,
            incarnation: b.incarnation,
            address: b.address,
            zone: b.zone,
            capacity: b.capacity.unwrap_or(1),
            labels: b.labels,
        }))
        .await?;
    match outcome.response {
        Applied::Worker(w) => Ok(Json(w).into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AssignmentsQuery {
    /// Answer once the worker's assignments `version` exceeds this (default 0: at once).
    #[serde(default)]
    after: u64,
    /// How long to wait at most: `500ms`, `30s`, `1m` or plain seconds; at most 60 s
    /// (default: do not wait).
    #[param(pattern = "^([0-9]{1,4}ms|[1-5][0-9]{4}ms|60000ms|([0-9]|[1-5][0-9]|60)s?|[01]m)$")]
    wait: Option<String>,
}

/// Long poll, answered by this node from its applied state: returns as soon as the worker's
/// assignments version exceeds `after`, or after `wait` (at most 60 s) with it unchanged.
#[utoipa::path(
    get,
    path = "/v1/workers/{id}/assignments",
    operation_id = "poll_assignments",
    tag = "workers",
    params(WorkerPath, AssignmentsQuery),
    responses(
        (status = 200, description = "The worker's assignments: changed since `after`, or unchanged once `wait` ran out", body = Assignments),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
    )
)]
pub async fn assignments_poll(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let id = worker_id(&id)?;
    let q: AssignmentsQuery = parse_query(&uri)?;
    let wait = long_poll_wait(q.wait.as_deref())?;
    let a: Assignments = node.assignments_after(&id, q.after, wait).await?;
    Ok(Json(a).into_response())
}

/// An agent's heartbeat: leader soft state, never a Raft write. Acknowledged only by a leader
/// that a quorum confirmed after the heartbeat arrived and that has applied every entry of
/// earlier terms; fenced by generation against that applied state (stale → 409
/// `stale_generation`, declared dead → 409 `fenced`); never while a death verdict of its
/// generation is being committed.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/heartbeat",
    operation_id = "heartbeat",
    tag = "workers",
    params(WorkerPath),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "Recorded by the leader", body = HeartbeatAck),
        AgentErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn heartbeat(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let arrival = tokio::time::Instant::now();
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: HeartbeatRequest = parse_json(&raw)?;
    let ack: HeartbeatAck = node.heartbeat(&worker, &b, arrival).await?;
    Ok(Json(ack).into_response())
}
