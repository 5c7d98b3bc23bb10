//! `POST /v1/what-if` (SPEC §3 "Safety brakes"): what stopping or draining a set of workers, or
//! a zone, would do — partitions below RF, below a majority, losing their preferred leader, and
//! for a drain the plan it would commit. Answered by the leader (it knows who is alive) from the
//! same planner that executes; it changes nothing.

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::{IntoResponse, Response};
use drover_api::{WhatIf, WhatIfRequest};
use drover_scheduler::what_if;
use drover_types::{WorkerId, validate_worker_id};

use super::error::{ApiError, ApiResult, NotFound, StandardErrors, TooLarge};
use super::extract::{body, parse_json};
use crate::core::Node;

/// What an action on a set of workers or a zone would do; nothing is changed.
#[utoipa::path(
    post,
    path = "/v1/what-if",
    operation_id = "what_if",
    tag = "drains",
    request_body = WhatIfRequest,
    responses(
        (status = 200, description = "What the action would do", body = WhatIf),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 413, response = TooLarge),
    )
)]
pub async fn what_if_action(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: WhatIfRequest = parse_json(&raw)?;
    let named = match (&b.workers, &b.zone) {
        (Some(ids), None) => {
            let mut set = BTreeSet::new();
            for id in ids {
                validate_worker_id(id)
                    .map_err(|e| ApiError::bad_request(format!("field workers: {e}")))?;
                set.insert(WorkerId::from(id.as_str()));
            }
            if set.is_empty() || set.len() != ids.len() {
                return Err(ApiError::bad_request(
                    "field workers: name each worker once, at least one",
                ));
            }
            Some(set)
        }
        (None, Some(zone)) if !zone.is_empty() => None,
        (None, Some(_)) => return Err(ApiError::bad_request("field zone: must not be empty")),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of workers (a list of ids) or zone",
            ));
        }
    };
    // Like a drain's plan: judged only once this leader knows who is alive.
    node.liveness_known().await;
    let guard = node.state().read();
    let s = &guard.state;
    let workers = match (named, &b.zone) {
        (Some(set), _) => {
            if let Some(missing) = set.iter().find(|w| !s.workers.contains_key(*w)) {
                return Err(ApiError::not_found(format!("no worker {missing}")));
            }
            set
        }
        (None, zone) => {
            let set: BTreeSet<WorkerId> = s
                .workers
                .values()
                .filter(|w| w.zone.as_ref() == zone.as_ref())
                .map(|w| w.id.clone())
                .collect();
            if set.is_empty() {
                let zone = zone.as_deref().unwrap_or_default();
                return Err(ApiError::not_found(format!("no worker in zone {zone}")));
            }
            set
        }
    };
    let view = node.planner_view(s, &node.state().clock(), tokio::time::Instant::now());
    let answer: WhatIf = what_if(s, &view, &workers, b.action);
    Ok(Json(answer).into_response())
}
