//! `/v1/workers`: registration, records, lifecycle state changes and removal (SPEC §1, §4).
//! Soft fields (liveness, drain progress) arrive with the scheduler.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use drover_types::{
    Actor, Command, Registration, Response as Applied, Worker, WorkerId, WorkerState,
    validate_address, validate_labels, validate_worker_id, validate_zone,
};
use serde::{Deserialize, Serialize};

use super::auth::Role;
use super::{ApiError, ApiResult, ReadQuery, body, page_limit, parse_json, parse_query};
use crate::node::Node;

fn worker_id(id: &str) -> ApiResult<WorkerId> {
    validate_worker_id(id).map_err(ApiError::bad_request)?;
    Ok(WorkerId::from(id))
}

/// A worker record with what is not in it: the replicas it holds (replicated) and, when this
/// node leads, its liveness (leader soft state).
fn worker_view(node: &Node, s: &drover_types::ClusterState, w: &Worker) -> serde_json::Value {
    let mut v = serde_json::to_value(w).unwrap_or_default();
    let replicas: Vec<serde_json::Value> = s
        .replicas_on(&w.id)
        .filter_map(|p| {
            p.replica(&w.id)
                .map(|r| serde_json::json!({"partition": p.id, "role": r.role, "since": r.since}))
        })
        .collect();
    v["replicas"] = serde_json::Value::from(replicas);
    if node.heartbeats().leader_since().is_some() {
        let liveness =
            node.heartbeats()
                .liveness(w, std::time::Instant::now(), &node.config().liveness);
        v["liveness"] = serde_json::to_value(liveness).unwrap_or_default();
        if w.state == WorkerState::Draining {
            v["drain"] = drain_progress(node, s, w);
        }
    }
    v
}

/// Drain progress (SPEC §3) as the leader sees it: what the drain started with, what is left,
/// moves in flight, and why anything is stuck (from a fresh planning round, which depends on
/// liveness — hence leader only).
fn drain_progress(node: &Node, s: &drover_types::ClusterState, w: &Worker) -> serde_json::Value {
    use drover_types::ReplicaRole;
    let intent = s.drain_of(&w.id);
    let held: Vec<&drover_types::Partition> = s.replicas_on(&w.id).collect();
    let in_flight = held
        .iter()
        .filter(|p| {
            p.replica(&w.id)
                .is_some_and(|r| r.role == ReplicaRole::Leaving)
                || p.replicas
                    .iter()
                    .any(|r| r.role == ReplicaRole::Joining && r.replaces.as_ref() == Some(&w.id))
        })
        .count();
    let view = node.planner_view(s, std::time::Instant::now());
    let plan = drover_scheduler::plan(s, &view, &drover_scheduler::PlannerConfig::default());
    let mine: BTreeSet<u32> = held.iter().map(|p| p.id).collect();
    let blocked: Vec<&drover_scheduler::Blocked> = plan
        .blocked
        .iter()
        .filter(|b| b.worker.as_ref() == Some(&w.id) || mine.contains(&b.partition))
        .collect();
    serde_json::json!({
        "drain": intent.map(|d| d.id),
        "requested_ms": intent.map(|d| d.requested_ms),
        "replicas_total": intent.map(|d| d.replicas_total),
        "replicas_remaining": held.len(),
        "moves_in_flight": in_flight,
        "blocked": blocked,
    })
}

fn worker_response(outcome: Applied) -> ApiResult<Response> {
    match outcome {
        Applied::Worker(w) => Ok(Json(w).into_response()),
        Applied::ForcedDisable {
            worker,
            under_replicated,
        } => Ok(Json(serde_json::json!({
            "worker": worker,
            "partitions_below_rf": under_replicated,
        }))
        .into_response()),
        Applied::Removed { worker, generation } => Ok(Json(
            serde_json::json!({"id": worker, "removed": true, "generation": generation}),
        )
        .into_response()),
        other => Err(ApiError::internal(format!("unexpected answer {other:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    incarnation: u64,
    address: String,
    zone: Option<String>,
    capacity: Option<u32>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

pub async fn register(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: RegisterBody = parse_json(&raw)?;
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
    worker_response(outcome.response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<WorkerState>,
    zone: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    #[serde(default)]
    stale: bool,
}

#[derive(Debug, Serialize)]
struct WorkerPage {
    items: Vec<serde_json::Value>,
    more: bool,
    next_cursor: Option<String>,
}

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
    let items = page
        .iter()
        .map(|w| worker_view(&node, &state.state, w))
        .collect();
    Ok(Json(WorkerPage {
        items,
        more,
        next_cursor,
    })
    .into_response())
}

pub async fn show(
    State(node): State<Node>,
    Path(id): Path<String>,
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
        Some(w) => Ok(Json(worker_view(&node, &state.state, w)).into_response()),
        None => Err(ApiError::not_found(format!("no worker {id}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateBody {
    state: WorkerState,
    expected_version: Option<u64>,
    #[serde(default)]
    force: bool,
    /// Agents send their generation; it fences a stale process.
    generation: Option<u64>,
}

pub async fn set_state(
    State(node): State<Node>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: StateBody = parse_json(&raw)?;
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
    let outcome = node
        .propose(Command::SetState {
            worker,
            to: b.state,
            by,
            generation: b.generation,
            expected_version: b.expected_version,
            force: b.force,
        })
        .await?;
    worker_response(outcome.response)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    expected_version: Option<u64>,
}

pub async fn remove(
    State(node): State<Node>,
    Path(id): Path<String>,
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
    worker_response(outcome.response)
}

/// Parses `30s`, `500ms`, `1m` or a plain number of seconds.
fn parse_wait(s: &str) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (n, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        _ => None,
    }
}

/// The longest a long poll may wait (SPEC §4).
const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignmentsQuery {
    #[serde(default)]
    after: u64,
    wait: Option<String>,
}

#[derive(Debug, Serialize)]
struct Peer {
    worker: String,
    address: Option<String>,
    role: drover_types::ReplicaRole,
}

#[derive(Debug, Serialize)]
struct Assignment {
    partition: u32,
    key_range: drover_types::KeyRange,
    role: drover_types::ReplicaRole,
    since: u64,
    epoch: u64,
    leader: bool,
    peers: Vec<Peer>,
}

#[derive(Debug, Serialize)]
struct Assignments {
    worker: String,
    state: WorkerState,
    generation: u64,
    dead: bool,
    /// Pass as `after` to wait for the next change.
    version: u64,
    replicas: Vec<Assignment>,
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
pub async fn assignments_poll(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let id = worker_id(&id)?;
    let q: AssignmentsQuery = parse_query(&uri)?;
    let wait = match q.wait.as_deref() {
        None => std::time::Duration::ZERO,
        Some(w) => parse_wait(w).filter(|d| *d <= MAX_WAIT).ok_or_else(|| {
            ApiError::bad_request(format!(
                "wait {w:?} is not a duration of at most 60s (e.g. 30s, 500ms)"
            ))
        })?,
    };
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    generation: u64,
}

/// An agent's heartbeat: leader soft state, never a Raft write. Fenced by generation against
/// the applied state (stale → 409 `stale_generation`, declared dead → 409 `fenced`).
pub async fn heartbeat(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let worker = worker_id(&id)?;
    let b: HeartbeatBody = parse_json(&raw)?;
    if let Some(fwd) = node.write_route(Method::POST, &uri, &headers, raw).await? {
        return Ok(fwd);
    }
    {
        let guard = node.state().read();
        let Some(w) = guard.state.workers.get(&worker) else {
            return Err(ApiError::not_found(format!("no worker {worker}")));
        };
        drover_types::check_generation(w, b.generation)?;
    }
    node.heartbeats()
        .record(&worker, b.generation, std::time::Instant::now());
    let l = node.config().liveness;
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(Json(serde_json::json!({
        "worker": worker,
        "generation": b.generation,
        "heartbeat_interval_ms": ms(l.heartbeat_interval),
        "suspect_after_ms": ms(l.suspect_after),
        "dead_after_ms": ms(l.dead_after),
    }))
    .into_response())
}
