//! `/v1/cluster`, membership changes, health and readiness, and the test-only fault endpoints.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_api::{AddMember, ClusterStatus, ErrorCode, ErrorDetail, Member, MemberRole, NodeState};
use drover_raft::PeerFault;
use openraft::{BasicNode, ChangeMembers, ServerState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{
    ApiError, ApiResult, BadRequest, Conflict, Forbidden, NotFound, StandardErrors, TooLarge,
    Unauthorized,
};
use super::extract::{ApiPath, body, parse_json};
use crate::core::{CAUGHT_UP_LAG, Node};

/// How long a membership change may take to commit before the API gives up waiting.
const MEMBERSHIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "cluster",
    security(()),
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    ready: bool,
    /// Whether this node is in the cluster's membership as far as it knows: a removed node is
    /// never ready, so a load balancer stops sending it traffic.
    member: bool,
    /// The leader this node knows, if any.
    leader: Option<u64>,
    applied_index: u64,
    last_log_index: u64,
    /// Why the node is not ready, in the API's error shape (absent when ready): `not_a_member`,
    /// `no_leader`, `out_of_contact` (no word from a leader, or for a leader from a quorum,
    /// for longer than an election timeout) or `catching_up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorDetail>,
}

/// Ready: this node is a member of the cluster, it has heard from a leader (or, leading, from a
/// quorum) within an election timeout, and it has applied what it has in its log (within a
/// small window, since a follower's last entries may not be committed yet).
///
/// Membership is read from the latest configuration this node has, and a joint one counts by
/// the configuration it moves to: a removed voter receives the joint entry that still lists it
/// and then nothing more (the leader stops replicating to it once the final configuration is
/// appended), so "listed" alone kept a removed node ready. Should it be cut off before even
/// the joint entry reaches it, it never learns of its removal: then it hears from no leader,
/// and that alone makes it not ready.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "cluster",
    security(()),
    responses(
        (status = 200, description = "Ready: a member, in contact with a leader, caught up", body = Readiness),
        (status = 503, description = "Not ready: `ready: false` and an `error` naming why", body = Readiness),
    )
)]
pub async fn readyz(State(node): State<Node>) -> Response {
    let m = node.raft().metrics().borrow().clone();
    let applied = m.last_applied.map_or(0, |l| l.index);
    let last = m.last_log_index.unwrap_or(0);
    let id = node.id();
    let membership = m.membership_config.membership();
    let member = membership.learner_ids().any(|l| l == id)
        || membership
            .get_joint_config()
            .last()
            .is_some_and(|voters| voters.contains(&id));
    let limit = node.config().raft.election_timeout_max;
    let reason = if !member {
        Some((
            ErrorCode::NotAMember,
            format!("node {id} is not in the cluster's membership (removed, or not added yet)"),
        ))
    } else if m.current_leader.is_none() || m.state == ServerState::Candidate {
        Some((ErrorCode::NoLeader, format!("node {id} knows no leader")))
    } else if !in_contact(&node, &m, limit).await {
        let whom = if m.state == ServerState::Leader {
            "a quorum"
        } else {
            "the leader"
        };
        Some((
            ErrorCode::OutOfContact,
            format!("node {id} has not heard from {whom} for over {limit:?}"),
        ))
    } else if last.saturating_sub(applied) > CAUGHT_UP_LAG {
        Some((
            ErrorCode::CatchingUp,
            format!("node {id} has applied {applied} of the {last} entries in its log"),
        ))
    } else {
        None
    };
    let status = if reason.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready: reason.is_none(),
        member,
        leader: m.current_leader,
        applied_index: applied,
        last_log_index: last,
        error: reason.map(|(code, message)| ErrorDetail {
            code,
            message,
            leader: None,
            current_version: None,
            partitions: Vec::new(),
        }),
    };
    (status, Json(body)).into_response()
}

/// Whether this node heard from its leader within `limit` (a leader: had its leadership
/// acknowledged by a quorum within `limit`). A follower's vote is touched by every append
/// (heartbeats included) from the leader it follows, so the time since it changed is the time
/// since the leader was last heard.
async fn in_contact(
    node: &Node,
    m: &openraft::RaftMetrics<drover_raft::NodeId, drover_raft::Node>,
    limit: std::time::Duration,
) -> bool {
    if m.state == ServerState::Leader {
        let alone = m
            .membership_config
            .membership()
            .voter_ids()
            .all(|v| v == node.id());
        return alone
            || m.millis_since_quorum_ack
                .is_some_and(|ms| u128::from(ms) <= limit.as_millis());
    }
    let since = node
        .raft()
        .with_raft_state(|st| st.vote_last_modified().map(|t| t.elapsed()));
    // The Raft core answers at once unless it is busy (installing a snapshot, say): a core
    // that cannot answer within an election timeout is not serving either.
    matches!(tokio::time::timeout(limit, since).await, Ok(Ok(Some(d))) if d <= limit)
}

/// The wire name of an openraft role.
fn node_state(s: ServerState) -> NodeState {
    match s {
        ServerState::Leader => NodeState::Leader,
        ServerState::Follower => NodeState::Follower,
        ServerState::Candidate => NodeState::Candidate,
        ServerState::Learner => NodeState::Learner,
        ServerState::Shutdown => NodeState::Shutdown,
    }
}

/// The cluster as the answering node sees it: leader, term, members, indexes, state version.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    operation_id = "cluster_status",
    tag = "cluster",
    responses(
        (status = 200, description = "This node's view of the cluster", body = ClusterStatus),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn status(State(node): State<Node>) -> Json<ClusterStatus> {
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let last = m.last_log_index.unwrap_or(0);
    // openraft keeps the replication progress on the leader only.
    let lag = |id: u64| {
        let replication = m.replication.as_ref()?;
        if id == node.id() {
            return Some(0);
        }
        let matched = replication.get(&id).copied().flatten()?;
        Some(last.saturating_sub(matched.index))
    };
    let members = membership
        .nodes()
        .map(|(id, n)| Member {
            id: *id,
            address: n.addr.clone(),
            role: if voters.contains(id) {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            },
            lag: lag(*id),
        })
        .collect();
    let applied_index = m.last_applied.map_or(0, |l| l.index);
    Json(ClusterStatus {
        cluster_id: node.config().cluster_id.clone(),
        node: node.id(),
        state: node_state(m.state),
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
        brakes: node.state().read().state.brakes.clone(),
    })
}

/// Adds a node as a learner; the leader promotes it to voter once it has caught up.
#[utoipa::path(
    post,
    path = "/v1/cluster/members",
    operation_id = "add_member",
    tag = "cluster",
    request_body = AddMember,
    responses(
        (status = 200, description = "Already a member at that address; nothing changed", body = Member),
        (status = 202, description = "Added as a learner; it becomes a voter once caught up", body = Member),
        StandardErrors,
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
    )
)]
pub async fn add_member(
    State(node): State<Node>,
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
    let m = node.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    if let Some(existing) = membership.get_node(&req.id) {
        if existing.addr != req.address {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::AlreadyExists,
                format!(
                    "node {} is a member at {}; remove it first to change its address",
                    req.id, existing.addr
                ),
            ));
        }
        let role = if membership.voter_ids().any(|v| v == req.id) {
            MemberRole::Voter
        } else {
            MemberRole::Learner
        };
        let member = Member {
            id: req.id,
            address: req.address,
            role,
            lag: None,
        };
        return Ok(Json(member).into_response());
    }
    node.raft()
        .add_learner(req.id, BasicNode::new(&req.address), false)
        .await
        .map_err(|e| {
            ApiError::unavailable(format!("cannot add node {}: {e}", req.id), node.leader())
        })?;
    tracing::info!(target: "drover::audit", actor = "admin", action = "add_member", id = req.id, address = %req.address, "added learner; it becomes a voter once caught up");
    record_membership(
        &node,
        drover_types::MembershipChange::Added {
            node: req.id,
            address: req.address.clone(),
        },
    )
    .await;
    let member = Member {
        id: req.id,
        address: req.address,
        role: MemberRole::Learner,
        lag: None,
    };
    Ok((StatusCode::ACCEPTED, Json(member)).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MemberPath {
    /// The node's id.
    #[param(value_type = u64)]
    id: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberRemoved {
    id: u64,
    removed: bool,
}

/// Removes a node, refusing a change that would leave the cluster without a quorum of
/// reachable voters.
#[utoipa::path(
    delete,
    path = "/v1/cluster/members/{id}",
    operation_id = "remove_member",
    tag = "cluster",
    params(MemberPath),
    responses(
        (status = 200, description = "Removed", body = MemberRemoved),
        StandardErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
    )
)]
pub async fn remove_member(
    State(node): State<Node>,
    ApiPath(MemberPath { id }): ApiPath<MemberPath>,
) -> ApiResult<Response> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::bad_request(format!("member id {id:?} is not a number")))?;
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
                ErrorCode::QuorumLoss,
                "cannot remove the last voter",
            ));
        }
        let reachable = node.reachable_voters(&m, &remaining).await;
        let majority = remaining.len() / 2 + 1;
        if reachable < majority {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                ErrorCode::QuorumLoss,
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
    tracing::info!(target: "drover::audit", actor = "admin", action = "remove_member", id, "removed member");
    record_membership(&node, drover_types::MembershipChange::Removed { node: id }).await;
    Ok(Json(MemberRemoved { id, removed: true }).into_response())
}

/// Records a committed membership change in the events log. The change itself is done: if
/// the record cannot be committed (leadership lost meanwhile), that is logged, not failed.
async fn record_membership(node: &Node, change: drover_types::MembershipChange) {
    if let Err(e) = node
        .propose(drover_types::Command::RecordMembership(change.clone()))
        .await
    {
        tracing::warn!(?change, error = %e, "membership change committed but not recorded in the events log");
    }
}

/// What happens to this node's Raft messages to one peer (drover-raft's `PeerFault`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Fault {
    /// Every message fails as if the peer were unreachable.
    drop: bool,
    /// Every message is held this long first.
    delay_ms: u64,
}

/// The faults in force, by peer id (JSON object keys are strings).
#[derive(Debug, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Faults(BTreeMap<String, Fault>);

impl Faults {
    fn of(node: &Node) -> Json<Self> {
        let all = node.faults().all().into_iter();
        // Destructured field by field, so a new field of `PeerFault` fails to compile here
        // rather than go missing from the answer and its schema.
        Json(Faults(
            all.map(|(peer, PeerFault { drop, delay_ms })| {
                (peer.to_string(), Fault { drop, delay_ms })
            })
            .collect(),
        ))
    }
}

/// The fault-injection settings of this node (test clusters only).
#[utoipa::path(
    get,
    path = "/debug/faults",
    operation_id = "list_faults",
    tag = "debug",
    responses(
        (status = 200, description = "Faults in force, by peer", body = Faults),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn faults(State(node): State<Node>) -> Json<Faults> {
    Faults::of(&node)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetFault {
    /// The peer whose messages are affected.
    peer: u64,
    #[serde(default)]
    drop: bool,
    #[serde(default)]
    delay_ms: u64,
}

/// Drops or delays this node's Raft messages to one peer (test clusters only).
#[utoipa::path(
    post,
    path = "/debug/faults",
    operation_id = "set_fault",
    tag = "debug",
    request_body = SetFault,
    responses(
        (status = 200, description = "Faults now in force, by peer", body = Faults),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 413, response = TooLarge),
    )
)]
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
    Ok(Faults::of(&node).into_response())
}

/// Clears every injected fault of this node (test clusters only).
#[utoipa::path(
    delete,
    path = "/debug/faults",
    operation_id = "clear_faults",
    tag = "debug",
    responses(
        (status = 200, description = "No faults remain", body = Faults),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
    )
)]
pub async fn clear_faults(State(node): State<Node>) -> Json<Faults> {
    node.faults().clear();
    Faults::of(&node)
}
