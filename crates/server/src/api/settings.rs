//! `/v1/settings` (SPEC §4): the replicated cluster settings — liveness timing, scheduler
//! throttles, the join timeout, the KV value limit and event retention. Admin only (the worker
//! token is refused by auth). A change is one Raft command, validated whole here and again by
//! `apply`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use drover_api::SettingsRequest;
use drover_types::{Command, Response as Applied, Settings, SettingsPatch};

use super::error::{ApiError, ApiResult, Conflict, StandardErrors, TooLarge};
use super::extract::{ReadQuery, body, parse_json, parse_query};
use crate::core::Node;

/// The cluster settings, through the leader (or this node's applied state with `stale`).
#[utoipa::path(
    get,
    path = "/v1/settings",
    operation_id = "get_settings",
    tag = "cluster",
    params(ReadQuery),
    responses(
        (status = 200, description = "The settings in force", body = Settings),
        StandardErrors,
    )
)]
pub async fn get(State(node): State<Node>, uri: Uri) -> ApiResult<Response> {
    let _q: ReadQuery = parse_query(&uri)?;
    let settings = node.state().read().state.settings.clone();
    Ok(Json(settings).into_response())
}

/// Changes cluster settings in one Raft command.
#[utoipa::path(
    put,
    path = "/v1/settings",
    operation_id = "put_settings",
    tag = "cluster",
    request_body = SettingsRequest,
    responses(
        (status = 200, description = "The settings after the change", body = Settings),
        StandardErrors,
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn put(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: SettingsRequest = parse_json(&raw)?;
    let patch = SettingsPatch {
        heartbeat_interval_ms: b.heartbeat_interval_ms,
        suspect_after_ms: b.suspect_after_ms,
        dead_after_ms: b.dead_after_ms,
        max_moves_per_worker: b.max_moves_per_worker,
        max_moves_total: b.max_moves_total,
        join_timeout_ms: b.join_timeout_ms,
        kv_max_value_bytes: b.kv_max_value_bytes,
        events_retained: b.events_retained,
        min_available: b.min_available,
        max_deaths_fraction: b.max_deaths_fraction,
    };
    // Refuse what cannot be valid before it costs a Raft round; `apply` checks again against
    // the state it applies to.
    node.state()
        .read()
        .state
        .settings
        .patched(&patch)
        .map_err(ApiError::bad_request)?;
    let outcome = node
        .propose(Command::UpdateSettings {
            patch,
            expected_version: b.expected_version,
        })
        .await?;
    match outcome.response {
        Applied::Settings(s) => {
            tracing::info!(target: "drover::audit", actor = "admin", action = "set_settings", settings = ?s, "cluster settings changed");
            Ok(Json(s).into_response())
        }
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}
