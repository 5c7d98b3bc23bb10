//! `PUT/DELETE /v1/workers/{id}/cordon/{holder}` (SPEC §1 "Cordon and maintenance"): an
//! operator's cordon, one per holder, with a reason and an optional expiry. Admin only (the
//! worker token is refused by auth). Each is one Raft command; `apply` validates it again on
//! every node, and the scheduler lifts an expired one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use drover_types::{
    Command, Response as Applied, Worker, WorkerId, validate_holder, validate_worker_id,
};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, NotFound, StandardErrors};
use super::extract::{ApiPath, body, check_reason, expiry, no_dot_segments, parse_json};
use crate::core::Node;

/// `{id}` and `{holder}` of a cordon's routes.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct CordonPath {
    /// The worker's id: 1-64 of `[a-z0-9._-]`, but not `.` or `..`.
    #[param(pattern = "^[a-z0-9._-]{1,64}$")]
    id: String,
    /// Who holds the cordon (a person, a team, a tool): 1-64 of `[A-Za-z0-9._:-]`, not `.`
    /// or `..`. Several holders may cordon one worker; it lifts when the last is gone.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    holder: String,
}

fn ids(path: &CordonPath) -> ApiResult<(WorkerId, String)> {
    validate_worker_id(&path.id).map_err(ApiError::bad_request)?;
    no_dot_segments("worker id", &path.id)?;
    validate_holder(&path.holder).map_err(ApiError::bad_request)?;
    Ok((WorkerId::from(path.id.as_str()), path.holder.clone()))
}

/// A cordon: why, and until when (`until` in ms since the Unix epoch, or `for` a duration
/// from the leader's clock such as `2h`; neither: until removed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CordonRequest {
    /// Why, for whoever looks next: 1-256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    reason: String,
    /// When the scheduler lifts it, in ms since the Unix epoch; must be in the future.
    until: Option<u64>,
    /// Or how long from now (the leader's clock): `30m`, `2h`, `1d`.
    #[serde(rename = "for")]
    #[schema(example = "2h")]
    for_: Option<String>,
}

/// Cordons a worker under `holder` (SPEC §1): the scheduler places no new replica on it; it
/// keeps and serves what it holds. Placing the same cordon again changes nothing; a new reason
/// or expiry replaces the holder's old one.
#[utoipa::path(
    put,
    path = "/v1/workers/{id}/cordon/{holder}",
    operation_id = "cordon_worker",
    tag = "workers",
    params(CordonPath),
    request_body = CordonRequest,
    responses(
        (status = 200, description = "The worker record with its cordons", body = Worker),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn put(
    State(node): State<Node>,
    ApiPath(path): ApiPath<CordonPath>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let (worker, holder) = ids(&path)?;
    let b: CordonRequest = parse_json(&raw)?;
    check_reason(&b.reason)?;
    // On the leader (the route layer forwards): `for` counts from its clock, the one that
    // will judge the expiry.
    let until_ms = expiry(b.until, b.for_.as_deref(), node.now_ms())?;
    let outcome = node
        .propose(Command::Cordon {
            worker,
            holder: holder.clone(),
            reason: b.reason.clone(),
            until_ms,
        })
        .await?;
    let Applied::Worker(w) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    tracing::info!(target: "drover::audit", actor = "admin", action = "cordon", worker = %w.id, %holder, reason = %b.reason, until = ?until_ms, version = w.version, "worker cordoned");
    Ok(Json(w).into_response())
}

/// Removes `holder`'s cordon. The worker stays cordoned while another holder's remains. A
/// holder with no cordon there succeeds and changes nothing (a safe retry).
#[utoipa::path(
    delete,
    path = "/v1/workers/{id}/cordon/{holder}",
    operation_id = "uncordon_worker",
    tag = "workers",
    params(CordonPath),
    responses(
        (status = 200, description = "The worker record with the cordons that remain", body = Worker),
        StandardErrors,
        (status = 404, response = NotFound),
    )
)]
pub async fn delete(
    State(node): State<Node>,
    ApiPath(path): ApiPath<CordonPath>,
) -> ApiResult<Response> {
    let (worker, holder) = ids(&path)?;
    let outcome = node
        .propose(Command::Uncordon {
            worker,
            holder: holder.clone(),
        })
        .await?;
    let Applied::Worker(w) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    if outcome.changed {
        tracing::info!(target: "drover::audit", actor = "admin", action = "uncordon", worker = %w.id, %holder, version = w.version, "cordon removed");
    }
    Ok(Json(w).into_response())
}
