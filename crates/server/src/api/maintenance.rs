//! `PUT/DELETE /v1/workers/{id}/maintenance` (SPEC §1 "Cordon and maintenance") and
//! `POST /v1/brake/release` (SPEC §3 "Safety brakes").
//!
//! A maintenance is a restart without data movement: the worker keeps its replicas, its
//! preferred leaderships move off, and until `until` it is not declared dead. It is refused with
//! `409 budget_exceeded` when it would leave a partition with fewer than `min_available` serving
//! replicas on workers alive and not in maintenance (both halves of that check are the core's,
//! `core/maintenance.rs`). The admin token, or the worker's own agent (fleet token with its
//! generation), may ask.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use drover_types::{Actor, Brakes, Command, MAX_MAINTENANCE_MS, Response as Applied, Worker};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Role;
use super::error::{AgentErrors, ApiError, ApiResult, NotFound, StandardErrors};
use super::extract::{ApiPath, WorkerPath, body, check_reason, expiry, parse_json, parse_query};
use super::workers::worker_id;
use crate::core::{EnterMaintenance, Node};

/// A maintenance: why, and until when — `until` (ms since the Unix epoch) or `for` (a duration
/// from the leader's clock, such as `10m`); one of them is required, at most a day ahead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    /// Why, for whoever looks next: 1-256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    reason: String,
    /// When it ends by itself, in ms since the Unix epoch; in the future, at most a day ahead.
    until: Option<u64>,
    /// Or how long from now (the leader's clock): `10m`, `1h`; at most `24h`.
    #[serde(rename = "for")]
    #[schema(example = "10m")]
    for_: Option<String>,
    /// The agent's generation: required with the worker token (its own worker only).
    generation: Option<u64>,
}

/// `DELETE …/maintenance?generation=G`: the agent's generation, with the worker token.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndQuery {
    /// The agent's generation: required with the worker token.
    generation: Option<u64>,
}

/// The one actor rule of these routes: the worker token acts as the worker's agent and must
/// say its generation; the admin token acts as `admin`.
fn actor(role: Role, generation: Option<u64>) -> ApiResult<Actor> {
    match (role, generation) {
        (Role::Worker, None) => Err(ApiError::bad_request(
            "field generation: required with the worker token",
        )),
        (Role::Worker, Some(_)) | (_, Some(_)) => Ok(Actor::Agent),
        _ => Ok(Actor::Operator),
    }
}

/// The maintenance's end, required and at most a day ahead of `now_ms`.
fn maintenance_until(b: &MaintenanceRequest, now_ms: u64) -> ApiResult<u64> {
    let until = expiry(b.until, b.for_.as_deref(), now_ms)?.ok_or_else(|| {
        ApiError::bad_request("give until or for: a maintenance always ends (at most 24h)")
    })?;
    if until - now_ms > MAX_MAINTENANCE_MS {
        return Err(ApiError::bad_request(
            "a maintenance lasts at most 24h; renew it if the restart takes longer",
        ));
    }
    Ok(until)
}

/// Puts a worker into maintenance, or renews it (SPEC §1). The same maintenance again changes
/// nothing.
#[utoipa::path(
    put,
    path = "/v1/workers/{id}/maintenance",
    operation_id = "start_maintenance",
    tag = "workers",
    params(WorkerPath),
    request_body = MaintenanceRequest,
    responses(
        (status = 200, description = "The worker record with its maintenance", body = Worker),
        AgentErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn put(
    State(node): State<Node>,
    Extension(role): Extension<Role>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: MaintenanceRequest = parse_json(&raw)?;
    check_reason(&b.reason)?;
    let by = actor(role, b.generation)?;
    // On the leader (the route layer forwards): `for` counts from its clock, the one that
    // judges deaths and the expiry.
    let until_ms = maintenance_until(&b, node.now_ms())?;
    let w = node
        .enter_maintenance(EnterMaintenance {
            worker,
            reason: b.reason.clone(),
            until_ms,
            by,
            generation: b.generation,
        })
        .await?;
    let actor = by.name(&w.id);
    tracing::info!(target: "drover::audit", %actor, action = "maintenance", worker = %w.id, reason = %b.reason, until = until_ms, version = w.version, "worker in maintenance");
    Ok(Json(w).into_response())
}

/// Ends a worker's maintenance now: the normal liveness rules apply again. A worker not in
/// maintenance succeeds unchanged (a safe retry).
#[utoipa::path(
    delete,
    path = "/v1/workers/{id}/maintenance",
    operation_id = "end_maintenance",
    tag = "workers",
    params(WorkerPath, EndQuery),
    responses(
        (status = 200, description = "The worker record without maintenance", body = Worker),
        AgentErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn delete(
    State(node): State<Node>,
    Extension(role): Extension<Role>,
    ApiPath(WorkerPath { id }): ApiPath<WorkerPath>,
    uri: Uri,
) -> ApiResult<Response> {
    let worker = worker_id(&id)?;
    let q: EndQuery = parse_query(&uri)?;
    let by = actor(role, q.generation)?;
    let outcome = node
        .propose(Command::EndMaintenance {
            worker,
            by,
            generation: q.generation,
            version: None,
        })
        .await?;
    let Applied::Worker(w) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    if outcome.changed {
        let actor = by.name(&w.id);
        tracing::info!(target: "drover::audit", %actor, action = "end_maintenance", worker = %w.id, version = w.version, "maintenance ended");
    }
    Ok(Json(w).into_response())
}

/// `POST /v1/brake/release`: why the operator lets the deaths through.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// Why, for whoever looks next: 1-256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    reason: Option<String>,
}

/// Releases the mass-failure brake (SPEC §3): the deaths it held back are declared and their
/// replicas re-created; it does not trip again for one `dead_after`. Not tripped: the release
/// still holds the brake off for that window (an operator expecting more failures).
#[utoipa::path(
    post,
    path = "/v1/brake/release",
    operation_id = "release_brake",
    tag = "cluster",
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "The scheduler's brakes after the release", body = Brakes),
        StandardErrors,
    )
)]
pub async fn release(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: ReleaseRequest = if raw.is_empty() {
        ReleaseRequest::default()
    } else {
        parse_json(&raw)?
    };
    if let Some(r) = &b.reason {
        check_reason(r)?;
    }
    let window = node.state().read().state.settings.dead_after_ms;
    let until_ms = node.now_ms().saturating_add(window);
    let outcome = node
        .propose(Command::ReleaseBrake {
            by: Actor::Operator,
            version: None,
            reason: b.reason.clone(),
            until_ms: Some(until_ms),
        })
        .await?;
    let Applied::Brakes(brakes) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    tracing::warn!(target: "drover::audit", actor = "admin", action = "release_brake", reason = ?b.reason, until = until_ms, "mass-failure brake released");
    Ok(Json(brakes).into_response())
}
