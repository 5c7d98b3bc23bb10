//! `/v1/cluster`, membership changes, health and readiness, and the test-only fault endpoints.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use drover_raft::PeerFault;
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, Route, body, parse_json};
use crate::node::Node;

/// How far (in log entries) a follower may trail the leader and still count as caught up.
pub(crate) const CAUGHT_UP_LAG: u64 = 64;

/// How long a membership change may take to commit before the API gives up waiting.
const MEMBERSHIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// Ready: a leader is known and this node has applied what it has in its log (within a small
/// window, since a follower's last entries may not be committed yet).
pub async fn readyz(State(node): State<Node>) -> Response {
    let m = node.raft().metrics().borrow().clone();
    let applied = m.last_applied.map_or(0, |l| l.index);
    let last = m.last_log_index.unwrap_or(0);
    let ready = m.current_leader.is_some() && last.saturating_sub(applied) <= CAUGHT_UP_LAG;
    let body = serde_json::json!({
        "ready": ready,
        "leader": m.current_leader,
        "applied_index": applied,
        "last_log_index": last,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

#[derive(Debug, Serialize)]
struct Member {
    id: u64,
    address: String,
    role: &'static str,
}

#[derive(Debug, Serialize)]
struct ClusterStatus {
    cluster_id: String,
    /// The node answering.
    node: u64,
    state: String,
    leader: Option<u64>,
    term: u64,
    members: Vec<Member>,
    commit_index: u64,
    applied_index: u64,
    last_log_index: u64,
    state_version: u64,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    /// Snapshots this node received from a leader since it started.
    snapshots_installed: u64,
}

pub async fn status(State(node): State<Node>) -> Json<impl Serialize> {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let members = membership
        .nodes()
        .map(|(id, n)| Member {
            id: *id,
            address: n.addr.clone(),
            role: if voters.contains(id) {
                "voter"
            } else {
                "learner"
            },
        })
        .collect();
    let applied_index = m.last_applied.map_or(0, |l| l.index);
    Json(ClusterStatus {
        cluster_id: node.config().cluster_id.clone(),
        node: node.id(),
        state: format!("{:?}", m.state).to_lowercase(),
        leader: m.current_leader,
        term: m.current_term,
        members,
        commit_index: node.commit_index().max(applied_index),
        applied_index,
        last_log_index: m.last_log_index.unwrap_or(0),
        state_version: node.state().read().state.version,
        snapshot_index: m.snapshot.map(|l| l.index),
        purged_index: m.purged.map(|l| l.index),
        snapshots_installed: node.snapshots_installed(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    id: u64,
    address: String,
}

/// Adds a node as a learner; the leader promotes it to voter once it has caught up.
pub async fn add_member(
    State(node): State<Node>,
    uri: Uri,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let raw = body(raw)?;
    let req: AddMember = parse_json(&raw)?;
    if req.id == 0 {
        return Err(ApiError::bad_request(
            "field id: must be a positive integer",
        ));
    }
    if req.address.parse::<std::net::SocketAddr>().is_err() {
        return Err(ApiError::bad_request(format!(
            "field address: {:?} is not IP:PORT",
            req.address
        )));
    }
    if let Route::Forward(leader) = node.route(&headers)? {
        return Ok(node
            .forward(&leader, Method::POST, &uri, &headers, raw)
            .await);
    }
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if let Some(existing) = membership.get_node(&req.id) {
        if existing.addr != req.address {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!(
                    "node {} is a member at {}; remove it first to change its address",
                    req.id, existing.addr
                ),
            ));
        }
        let role = if membership.voter_ids().any(|v| v == req.id) {
            "voter"
        } else {
            "learner"
        };
        return Ok(
            Json(serde_json::json!({"id": req.id, "address": req.address, "role": role}))
                .into_response(),
        );
    }
    node.raft()
        .add_learner(req.id, BasicNode::new(&req.address), false)
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("cannot add node {}: {e}", req.id), node.leader())
        })?;
    tracing::info!(id = req.id, address = %req.address, "added learner; it becomes a voter once caught up");
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"id": req.id, "address": req.address, "role": "learner"})),
    )
        .into_response())
}

/// Removes a node, refusing a change that would leave the cluster without a quorum of
/// reachable voters.
pub async fn remove_member(
    State(node): State<Node>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("member id {id:?} is not a number")))?;
    if let Route::Forward(leader) = node.route(&headers)? {
        return Ok(node
            .forward(&leader, Method::DELETE, &uri, &headers, Bytes::new())
            .await);
    }
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(ApiError::not_found(format!("node {id} is not a member")));
    }
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let change = if voters.contains(&id) {
        let remaining: BTreeSet<u64> = voters.iter().copied().filter(|v| *v != id).collect();
        if remaining.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "quorum_loss",
                "cannot remove the last voter",
            ));
        }
        let reachable = node.reachable_voters(&m, &remaining).await;
        let majority = remaining.len() / 2 + 1;
        if reachable < majority {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "quorum_loss",
                format!(
                    "removing node {id} would leave {} voters of which only {reachable} are \
                     reachable and caught up; a quorum needs {majority}",
                    remaining.len()
                ),
            ));
        }
        ChangeMembers::RemoveVoters(BTreeSet::from([id]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([id]))
    };
    // A change that cannot reach a quorum would wait forever; answer instead, saying the
    // outcome is unknown (it may still commit).
    let change = tokio::time::timeout(
        MEMBERSHIP_TIMEOUT,
        node.raft().change_membership(change, false),
    );
    match change.await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            let msg = format!("cannot remove node {id}: {e}");
            return Err(ApiError::unavailable(msg, node.leader()));
        }
        Err(_) => {
            let msg = format!(
                "removing node {id} did not commit within {MEMBERSHIP_TIMEOUT:?}; its outcome is unknown"
            );
            return Err(ApiError::outcome_unknown(msg, node.leader()));
        }
    }
    tracing::info!(id, "removed member");
    Ok(Json(serde_json::json!({"id": id, "removed": true})).into_response())
}

pub async fn faults(State(node): State<Node>) -> Json<BTreeMap<u64, PeerFault>> {
    Json(node.faults().all())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFault {
    peer: u64,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    delay_ms: u64,
}

pub async fn set_fault(
    State(node): State<Node>,
    raw: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let f: SetFault = parse_json(&body(raw)?)?;
    node.faults().set(
        f.peer,
        PeerFault {
            drop: f.drop,
            delay_ms: f.delay_ms,
        },
    );
    tracing::warn!(
        peer = f.peer,
        drop = f.drop,
        delay_ms = f.delay_ms,
        "fault injection changed"
    );
    Ok(Json(node.faults().all()).into_response())
}

pub async fn clear_faults(State(node): State<Node>) -> Json<BTreeMap<u64, PeerFault>> {
    node.faults().clear();
    Json(node.faults().all())
}

/// Whether this node is leader right now (for background tasks).
pub(crate) fn is_leader(node: &Node) -> bool {
    node.raft().metrics().borrow().state == ServerState::Leader
}
