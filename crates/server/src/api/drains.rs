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
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use drover_api::{DrainAnswer, DrainOneRequest, DrainSetRequest};
use drover_types::{WorkerId, validate_worker_id};

use super::error::{ApiError, ApiResult, Conflict, NotFound, StandardErrors, TooLarge};
use super::extract::{ApiPath, WorkerPath, body, check_reason, expiry_named, parse_json};
use crate::core::{DrainRequest, Node};
use drover_types::OnDeadline;

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
    _uri: Uri,
    _headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    // The body is optional: none, or JSON `null`, starts the drain.
    let b: DrainOneRequest = if raw.is_empty() {
        DrainOneRequest::default()
    } else {
        parse_json::<Option<DrainOneRequest>>(&raw)?.unwrap_or_default()
    };
    let opts = Options {
        dry_run: b.dry_run,
        allow_blocked: b.allow_blocked,
        reason: b.reason,
        deadline: b.deadline,
        deadline_in: b.deadline_in,
        on_deadline: b.on_deadline,
    };
    drain(node, vec![id], opts).await
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
    _uri: Uri,
    _headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let b: DrainSetRequest = parse_json(&raw)?;
    let opts = Options {
        dry_run: b.dry_run,
        allow_blocked: b.allow_blocked,
        reason: b.reason,
        deadline: b.deadline,
        deadline_in: b.deadline_in,
        on_deadline: b.on_deadline,
    };
    drain(node, b.workers, opts).await
}

/// What both drain requests ask besides the workers.
struct Options {
    dry_run: bool,
    allow_blocked: bool,
    reason: Option<String>,
    deadline: Option<u64>,
    deadline_in: Option<String>,
    on_deadline: OnDeadline,
}

impl Options {
    /// The deadline asked for, from `now_ms` (the proposer's clock).
    fn deadline_ms(&self, now_ms: u64) -> ApiResult<Option<u64>> {
        let at = expiry_named(
            ("deadline", self.deadline),
            ("deadline_in", self.deadline_in.as_deref()),
            now_ms,
        )?;
        if self.on_deadline == OnDeadline::Force && at.is_none() {
            return Err(ApiError::bad_request(
                "field on_deadline: force needs a deadline or deadline_in",
            ));
        }
        Ok(at)
    }
}

/// Starts (or, dry, plans) a drain of the workers `ids` on the leader.
async fn drain(node: Node, ids: Vec<String>, opts: Options) -> ApiResult<Response> {
    if let Some(r) = &opts.reason {
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
    // On the leader (the route layer forwards): `deadline_in` counts from its clock, the one
    // that judges the deadline.
    let deadline_ms = opts.deadline_ms(node.now_ms())?;
    let req = DrainRequest {
        workers,
        dry_run: opts.dry_run,
        allow_blocked: opts.allow_blocked,
        reason: opts.reason,
        deadline_ms,
        on_deadline: opts.on_deadline,
    };
    Ok(Json(node.drain(req).await?).into_response())
}
