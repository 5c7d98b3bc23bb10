//! Drains (SPEC §3): `POST /v1/workers/{id}/drain` and `POST /v1/drain` for a set (a rack, a
//! zone). The leader plans with the same `plan_drain` the scheduler executes; a dry run returns
//! the moves and the verdict and commits nothing, a real drain commits the intent with that
//! plan (an infeasible one too: the workers then stay Draining with `blocked` reasons).

use std::collections::BTreeSet;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use drover_scheduler::plan_drain;
use drover_types::{Command, RejectCode, Response as Applied, WorkerId, validate_worker_id};
use serde::Deserialize;

use super::{ApiError, ApiResult, body, parse_json};
use crate::node::Node;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneBody {
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetBody {
    workers: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

pub async fn drain_one(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: OneBody = if raw.is_empty() {
        OneBody::default()
    } else {
        parse_json(&raw)?
    };
    drain(node, vec![id], b.dry_run, uri, headers, raw).await
}

pub async fn drain_set(
    State(node): State<Node>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: SetBody = parse_json(&raw)?;
    drain(node, b.workers, b.dry_run, uri, headers, raw).await
}

async fn drain(
    node: Node,
    ids: Vec<String>,
    dry_run: bool,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> ApiResult<Response> {
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
    // Planning reads the state the commit will be checked against; if another commit moved a
    // partition's epoch in between, `apply` refuses the plan and we plan again.
    for _ in 0..5 {
        let plan = {
            let guard = node.state().read();
            let s = &guard.state;
            if let Some(missing) = workers.iter().find(|w| !s.workers.contains_key(*w)) {
                return Err(ApiError::not_found(format!("no worker {missing}")));
            }
            let view = node.planner_view(s, std::time::Instant::now());
            plan_drain(s, &view, &workers)
        };
        if dry_run {
            return Ok(Json(serde_json::json!({
                "dry_run": true,
                "feasible": plan.feasible,
                "moves": plan.moves,
                "blocked": plan.blocked,
            }))
            .into_response());
        }
        let command = Command::StartDrain {
            workers: workers.iter().cloned().collect(),
            moves: plan.moves.clone(),
        };
        match node.propose(command).await {
            Ok(outcome) => {
                let Applied::Drain(intent) = outcome.response else {
                    return Err(ApiError::internal(
                        "a drain was answered with something else",
                    ));
                };
                return Ok(Json(serde_json::json!({
                    "dry_run": false,
                    "feasible": plan.feasible,
                    "drain": intent,
                    "blocked": plan.blocked,
                }))
                .into_response());
            }
            Err(e) if e.code == RejectCode::StaleEpoch.as_str() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ApiError::unavailable(
        "placements kept changing while planning the drain; retry",
        node.leader(),
    ))
}
