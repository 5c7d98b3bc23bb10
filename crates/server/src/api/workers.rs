//! `/v1/workers`: registration, records, lifecycle state changes and removal (SPEC §1, §4).
//! Soft fields (liveness, drain progress) arrive with the scheduler.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use drover_api::{
    ForcedDisable, Recommissioned, StateChanged, StateRequest, WorkerPage, WorkerRemoved,
    WorkerView,
};
use drover_types::{
    Actor, Command, Response as Applied, Worker, WorkerId, WorkerState, validate_worker_id,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Role;
use super::error::{AgentErrors, ApiError, ApiResult, Conflict, NotFound, StandardErrors};
use super::extract::{
    ApiPath, ReadQuery, WorkerPath, body, check_reason, no_dot_segments, page_limit, parse_json,
    parse_query,
};
use crate::core::{Node, RoundOnce};

pub(crate) fn worker_id(id: &str) -> ApiResult<WorkerId> {
    validate_worker_id(id).map_err(ApiError::bad_request)?;
    no_dot_segments("worker id", id)?;
    Ok(WorkerId::from(id))
}

fn unexpected(other: &Applied) -> ApiError {
    ApiError::internal(format!("unexpected answer {other:?}"))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    /// Only workers in this state.
    state: Option<WorkerState>,
    /// Only workers in this zone.
    zone: Option<String>,
    /// Page size, 1-1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Answer from this node's applied state instead of through the leader.
    // Read by the route layer (`forward.rs`); parsed here too, so a malformed value is 400.
    #[allow(dead_code)]
    #[serde(default)]
    stale: bool,
}

/// Workers in id order, a page at a time, optionally by state and zone.
#[utoipa::path(
    get,
    path = "/v1/workers",
    operation_id = "list_workers",
    tag = "workers",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of workers", body = WorkerPage),
        StandardErrors,
    )
)]
pub async fn list(State(node): State<Node>, uri: Uri) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    let state = node.state().read();
    let after = q.cursor.clone().map(WorkerId);
    let mut matching = state
        .state
        .workers
        .values()
        .filter(|w| after.as_ref().is_none_or(|a| &w.id > a))
        .filter(|w| q.state.is_none_or(|s| w.state == s))
        .filter(|w| q.zone.is_none() || w.zone == q.zone);
    let page: Vec<&Worker> = matching.by_ref().take(limit).collect();
    let more = matching.next().is_some();
    let next_cursor = if more {
        page.last().map(|w| w.id.to_string())
    } else {
        None
    };
    let round = RoundOnce::new();
    let items = page
        .iter()
        .map(|w| node.worker_view(&state.state, w, &round))
        .collect();
    Ok(Json(WorkerPage {
        items,
        more,
        next_cursor,
    })
    .into_response())
}

/// One worker's record, the replicas it holds and (from the leader) its liveness and drain
/// progress.
#[utoipa::path(
    get,
    path = "/v1/workers/{id}",
    operation_id = "show_worker",
    tag = "workers",
    params(WorkerPath, ReadQuery),
    responses(
        (status = 200, description = "The worker", body = WorkerView),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn show(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let id = worker_id(&id)?;
    let _q: ReadQuery = parse_query(&uri)?;
    let state = node.state().read();
    match state.state.workers.get(&id) {
        Some(w) => Ok(Json(node.worker_view(&state.state, w, &RoundOnce::new())).into_response()),
        None => Err(ApiError::not_found(format!("no worker {id}"))),
    }
}

/// Changes a worker's lifecycle state (SPEC §1); illegal transitions are 409.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/state",
    operation_id = "set_worker_state",
    tag = "workers",
    params(WorkerPath),
    request_body = StateRequest,
    responses(
        (status = 200, description = "The record after the change (the same record when it was already in that state)", body = StateChanged,
            links(
                ("disable" = (operation_id = "set_worker_state", parameters(("id" = "$request.path.id")),
                    request_body = json!({"state": "disabled"}))),
                ("remove" = (operation_id = "remove_worker", parameters(("id" = "$request.path.id")))),
            )),
        AgentErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn set_state(
    State(node): State<Node>,
    Extension(role): Extension<Role>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: StateRequest = parse_json(&raw)?;
    if let Some(r) = &b.reason {
        check_reason(r)?;
    }
    let by = if role == Role::Worker || b.generation.is_some() {
        Actor::Agent
    } else {
        Actor::Operator
    };
    if by == Actor::Agent && b.generation.is_none() {
        return Err(ApiError::bad_request(
            "field generation: required with the worker token",
        ));
    }
    let actor = match by {
        Actor::Agent => format!("worker:{worker}"),
        _ => "admin".to_owned(),
    };
    let outcome = node
        .propose(Command::SetState {
            worker,
            to: b.state,
            by,
            generation: b.generation,
            expected_version: b.expected_version,
            force: b.force,
            reason: b.reason.clone(),
        })
        .await?;
    let changed = match outcome.response {
        Applied::Worker(w) => {
            tracing::info!(
                target: "drover::audit",
                %actor,
                action = "set_state",
                worker = %w.id,
                to = %w.state,
                version = w.version,
                "worker state set"
            );
            StateChanged::Worker(w)
        }
        Applied::ForcedDisable {
            worker,
            under_replicated,
        } => {
            tracing::warn!(
                target: "drover::audit",
                %actor,
                action = "force_disable",
                worker = %worker.id,
                partitions_below_rf = under_replicated,
                version = worker.version,
                "worker disabled by force: its replicas were dropped"
            );
            StateChanged::ForcedDisable(ForcedDisable {
                worker,
                partitions_below_rf: under_replicated,
            })
        }
        other => return Err(unexpected(&other)),
    };
    Ok(Json(changed).into_response())
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    /// Compare-and-set: remove only at this version.
    expected_version: Option<u64>,
}

/// Removes a Disabled worker, leaving a tombstone with its last generation.
#[utoipa::path(
    delete,
    path = "/v1/workers/{id}",
    operation_id = "remove_worker",
    tag = "workers",
    params(WorkerPath, DeleteQuery),
    responses(
        (status = 200, description = "Removed", body = WorkerRemoved),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn remove(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let worker = worker_id(&id)?;
    let q: DeleteQuery = parse_query(&uri)?;
    let outcome = node
        .propose(Command::Remove {
            worker,
            expected_version: q.expected_version,
        })
        .await?;
    match outcome.response {
        Applied::Removed { worker, generation } => {
            tracing::info!(
                target: "drover::audit",
                actor = "admin",
                action = "remove_worker",
                %worker,
                generation,
                "worker removed"
            );
            Ok(Json(WorkerRemoved {
                id: worker,
                removed: true,
                generation,
            })
            .into_response())
        }
        other => Err(unexpected(&other)),
    }
}

/// Recommissions a disabled worker (SPEC §1: Disabled → Provisioning is its agent's
/// registration): asks its running agent to register again and answers once it has — back in
/// Provisioning at a new generation, Active when the agent says it is ready. 409 when the
/// worker is not Disabled or no agent of it is heard (start its agent process); 503 when the
/// agent did not register within a few heartbeat intervals.
#[utoipa::path(
    post,
    path = "/v1/workers/{id}/recommission",
    operation_id = "recommission_worker",
    tag = "workers",
    params(WorkerPath),
    responses(
        (status = 200, description = "The agent registered again", body = Recommissioned),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn recommission(
    State(node): State<Node>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
) -> ApiResult<Response> {
    let worker = worker_id(&id)?;
    Ok(Json(node.recommission(&worker).await?).into_response())
}
