//! `POST /v1/scheduler/pause` and `/v1/scheduler/resume` (SPEC §3 "Safety brakes"): an
//! operator's pause of new moves, with a reason and an optional expiry, committed as cluster
//! state so a new leader keeps it. Moves in flight finish, acknowledgements apply, deaths are
//! still judged. Admin only.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use drover_types::{Brakes, Command, Response as Applied};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, StandardErrors};
use super::extract::{body, check_reason, expiry, parse_json};
use crate::core::Node;

/// A pause: why, and until when (`until` in ms since the Unix epoch, or `for` a duration from
/// the leader's clock such as `30m`; neither: until resumed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseRequest {
    /// Why, for whoever looks next: 1-256 bytes.
    #[schema(min_length = 1, max_length = 256)]
    reason: String,
    /// When the scheduler resumes by itself, in ms since the Unix epoch; must be in the future.
    until: Option<u64>,
    /// Or how long from now (the leader's clock): `30m`, `2h`.
    #[serde(rename = "for")]
    #[schema(example = "30m")]
    for_: Option<String>,
}

/// Pauses new moves (SPEC §3). Pausing again with another reason or expiry replaces them; the
/// same pause again changes nothing.
#[utoipa::path(
    post,
    path = "/v1/scheduler/pause",
    operation_id = "pause_scheduler",
    tag = "cluster",
    request_body = PauseRequest,
    responses(
        (status = 200, description = "The scheduler's brakes, with the pause", body = Brakes),
        StandardErrors,
    )
)]
pub async fn pause(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: PauseRequest = parse_json(&raw)?;
    check_reason(&b.reason)?;
    // On the leader (the route layer forwards): `for` counts from its clock.
    let until_ms = expiry(b.until, b.for_.as_deref(), node.now_ms())?;
    let outcome = node
        .propose(Command::PauseScheduler {
            reason: b.reason.clone(),
            until_ms,
        })
        .await?;
    let Applied::Brakes(brakes) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    tracing::warn!(target: "drover::audit", actor = "admin", action = "pause_scheduler", reason = %b.reason, until = ?until_ms, "scheduler paused: no new moves");
    Ok(Json(brakes).into_response())
}

/// Ends the pause; the next round starts the moves it held back. Not paused: changes nothing.
#[utoipa::path(
    post,
    path = "/v1/scheduler/resume",
    operation_id = "resume_scheduler",
    tag = "cluster",
    responses(
        (status = 200, description = "The scheduler's brakes, without the pause", body = Brakes),
        StandardErrors,
    )
)]
pub async fn resume(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    // No body is expected; an empty JSON object is accepted too.
    if !raw.iter().all(u8::is_ascii_whitespace) {
        let _: EmptyBody = parse_json(&raw)?;
    }
    let outcome = node.propose(Command::ResumeScheduler).await?;
    let Applied::Brakes(brakes) = outcome.response else {
        return Err(ApiError::internal(format!(
            "unexpected answer {:?}",
            outcome.response
        )));
    };
    if outcome.changed {
        tracing::info!(target: "drover::audit", actor = "admin", action = "resume_scheduler", "scheduler resumed");
    }
    Ok(Json(brakes).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}
