//! `/v1/workers`: registration, records, lifecycle state changes and removal (SPEC §1, §4).
//! Soft fields (liveness, drain progress) arrive with the scheduler.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use drover_api::{
    Assignment, Assignments, ForcedDisable, HeartbeatAck, HeartbeatRequest, Peer, RegisterRequest,
    StateChanged, StateRequest, WorkerPage, WorkerRemoved, WorkerView,
};
use drover_types::{
    Actor, Command, Registration, Response as Applied, Worker, WorkerId, WorkerState,
    validate_address, validate_labels, validate_worker_id, validate_zone,
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::auth::Role;
use super::error::{
    AgentErrors, ApiError, ApiResult, BadRequest, Conflict, NotFound, StandardErrors, Unauthorized,
};
use super::extract::{
    ApiPath, ReadQuery, WorkerPath, body, check_reason, long_poll_wait, no_dot_segments,
    page_limit, parse_json, parse_query,
};
use super::forward::Forward;
use crate::core::liveness::Timing;
use crate::core::{Node, RoundOnce};

pub(crate) fn worker_id(id: &str) -> ApiResult<WorkerId> {
    validate_worker_id(id).map_err(ApiError::bad_request)?;
    no_dot_segments("worker id", id)?;
    Ok(WorkerId::from(id))
}

fn unexpected(other: &Applied) -> ApiError {
    ApiError::internal(format!("unexpected answer {other:?}"))
}

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
    uri: Uri,
    headers: HeaderMap,
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
    if let Some(fwd) = node.write_route(Method::PUT, &uri, &headers, raw).await? {
        return Ok(fwd);
    }
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
        other => Err(unexpected(&other)),
    }
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
pub async fn list(State(node): State<Node>, uri: Uri, headers: HeaderMap) -> ApiResult<Response> {
    let q: ListQuery = parse_query(&uri)?;
    let limit = page_limit(q.limit)?;
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
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
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = worker_id(&id)?;
    let q: ReadQuery = parse_query(&uri)?;
    if let Some(fwd) = node.read_route(q.stale, &uri, &headers).await? {
        return Ok(fwd);
    }
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
    uri: Uri,
    headers: HeaderMap,
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
    if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
        return Ok(fwd);
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
    headers: HeaderMap,
) -> ApiResult<Response> {
    let worker = worker_id(&id)?;
    let q: DeleteQuery = parse_query(&uri)?;
    if let Some(fwd) = node
        .write_route(Method::DELETE, &uri, &headers, Bytes::new())
        .await?
    {
        return Ok(fwd);
    }
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

fn assignments(s: &drover_types::ClusterState, w: &Worker) -> Assignments {
    let replicas = s
        .replicas_on(&w.id)
        .filter_map(|p| {
            let mine = p.replica(&w.id)?;
            Some(Assignment {
                partition: p.id,
                key_range: p.key_range,
                role: mine.role,
                since: mine.since,
                epoch: p.epoch,
                leader: p.leader.as_ref() == Some(&w.id),
                peers: p
                    .replicas
                    .iter()
                    .filter(|r| r.worker != w.id)
                    .map(|r| Peer {
                        worker: r.worker.to_string(),
                        address: s.workers.get(&r.worker).map(|x| x.address.clone()),
                        role: r.role,
                    })
                    .collect(),
            })
        })
        .collect();
    Assignments {
        worker: w.id.to_string(),
        state: w.state,
        generation: w.generation,
        dead: w.dead,
        version: w.assignments_version,
        replicas,
    }
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
    // Subscribe before the first look, so a change between the look and the wait is seen.
    let mut versions = node.versions();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let answer = {
            let guard = node.state().read();
            let Some(w) = guard.state.workers.get(&id) else {
                return Err(ApiError::not_found(format!("no worker {id}")));
            };
            (w.assignments_version > q.after).then(|| assignments(&guard.state, w))
        };
        if let Some(a) = answer {
            return Ok(Json(a).into_response());
        }
        match tokio::time::timeout_at(deadline, versions.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out, or the node is shutting down: answer with what there is.
            _ => {
                let guard = node.state().read();
                let Some(w) = guard.state.workers.get(&id) else {
                    return Err(ApiError::not_found(format!("no worker {id}")));
                };
                return Ok(Json(assignments(&guard.state, w)).into_response());
            }
        }
    }
}

/// How long a heartbeat waits for a pending death verdict of its worker before giving up.
const VERDICT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let arrival = tokio::time::Instant::now();
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: HeartbeatRequest = parse_json(&raw)?;
    if !node.config().unsafe_test.local_heartbeats {
        if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
            return Ok(fwd);
        }
        // A quorum round that started after the heartbeat arrived, then everything it read
        // applied — including this term's first entry, so every entry of earlier terms (a death
        // an earlier leader proposed is committed or gone).
        node.linearizable().await?;
    }
    let mut settlements = node.heartbeats().settlements();
    let mut versions = node.versions();
    let deadline = arrival + VERDICT_WAIT;
    loop {
        let now = tokio::time::Instant::now();
        let answer = {
            let guard = node.state().read();
            let s = &guard.state;
            let Some(w) = s.workers.get(&worker) else {
                return Err(ApiError::not_found(format!("no worker {worker}")));
            };
            drover_types::check_generation(w, b.generation)?;
            if s.settings.version == 0 {
                None
            } else {
                let clock = node.state().clock();
                let t = Timing::at(&s.settings, &clock, now);
                Some((w.clone(), t, clock.generation_applied(&w.id, w.generation)))
            }
        };
        // A brand-new cluster: its first leader is committing the initial settings, and no
        // lease is granted under settings the cluster has not committed.
        let Some((w, t, applied)) = answer else {
            if matches!(
                tokio::time::timeout_at(deadline, versions.changed()).await,
                Ok(Ok(()))
            ) {
                continue;
            }
            return Err(ApiError::unavailable(
                "the cluster's initial settings are not committed yet; retry shortly",
                node.leader(),
            ));
        };
        let hb = node.heartbeats();
        if b.release {
            let free = hb.lease_free_from(&w, applied, t.death_threshold).max(now);
            hb.release(&worker, b.generation, free);
            tracing::info!(%worker, generation = b.generation, "lease given up");
        } else if hb.acknowledge(&worker, b.generation, arrival).is_err() {
            // A death verdict for this generation is being committed: answer once it is
            // settled (fenced, or acknowledged after all), never before.
            match tokio::time::timeout_at(deadline, settlements.changed()).await {
                Ok(Ok(())) => continue,
                _ => {
                    return Err(ApiError::unavailable(
                        format!("a death verdict for worker {worker} is being committed"),
                        node.leader(),
                    ));
                }
            }
        }
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let wait = if node.config().unsafe_test.no_lease_wait {
            std::time::Duration::ZERO
        } else {
            hb.lease_wait(&w, applied, t.death_threshold, now)
        };
        tracing::debug!(%worker, generation = b.generation, "heartbeat acknowledged");
        return Ok(Json(HeartbeatAck {
            worker,
            generation: b.generation,
            heartbeat_interval_ms: ms(t.heartbeat_interval),
            suspect_after_ms: ms(t.suspect_after),
            dead_after_ms: ms(t.dead_after),
            lease_wait_ms: ms(wait),
        })
        .into_response());
    }
}
